"""How runs end, and where posts go when Discord gets in the way: each gives the promised message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cogs.job_card import status_label
from storage.models import JobStatus
from tests.stage import Message, Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.tracking.helpers import FAST, PUBLIC_URL, advance, epoch_messages, finished, is_epoch, simulator, start_run

# Simulated seconds into a run (default timings): preparing from 2 s, held for review at 7 s.
PREPARING, HELD = 3.0, 8.0


def says(*words: str) -> Callable[[Message], bool]:
    return lambda m: all(w in m.text for w in words)


def is_final(message: Message) -> bool:
    return "finished training" in message.content


async def test_closed_dms_are_said_in_the_thread(stage: Stage, alice: StageMember, tmp_path: Path) -> None:
    stage.faults.close_dms(alice)
    async with bot_in_process(stage, tmp_path / "bot", **FAST) as bot:
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=2, steps=40)
        await stage.wait_message(thread, is_final)
        notice = await stage.wait_message(thread, says("couldn't send you a DM", "/settings notify"))
        assert f"<@{alice.id}>" in notice.content
        assert (await finished(bot, job.id)).status is JobStatus.SUCCEEDED
        assert stage.messages_in(alice.in_dm().channel) == []


async def test_an_archived_thread_is_written_to_by_id_and_reopens(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST) as bot:
        simulator(bot).speed = 100
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=3, steps=60)
        await stage.wait_message(thread, is_epoch)
        await stage.faults.archive(thread)
        await stage.wait_message(thread, is_final)
        assert not thread.archived
        assert len(epoch_messages(stage, thread)) == 3
        await finished(bot, job.id)


async def test_a_deleted_thread_sends_the_rest_of_the_run_to_dms(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST) as bot:
        simulator(bot).speed = 100
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=3, steps=60)
        await stage.wait_message(thread, is_epoch)
        await stage.faults.delete_channel(thread)
        final = await alice.wait_dm(lambda m: "finished training" in m.content)
        assert final.selects and stage.files(final)["grid.png"]
        await finished(bot, job.id)
        dms = stage.messages_in(alice.in_dm().channel)
        moved = [m for m in dms if "**Epoch " in m.content]
        assert moved and all(stage.files(m) for m in moved)
        # Epoch 1 went to the thread before it was deleted; every later one went to DMs, once.
        assert len(moved) + 1 == 3
        # Why they come to DMs is said once, in the first of them.
        assert [m for m in dms if "can't post in this run's thread" in m.content] == moved[:1]
        # The end notice: in DMs instead of the thread, and no extra DM pointing at the dead thread.
        assert len([m for m in dms if "finished training" in m.content]) == 1


@pytest.mark.parametrize(
    ("fault", "status", "words"),
    [
        ("rejected", JobStatus.FAILED, ("failed content moderation", "Replace the flagged images")),
        ("fail_at_epoch", JobStatus.FAILED, ("took too long", "fewer steps", "Epoch(s) 1, 2 finished")),
        ("expire", JobStatus.EXPIRED, ("expired in the queue", "Submit it again")),
        ("cancel", JobStatus.CANCELED, ("was cancelled", "/train flux1")),
    ],
)
async def test_a_run_that_ends_badly_is_explained_with_the_fix_in_the_thread_and_dms(
    stage: Stage, alice: StageMember, tmp_path: Path, fault: str, status: JobStatus, words: tuple[str, ...]
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", public_url=PUBLIC_URL, **FAST) as bot:
        sim = simulator(bot)
        if fault == "rejected":
            sim.faults.moderation("rejected")
        elif fault == "fail_at_epoch":
            sim.faults.fail_at_epoch(3, reason="timeout")
        elif fault == "expire":
            sim.faults.expire()
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=4, steps=80)
        if fault == "cancel":
            await stage.wait_message(thread, is_epoch)
            assert job.workflow_id is not None
            sim.cancel(sim.record(job.workflow_id))

        notice = await stage.wait_message(thread, says(*words))
        assert notice.content.startswith("❌") and "SIMULATED" in notice.content
        dm = await alice.wait_dm()
        assert words[0] in dm.content and f"/{thread.id}/{notice.id}" in dm.content
        stored = await finished(bot, job.id)
        assert stored.status is status
        assert status_label(status) in stage.messages[stored.card_message_id or 0].text


@pytest.mark.parametrize("public_url", [None, PUBLIC_URL], ids=["polling", "callbacks"])
async def test_a_run_held_for_review_says_so_then_carries_on(
    stage: Stage, alice: StageMember, tmp_path: Path, public_url: str | None
) -> None:
    # With callbacks nothing polls: the hold must be heard from the event that announces it, not
    # at the next reconcile pass (a minute away with these settings, longer than any wait here).
    assert FAST["reconcile_interval_seconds"] >= 60
    async with bot_in_process(stage, tmp_path / "bot", public_url=public_url, **FAST) as bot:
        sim = simulator(bot)
        sim.speed = 0
        sim.faults.moderation("underReview")
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=2, steps=40)
        await advance(sim, PREPARING)  # preparing, moderation still evaluating
        # The tracker has acted on all of that (a refresh that did everything also drops any
        # retry still waiting), so nothing reads the workflow again unless something says so.
        await bot.services.tracker.refresh(job.id)
        await sim.settle()
        await bot.services.tracker.refresh(job.id)
        assert not [m for m in stage.messages_in(thread) if "held for review" in m.text]
        await advance(sim, HELD - PREPARING)  # the verdict: held for a human
        held = await stage.wait_message(thread, says("held for review", "continues by itself"))
        assert held.content.startswith("⏸️")
        await alice.wait_dm(lambda m: "waiting for a moderator" in m.content)
        assert job.workflow_id is not None
        sim.review(job.workflow_id, approve=True)
        sim.speed = 400
        await stage.wait_message(thread, is_final)
        assert (await finished(bot, job.id)).status is JobStatus.SUCCEEDED
        assert len([m for m in stage.messages_in(thread) if "held for review" in m.text]) == 1


async def test_a_cancel_from_discord_is_told_once_by_the_cancel_and_never_again_by_the_tracker(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", public_url=PUBLIC_URL, **FAST) as bot:
        simulator(bot).speed = 100
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=4, steps=80)
        await stage.wait_message(thread, is_epoch)
        prompt = await (await alice.slash("jobs cancel", job=job.id)).reply()
        await alice.click(prompt, label="Yes, cancel it")
        await alice.wait_ephemeral(lambda m: m.embed["title"].startswith("Cancelled"))
        stored = await finished(bot, job.id)
        await simulator(bot).settle()  # the workflow's cancel callbacks reach the tracker
        await bot.services.tracker.refresh(job.id)
        assert stored.status is JobStatus.CANCELED
        assert not [m for m in stage.messages_in(thread) if m.content.startswith("❌")]
        assert stage.messages_in(alice.in_dm().channel) == []  # the owner cancelled it: nothing to tell
        card = stage.messages[stored.card_message_id or 0]
        assert status_label(JobStatus.CANCELED) in card.text


POST = "POST /channels/{channel_id}/messages"


@pytest.mark.parametrize("fault", ["forbidden", "locked"])
async def test_a_thread_the_bot_cannot_post_in_sends_the_run_to_dms_once_and_is_not_tried_again(
    stage: Stage, alice: StageMember, tmp_path: Path, fault: str
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST) as bot:
        sim = simulator(bot)
        sim.speed = 0
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=3, steps=60)
        if fault == "forbidden":  # the bot lost Send Messages in Threads there
            stage.faults.error(POST, status=403, code=50013, message="Missing Permissions", times=99,
                               channel_id=thread.id)  # fmt: skip
        else:
            await stage.faults.lock(thread)
        sim.speed = 100
        final = await alice.wait_dm(lambda m: "finished training" in m.content)
        stored = await finished(bot, job.id)
        assert stored.thread_gone and stored.status is JobStatus.SUCCEEDED

    dms = stage.messages_in(alice.in_dm().channel)
    epochs = [m for m in dms if "**Epoch " in m.content]  # the first one starts with why it came here
    assert len(epochs) == 3 and final in dms and len(dms) == 4  # no extra DM about the end on top
    # Why the posts come to DMs is said once, with the first of them.
    assert [m for m in dms if "can't post in this run's thread" in m.content] == epochs[:1]
    # The thread was tried once: every later post went straight to the DMs.
    refused = [r for r in stage.requests if r.route == POST and str(thread.id) in r.path and r.status >= 400]
    assert len(refused) == 1


async def test_a_failed_run_reaches_the_log_channel(
    stage: Stage, alice: StageMember, admin: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST) as bot:
        await (await admin.slash("admin log-channel", channel="training")).reply()
        simulator(bot).faults.fail_at_epoch(2, reason="timeout")
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=3, steps=60)
        line = await stage.wait_message("training", says("❌", job.id))
        assert (await finished(bot, job.id)).status is JobStatus.FAILED
        [entry] = [e for e in await bot.services.store.audit.recent(stage.guild.id) if e.action == "job.failed"]
        assert entry.subject_id == alice.id and entry.details["status"] == "failed"
        headline = entry.details["reason"]  # the same words as the notice in the thread
        assert [m for m in stage.messages_in(thread) if m.content.startswith("❌") and headline in m.content]
        assert line.content == f"❌ The bot saw run `{job.id}` (dog) of <@{alice.id}> end failed: {headline}"
        await bot.services.tracker.refresh(job.id)
        assert len([m for m in stage.messages_in("training") if says("❌", job.id)(m)]) == 1
