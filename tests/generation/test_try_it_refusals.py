"""Who may Try it and what stops it: the try_it setting, a block, the Buzz cap, an expired model."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.civitai.simulator.image_gen import expire_model
from tests.generation.helpers import finished_run, generation_service, image_gen_requests
from tests.stage import Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.tracking.helpers import FAST, simulator

EPOCH_OF_2000 = datetime(2000, 1, 1, tzinfo=UTC)


async def test_members_try_it_only_when_allowed_and_blocks_and_caps_refuse(
    stage: Stage, alice: StageMember, bob: StageMember, admin: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST, command_cooldown_seconds=0) as bot:
        job, _, epochs, final = await finished_run(bot, stage, alice, tmp_path, epochs=2)
        sim = simulator(bot)

        # try_it: owner (the default): bob gets no modal, only the reason and the fix.
        refused = await (await bob.click(epochs[0], label="Try it")).reply()
        assert refused.ephemeral and "Not your run" in refused.text and "/admin settings try_it:members" in refused.text

        assert "Let everyone try it" in refused.text

        # The owner can open this one run to everyone, and close it again; nobody else can.
        not_bobs = await (await bob.click(final, label="Let everyone try it")).reply()
        assert "Not your run" in not_bobs.text
        opened = await (await alice.click(final, label="Let everyone try it")).reply()
        assert "Every member can now try this run" in opened.text
        await (await bob.click(epochs[0], label="Try it")).modal()  # a modal now, not a refusal
        closed = await (await alice.click(final, label="Let everyone try it")).reply()
        assert "Only you and server admins" in closed.text
        again = await (await bob.click(epochs[0], label="Try it")).reply()
        assert "Not your run" in again.text

        done = await (await admin.slash("admin settings", try_it="members")).reply()
        assert "every member" in done.text
        shown = await (await admin.slash("admin settings")).reply()
        assert "every member may generate" in shown.text

        # Now bob may, from the grid's menu too; in simulated mode nobody pays.
        modal = await (await bob.choose(final, f"ltb:trysel:{job.id}", ["2"])).modal()
        offer = await (await bob.submit_modal(modal, prompt="sks dog in the snow")).reply()
        assert "Epoch 2 (strength 1)" in offer.text and "nobody" in offer.text

        # A blocked member is refused before anything is priced.
        await (await admin.slash("admin block", member=bob.user)).reply()
        priced = len(image_gen_requests(sim))
        modal = await (await bob.click(epochs[0], label="Try it")).modal()
        blocked = await (await bob.submit_modal(modal, prompt="sks dog")).reply()
        assert "blocked you" in blocked.text and len(image_gen_requests(sim)) == priced

        # Over the daily cap: the price and the cap are named.
        spent = await bot.services.store.ledger.spent_by_user(stage.guild.id, alice.id, EPOCH_OF_2000)
        await (await admin.slash("admin limits", user_daily_buzz=int(spent) + 1)).reply()
        modal = await (await alice.click(epochs[1], label="Try it")).modal()
        capped = await (await alice.submit_modal(modal, prompt="sks dog", shape=["landscape:4"])).reply()
        assert "These images cost" in capped.text and f"{int(spent) + 1:,} Buzz per day" in capped.text


async def test_an_epoch_whose_model_expired_is_refused_with_a_clear_message(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST, command_cooldown_seconds=0) as bot:
        job, _, epochs, _ = await finished_run(bot, stage, alice, tmp_path, epochs=2)
        sim = simulator(bot)
        model_id = sim.workflow(job.workflow_id or "")["steps"][0]["output"]["epochs"][0]["model"]["id"]
        expire_model(sim, model_id)
        workflows = len(sim.workflows)

        modal = await (await alice.click(epochs[0], label="Try it")).modal()
        reply = await (await alice.submit_modal(modal, prompt="sks dog")).reply()
        assert "model has expired" in reply.text and "epoch 1" in reply.text and "nothing was charged" in reply.text
        assert len(sim.workflows) == workflows
        # The other epoch still works.
        modal = await (await alice.click(epochs[1], label="Try it")).modal()
        offer = await (await alice.submit_modal(modal, prompt="sks dog")).reply()
        assert "Epoch 2" in offer.text and "Confirm" in str(offer.buttons)


async def test_images_asked_for_in_a_thread_deleted_meanwhile_go_to_the_member(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST, command_cooldown_seconds=0) as bot:
        _, thread, epochs, _ = await finished_run(bot, stage, alice, tmp_path, epochs=1)
        modal = await (await alice.click(epochs[0], label="Try it")).modal()
        offer = await (await alice.submit_modal(modal, prompt="sks dog in a hat")).reply()
        await stage.faults.delete_channel(thread)
        await (await alice.click(offer, label="Confirm")).reply(lambda m: "Submitted" in m.text)
        dm = await alice.wait_dm(lambda m: m.content.startswith("🎨"))
        assert "sks dog in a hat" in dm.text and len(dm.attachments) == 1 and "SIMULATED" in dm.text
        await generation_service(bot).idle()
