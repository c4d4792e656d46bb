"""The buttons of a run's posts on the stage: who may download, and training further from an epoch."""

from __future__ import annotations

from pathlib import Path

import httpx

from storage.models import JobStatus
from tests.stage import Message, Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.tracking.helpers import FAST, epoch_messages, finished, safetensors_header, simulator, start_run


def is_final(message: Message) -> bool:
    return "finished training" in message.content


async def test_only_the_owner_and_server_admins_download_and_the_menu_picks_any_epoch(
    stage: Stage, alice: StageMember, bob: StageMember, admin: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST) as bot:
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=2, steps=40)
        final = await stage.wait_message(thread, is_final)
        first = epoch_messages(stage, thread)[0]

        refused = await (await bob.click(first, label="Download epoch 1")).reply()
        assert refused.ephemeral and "Not your LoRA" in refused.text and f"<@{alice.id}>" in refused.text

        allowed = await (await admin.click(first, label="Download epoch 1")).reply()
        assert allowed.buttons[0]["url"].startswith("http")

        picked = await (await alice.choose(final, f"ltb:dlsel:{job.id}", ["2"])).reply()
        assert picked.ephemeral and "epoch_002.safetensors" in picked.content
        async with httpx.AsyncClient() as http:
            data = (await http.get(picked.buttons[0]["url"])).content
        assert safetensors_header(data)["__metadata__"]["ss_epoch"] == "2"
        await finished(bot, job.id)


async def test_train_further_quotes_a_run_from_that_epoch_and_confirm_submits_it(
    stage: Stage, alice: StageMember, bob: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST) as bot:
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=2, steps=40)
        await stage.wait_message(thread, is_final)
        done = await finished(bot, job.id)
        second = epoch_messages(stage, thread)[1]
        air = next(line.strip("`") for line in second.embed["fields"][0]["value"].splitlines() if "urn:air" in line)

        not_bobs = await (await bob.click(second, label="Train further from here")).reply()
        assert "Not your run" in not_bobs.text and "continue_from:<AIR>" in not_bobs.text

        offer = await (await alice.click(second, label="Train further from here")).reply()
        assert offer.ephemeral and "Train further from epoch 2" in offer.text and air in offer.text
        assert "Buzz" in offer.text and "SIMULATED" in offer.text
        sim = simulator(bot)
        workflows = len(sim.workflows)
        submitted = await (await alice.click(offer, label="Confirm")).reply(lambda m: "Submitted" in m.text)
        assert len(sim.workflows) == workflows + 1
        template = list(sim.workflows.values())[-1]
        training = template["steps"][0]["input"]
        assert training["continueFrom"] == air and training["epochs"] == 2
        assert len(training["trainingData"]["items"]) == done.image_count
        new_card = await stage.wait_message("general", lambda m: "from epoch 2" in m.text)
        assert new_card.thread_id is not None and f"<#{new_card.thread_id}>" in submitted.text
        new_job = (await bot.services.store.jobs.list_for_user(alice.id, limit=1))[0]
        assert new_job.params["continue_from"] == air and new_job.status is not JobStatus.DRAFT

        # Cancel on another offer discards its draft; nothing is submitted.
        offer = await (await alice.click(second, label="Train further from here")).reply()
        cancelled = await (await alice.click(offer, label="Cancel")).reply(lambda m: "Cancelled" in m.text)
        assert "Nothing was submitted" in cancelled.text and len(sim.workflows) == workflows + 1


async def test_train_further_without_the_stored_dataset_asks_for_the_zip(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST) as bot:
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=1, steps=20)
        await stage.wait_message(thread, is_final)
        await finished(bot, job.id)
        path = bot.services.datasets.path_for(job.dataset_digest)
        assert path is not None
        path.unlink()
        reply = await (await alice.click(epoch_messages(stage, thread)[0], label="Train further from here")).reply()
        assert "no longer stored" in reply.text and "/train flux1 continue_from:urn:air:flux1:lora:" in reply.text
