"""Try it on the stage: a finished run, an epoch's button, the modal, a priced confirmation,
Confirm, the images in the thread, and Try again with a new seed."""

from __future__ import annotations

from pathlib import Path

from bot.civitai.models import epoch_air
from tests.civitai_spec import validate_response
from tests.generation.helpers import finished_run, image_gen_requests, is_images
from tests.stage import Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.tracking.helpers import FAST, simulator


async def test_try_it_on_epoch_3_posts_the_images_and_try_again_uses_a_new_seed(
    stage: Stage, alice: StageMember, admin: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST, command_cooldown_seconds=0) as bot:
        job, thread, epochs, _ = await finished_run(bot, stage, alice, tmp_path)
        sim = simulator(bot)
        store = bot.services.store
        workflow = sim.workflow(job.workflow_id or "")
        air = epoch_air(workflow["steps"][0]["output"]["epochs"][2]["model"]["id"])

        modal = await (await alice.click(epochs[2], label="Try it")).modal()
        assert [i.get("custom_id") for i in modal.inputs] == ["prompt", "negative", "shape", "seed", "strength"]
        prompt_input = next(i for i in modal.inputs if i["custom_id"] == "prompt")
        assert prompt_input["value"].startswith("sks"), "prefilled with the trigger word"
        offer = await (
            await alice.submit_modal(
                modal, prompt="sks dog wearing a red hat", shape=["portrait:2"], seed="1234", strength="0.8"
            )
        ).reply()
        assert offer.ephemeral
        assert "sks dog wearing a red hat" in offer.text and "Epoch 3 (strength 0.8)" in offer.text
        assert "Buzz" in offer.text and "SIMULATED" in offer.text and "Who pays" in offer.text
        whatif = image_gen_requests(sim)
        assert len(whatif) == 1 and not sim.workflows.keys() - {job.workflow_id}
        offer_text = offer.text  # Confirm edits this message
        spent_before = await store.ledger.spent_by_user(stage.guild.id, alice.id, job.created_at.replace(year=2000))

        await (await alice.click(offer, label="Confirm")).reply(lambda m: "Submitted" in m.text)
        posted = await stage.wait_message(thread, is_images)
        assert "SIMULATED" in posted.text
        assert "sks dog wearing a red hat" in posted.text and "Epoch 3" in posted.text and "1234" in posted.text
        assert len(posted.attachments) == 2

        requests = image_gen_requests(sim)
        submitted = requests[-1]["steps"][0]["input"]
        assert submitted["loras"] == {air: 0.8}
        assert (submitted["width"], submitted["height"], submitted["seed"], submitted["quantity"]) == (
            832,
            1216,
            1234,
            2,
        )
        generation_workflow = next(w for w in sim.workflows if w != job.workflow_id)
        charged = sim.workflow(generation_workflow)["cost"]["total"]
        assert validate_response("Workflow", sim.workflow(generation_workflow)) == []
        spent_after = await store.ledger.spent_by_user(stage.guild.id, alice.id, job.created_at.replace(year=2000))
        assert spent_after - spent_before == charged > 0
        assert f"{charged:,} Buzz" in offer_text, "the confirmation showed the simulator's price"
        usage = await (await admin.slash("admin usage", period="all")).reply()
        assert f"<@{alice.id}> · **{spent_after:,.0f}** Buzz" in usage.text, "training and the images"

        again = await (await alice.click(posted, label="Try again")).reply()
        assert "sks dog wearing a red hat" in again.text and "1234" not in again.text.split("Seed")[1][:20]
        await (await alice.click(again, label="Confirm")).reply(lambda m: "Submitted" in m.text)
        second = await stage.wait_message(thread, lambda m: is_images(m) and m.id != posted.id)
        last = image_gen_requests(sim)[-1]["steps"][0]["input"]
        assert last["seed"] != 1234 and last["loras"] == {air: 0.8} and last["prompt"] == submitted["prompt"]
        assert str(last["seed"]) in second.text
        assert second.attachments[0].data != posted.attachments[0].data
