"""Callbacks on the stage: duplicated, replayed and reordered ones, forged ones, and none at all."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx

from bot.jobs.submission import hook_secret_for
from storage.models import JobStatus
from tests.stage import Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.tracking.helpers import FAST, PUBLIC_URL, advance, epoch_messages, finished, simulator, start_run


def is_final(message: object) -> bool:
    return "finished training" in getattr(message, "content", "")


async def test_duplicated_replayed_and_reordered_callbacks_still_give_one_message_each(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", public_url=PUBLIC_URL, **FAST) as bot:
        sim = simulator(bot)
        sim.faults.duplicate_callbacks(60)
        sim.faults.reorder_callbacks(8)
        for after in (1, 3, 6, 10):
            sim.faults.replay_callback(after=after)
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=6, steps=120)
        await stage.wait_message(thread, is_final, timeout=20)
        await alice.wait_dm()
        await sim.settle()

        delivered = Counter(repr(d.payload) for d in sim.callbacks.deliveries if d.status == 200)
        assert max(delivered.values()) >= 2, "the simulator was meant to deliver duplicates"
        assert [m.content.split(" ")[1] for m in epoch_messages(stage, thread)] == [f"{n}/6**" for n in range(1, 7)]
        assert len([m for m in stage.messages_in(thread) if is_final(m)]) == 1
        assert len(stage.messages_in(alice.in_dm().channel)) == 1
        assert (await finished(bot, job.id)).status is JobStatus.SUCCEEDED
        assert len(await bot.services.store.deliveries.for_job(job.id, limit=1000)) == sum(delivered.values())


async def test_a_wrong_secret_gets_404_and_a_forged_body_only_causes_a_refresh(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", public_url=PUBLIC_URL, **FAST) as bot:
        sim = simulator(bot)
        sim.speed = 0
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=3)
        card_id = (await bot.services.store.jobs.get(job.id)).card_message_id  # type: ignore[union-attr]
        # The card follows: the queue while scheduled, then progress and an ETA while training.
        await advance(sim, 14)
        await bot.services.tracker.refresh(job.id)
        await stage.wait_message("general", lambda m: m.id == card_id and "run(s) ahead" in m.text)
        await advance(sim, 31)  # training now, no epoch yet
        await bot.services.tracker.refresh(job.id)
        card = await stage.wait_message("general", lambda m: m.id == card_id and "Training" in m.text)
        assert "finishes <t:" in card.text and ":R>" in card.text and "%" in card.text
        assert bot.services.web is not None
        hooks = f"{bot.services.web.base_url}/hooks/civitai/{job.id}"
        forged = {"$type": "workflow", "workflowId": job.workflow_id, "status": "succeeded"}
        refreshes = bot.services.tracker.refreshes
        deliveries = len(await bot.services.store.deliveries.for_job(job.id, limit=1000))

        async with httpx.AsyncClient() as http:
            wrong = await http.post(f"{hooks}/{'x' * 43}", json=forged)
            assert wrong.status_code == 404
            assert len(await bot.services.store.deliveries.for_job(job.id, limit=1000)) == deliveries
            assert bot.services.tracker.refreshes == refreshes

            secret = hook_secret_for(bot.services.training.hook_key, job.id)
            right = await http.post(f"{hooks}/{secret}", json=forged)
            assert right.status_code == 200
        await bot.services.tracker.refresh(job.id)  # after the one the callback asked for

        assert bot.services.tracker.refreshes > refreshes
        stored = await bot.services.store.jobs.get(job.id)
        assert stored is not None and stored.status is JobStatus.PROCESSING
        assert not [m for m in stage.messages_in(thread) if is_final(m)] and not epoch_messages(stage, thread)
        assert stage.messages_in(alice.in_dm().channel) == []


async def test_without_public_url_the_run_is_followed_by_polling(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST) as bot:
        assert bot.services.tracker.polling
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=4, steps=80)
        await stage.wait_message(thread, is_final, timeout=20)
        await alice.wait_dm()
        assert simulator(bot).callbacks.deliveries == []  # no callback was registered or sent
        assert [m.content.split(" ")[1] for m in epoch_messages(stage, thread)] == [f"{n}/4**" for n in range(1, 5)]
        assert (await finished(bot, job.id)).status is JobStatus.SUCCEEDED
