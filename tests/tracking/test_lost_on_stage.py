"""Runs that vanish end ``lost``: told once, shown on the card, audited, and their slot freed.

A workflow Civitai no longer has (404), a removed token, or a run of the other mode (simulated
while the bot now trains for real) can never be followed again. Each such job ends in the
terminal status ``lost`` with an explanation of what happened and of what was charged as far as
the bot knows; ``/jobs cancel`` closes one the tracker has not ended yet.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bot.civitai.simulator import Simulator
from cogs.job_card import status_label
from storage.models import Job, JobStatus, Payer
from tests.stage import Message, Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.tracking.helpers import FAST, PUBLIC_URL, finished, is_epoch, real_mode, simulator, start_run
from tests.train.helpers import attachment, confirmation

GONE = "The simulator no longer has this run"  # said of a simulated run ("Civitai …" of a real one)


def says(*words: str) -> Callable[[Message], bool]:
    return lambda m: all(w in m.text for w in words)


def told(stage: Stage, where: object, *words: str) -> list[Message]:
    return [m for m in stage.messages_in(where) if says(*words)(m)]


async def test_a_workflow_civitai_no_longer_has_ends_lost_told_once_and_frees_the_slot(
    stage: Stage, alice: StageMember, admin: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST) as bot:
        await bot.services.store.guilds.update(stage.guild.id, max_concurrent_jobs_per_user=1)
        await (await admin.slash("admin log-channel", channel="training")).reply()
        sim = simulator(bot)
        sim.speed = 20
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=3, steps=60)
        await stage.wait_message(thread, is_epoch)
        assert job.workflow_id is not None
        sim.record(job.workflow_id).deleted = True  # deleted at Civitai, or aged out: 404 from now on

        notice = await stage.wait_message(thread, says(GONE, "charged", "/train flux1"))
        assert notice.content.startswith("❓") and "Nothing was charged: it was a simulated run." in notice.text
        dm = await alice.wait_dm(says(GONE, "Nothing was charged"))
        assert f"/{thread.id}/{notice.id}" in dm.content
        stored = await finished(bot, job.id)
        assert stored.status is JobStatus.LOST and stored.end_reason == "workflow_gone"
        card = stage.messages[stored.card_message_id or 0]
        assert status_label(JobStatus.LOST) in card.text and GONE in card.text
        await stage.wait_message("training", says("closed run", job.id, "as lost", GONE))

        # Told once: more refreshes (and a reconcile) repeat nothing.
        await bot.services.tracker.refresh(job.id)
        await bot.services.tracker.reconcile()
        await bot.services.tracker.refresh(job.id)
        assert len(told(stage, thread, GONE)) == 1
        assert len(told(stage, alice.in_dm().channel, GONE)) == 1
        assert len(told(stage, "training", "as lost")) == 1

        # The slot is free: a new /train gets to its confirmation instead of "1 run(s) going".
        await alice.slash("train flux1", dataset=attachment(3))
        await confirmation(alice)


async def test_jobs_cancel_closes_a_run_whose_workflow_is_gone(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    # Callbacks mode: nothing polls, so the tracker has not noticed yet (lost, but still active).
    async with bot_in_process(stage, tmp_path / "bot", public_url=PUBLIC_URL, **FAST) as bot:
        sim = simulator(bot)
        sim.speed = 0
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=3, steps=60)
        assert job.workflow_id is not None
        await bot.services.tracker.refresh(job.id)
        sim.record(job.workflow_id).deleted = True
        assert (await bot.services.store.jobs.get(job.id)).status.active  # type: ignore[union-attr]

        prompt = await (await alice.slash("jobs cancel", job=job.id)).reply()
        await alice.click(prompt, label="Yes, cancel it")
        closed = await alice.wait_ephemeral(lambda m: m.embed["title"].startswith("Closed"))
        assert GONE in closed.text and "no longer counts as running" in closed.text
        stored = await finished(bot, job.id)
        assert stored.status is JobStatus.LOST
        await stage.wait_message(thread, says("closed this run", GONE))
        await stage.wait_message("general", lambda m: m.id == stored.card_message_id and "Lost" in m.text)
        # The tracker finds it closed and tells nothing more.
        await bot.services.tracker.refresh(job.id)
        assert told(stage, thread, "❓") == [] and stage.messages_in(alice.in_dm().channel) == []
        assert await bot.services.store.jobs.count_active_for_user(stage.guild.id, alice.id) == 0


async def test_a_removed_token_ends_the_run_lost(
    stage: Stage, alice: StageMember, admin: StageMember, tmp_path: Path, orchestrator: Simulator
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **real_mode(orchestrator), **FAST) as bot:
        await bot.services.store.guilds.update(stage.guild.id, payer=Payer.SERVER)
        await bot.services.accounts.link_server_token(stage.guild.id, admin.id, "server-token-1234567890")
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=3, steps=60)
        assert not job.simulated and job.price_charged
        await bot.services.tracker.refresh(job.id)

        await (await admin.slash("admin token clear")).reply(says("Server token removed"))
        notice = await stage.wait_message(thread, says("token paying for this run was removed"))
        assert f"{job.price_charged:,.0f} Buzz was charged when it was submitted" in notice.text
        assert "may have refunded" in notice.text and "may still be running" in notice.text
        stored = await finished(bot, job.id)
        assert stored.status is JobStatus.LOST and stored.end_reason == "token_removed"


async def test_a_simulated_run_after_a_restart_in_real_mode_ends_lost(
    stage: Stage, alice: StageMember, tmp_path: Path, orchestrator: Simulator
) -> None:
    data = tmp_path / "bot"
    async with bot_in_process(stage, data, **FAST) as bot:
        simulator(bot).speed = 0
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=3, steps=60)
        assert job.simulated
    async with bot_in_process(stage, data, **real_mode(orchestrator), **FAST) as bot:
        notice = await stage.wait_message(thread, says("switched to real training", "Nothing was charged"))
        await alice.wait_dm(says("switched to real training"))
        stored: Job = await finished(bot, job.id)
        assert stored.status is JobStatus.LOST and stored.end_reason == "simulated_in_real_mode"
        assert orchestrator.records() == []  # the real orchestrator was never asked about it
        assert notice.content.startswith("❓")


async def test_admin_cancel_closes_a_run_whose_token_was_removed(
    stage: Stage, alice: StageMember, admin: StageMember, tmp_path: Path, orchestrator: Simulator
) -> None:
    # Callbacks mode and no callbacks reaching the bot: nothing refreshes the run but the cancel.
    async with bot_in_process(stage, tmp_path / "bot", public_url=PUBLIC_URL, **real_mode(orchestrator), **FAST) as bot:
        await bot.services.store.guilds.update(stage.guild.id, payer=Payer.SERVER)
        await bot.services.accounts.link_server_token(stage.guild.id, admin.id, "server-token-1234567890")
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=3, steps=60)
        await bot.services.tracker.refresh(job.id)
        await (await admin.slash("admin token clear")).reply(says("Server token removed"))
        assert (await bot.services.store.jobs.count_active_for_user(stage.guild.id, alice.id)) == 1

        prompt = await (await admin.slash("admin cancel", job=job.id)).reply()
        await admin.click(prompt, label="Yes, cancel it")
        closed = await admin.wait_ephemeral(lambda m: m.embed["title"].startswith("Closed"))
        assert "token paying for this run was removed" in closed.text and "may still be running" in closed.text
        dm = await alice.wait_dm(says("closed your run", "token paying for this run was removed"))
        assert f"<@{admin.id}>" in dm.content
        stored = await finished(bot, job.id)
        assert stored.status is JobStatus.LOST and stored.end_reason == "token_removed"
        await stage.wait_message(thread, says("closed this run"))
        [entry] = [e for e in await bot.services.store.audit.recent(stage.guild.id) if e.action == "job.lost"]
        assert entry.actor_id == admin.id
        assert orchestrator.record(job.workflow_id or "").status != "canceled"  # nothing could stop it there
