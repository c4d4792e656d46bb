"""The tracker core against the simulator and a real SQLite file, with a recording sink (no Discord).

The simulator's clock is stopped (``speed = 0``) and moved by hand, so each test decides exactly
which epochs exist when the tracker looks.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.civitai.client import OrchestratorSession, RetryPolicy
from bot.civitai.simulator import Simulator
from bot.config import CivitaiMode, Settings
from bot.jobs.events import EpochReady, Notice, NoticeKind, dm_key, notice_key
from bot.jobs.tracker import Outcome, PollSchedule, Tracker
from bot.services import Services
from storage.models import Job, JobStatus
from tests.tracking.helpers import PROMPTS, advance, eventually, submit

GUILD, USER, CHANNEL = 1, 10, 100
# Simulated seconds (default timings, 200 steps, 10 epochs, 2 prompts): the run starts training
# at 42 s and each epoch takes 20 steps × 1.5 s + 2 samples × 4 s.
START, PER_EPOCH = 42.0, 38.0


def until_epoch(n: int) -> float:
    return START + PER_EPOCH * n + 0.5


@dataclass
class RecordingSink:
    """Keeps what the Discord side would have shown; can fail on demand like Discord does."""

    cards: list[tuple[JobStatus, int]] = field(default_factory=list)
    epochs: list[EpochReady] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    dms: list[tuple[NoticeKind, int | None]] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    not_submitted_jobs: list[str] = field(default_factory=list)
    fail_epochs: set[int] = field(default_factory=set)
    fail_notices: int = 0
    gate: asyncio.Event | None = None  # when set up, epoch posts wait for it
    waiting: asyncio.Event = field(default_factory=asyncio.Event)
    # Every post Discord holds, by (job, key): what ``find_post`` searches.
    board: dict[tuple[str, str], int] = field(default_factory=dict)
    # Keys whose post reaches Discord but whose answer is lost (a timeout, the bot dying).
    lose_answers: set[str] = field(default_factory=set)
    searches: list[str] = field(default_factory=list)

    def _posted(self, job: Job, key: str, message_id: int) -> int:
        self.board[(job.id, key)] = message_id
        if key in self.lose_answers:
            self.lose_answers.discard(key)
            raise TimeoutError("the answer never came")
        return message_id

    async def show_card(self, job: Job, epochs_done: int) -> None:
        self.cards.append((job.status, epochs_done))

    async def post_epoch(self, event: EpochReady) -> int | None:
        if self.gate is not None:
            self.waiting.set()
            await self.gate.wait()
        if event.number in self.fail_epochs:
            self.fail_epochs.discard(event.number)
            raise RuntimeError("Discord is having a bad day")
        self.epochs.append(event)
        return self._posted(event.job, event.key, 1000 + event.number)

    async def post_notice(self, notice: Notice) -> int | None:
        if self.fail_notices:
            self.fail_notices -= 1
            raise RuntimeError("Discord is having a bad day")
        self.notices.append(notice)
        return self._posted(notice.job, notice_key(notice.kind), 2000 + len(self.notices))

    async def send_dm(self, notice: Notice, message_id: int | None) -> None:
        self.dms.append((notice.kind, message_id))
        self._posted(notice.job, dm_key(notice.kind), 3000 + len(self.dms))

    async def reopen(self, job: Job) -> None:
        self.reopened.append(job.id)

    async def not_submitted(self, job: Job) -> None:
        self.not_submitted_jobs.append(job.id)

    async def find_post(self, job: Job, key: str) -> int | None:
        self.searches.append(key)
        return self.board.get((job.id, key))


def core_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """A simulated bot that polls fast and edits cards at once."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "civitai_mode": CivitaiMode.SIMULATE,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "poll_delays_seconds": (0.02,),
        "poll_interval_seconds": 0.05,
        "card_edit_interval_seconds": 0,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


async def stopped_time_services(settings: Settings) -> AsyncIterator[Services]:
    services = await Services.start(settings)
    sim(services).speed = 0  # time moves only when a test says so
    yield services
    await services.close()


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    async for started_services in stopped_time_services(core_settings(tmp_path)):
        yield started_services


def sim(services: Services) -> Simulator:
    assert services.orchestrator.simulator is not None
    return services.orchestrator.simulator


async def started(services: Services, sink: RecordingSink) -> Tracker:
    services.tracker.attach(sink)
    await services.tracker.start()
    return services.tracker


async def opened_job(services: Services, tmp_path: Path, **options: Any) -> Job:
    job = await submit(services, tmp_path, guild_id=GUILD, user_id=USER, channel_id=CHANNEL, **options)
    await services.store.events.mark_handled(job.id, "thread:opened")  # what open_job_thread does
    return job


def callback_tracker(services: Services) -> Tracker:
    """A second tracker on the same database in callback mode: nothing polls, and retries are slow,
    so only the test (and the callbacks it hands over) makes it refresh."""
    return Tracker(
        settings=services.settings.model_copy(update={"public_url": "https://bot.test"}),
        store=services.store,
        secretbox=services.secretbox,
        client=services.orchestrator.client,
        clock=services.clock,
        schedule=PollSchedule(delays=(), interval=600),
    )


async def crashed_submit(services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, guild_id: int) -> Job:
    """A job left ``submitting``: the process died right after the orchestrator took the submit."""

    async def crash(*args: object) -> None:
        raise SystemExit("the process died right after the submit")

    monkeypatch.setattr(services.store.jobs, "mark_submitted", crash)
    with pytest.raises(SystemExit):
        await submit(services, tmp_path, guild_id=guild_id, user_id=USER, channel_id=CHANNEL)
    monkeypatch.undo()
    [job] = await services.store.jobs.list_unfinished()
    assert job.status is JobStatus.SUBMITTING and job.workflow_id is None
    return job


async def test_concurrent_refresh_requests_coalesce_into_one_running_and_one_queued(
    services: Services, tmp_path: Path
) -> None:
    sink = RecordingSink(gate=asyncio.Event())
    tracker = await started(services, sink)
    job = await opened_job(services, tmp_path)
    await advance(sim(services), until_epoch(1))

    running = tracker.request_refresh(job.id)
    await asyncio.wait_for(sink.waiting.wait(), 5)  # the first refresh read the workflow, posts epoch 1
    before = tracker.refreshes
    await advance(sim(services), PER_EPOCH)  # epoch 2 exists now
    queued = [tracker.request_refresh(job.id) for _ in range(20)]
    sink.gate.set()

    first = await running
    results = await asyncio.gather(*queued)
    # Twenty requests during a refresh made exactly one more refresh, which saw epoch 2.
    assert tracker.refreshes - before == 1
    assert first.changed and all(r == results[0] and r.changed for r in results)
    assert [e.number for e in sink.epochs] == [1, 2]


async def test_each_epoch_and_the_end_are_told_once_across_failures_and_a_restart(
    services: Services, tmp_path: Path
) -> None:
    sink = RecordingSink(fail_epochs={2}, fail_notices=1)
    tracker = await started(services, sink)
    job = await opened_job(services, tmp_path)

    await advance(sim(services), until_epoch(3))
    result = await tracker.refresh(job.id)
    # Epoch 2 failed to post: epoch 3 waits behind it so the thread stays in order.
    assert result.outcome is Outcome.PENDING
    assert [e.number for e in sink.epochs] == [1]
    result = await tracker.refresh(job.id)
    assert result.outcome is Outcome.RUNNING and [e.number for e in sink.epochs] == [1, 2, 3]
    epoch = sink.epochs[0]
    assert (epoch.total, epoch.prompts, len(epoch.samples)) == (10, PROMPTS, 2)
    assert epoch.air is not None and epoch.air.startswith("urn:air:flux1:lora:orchestrator:blob@")
    for sample in epoch.samples:
        Image.open(io.BytesIO(sample.data)).verify()
    assert [p.epoch_number for p in await services.store.epochs.posted_epochs(job.id)] == [1, 2, 3]

    # A restart: a new tracker on the same database repeats nothing. (Callback mode and slow
    # retries, so that nothing but this test makes it refresh.)
    await tracker.stop()
    restarted = callback_tracker(services)
    sink2 = RecordingSink()
    restarted.attach(sink2)
    await restarted.start()
    try:
        assert (await restarted.refresh(job.id)).outcome is Outcome.RUNNING
        assert sink2.epochs == []

        await advance(sim(services), until_epoch(10))
        # The end notice fails once: the job stays unfinished (so reconcile keeps it) until told.
        sink2.fail_notices = 1
        assert (await restarted.refresh(job.id)).outcome is Outcome.PENDING
        stored = await services.store.jobs.get(job.id)
        assert stored is not None and stored.status is JobStatus.PROCESSING
        assert [job.id for job in await services.store.jobs.list_unfinished()] == [job.id]
        assert (await restarted.refresh(job.id)).outcome is Outcome.FINISHED
        assert (await restarted.refresh(job.id)).outcome is Outcome.FINISHED
    finally:
        await restarted.stop()

    assert [e.number for e in sink2.epochs] == list(range(4, 11))
    [notice] = sink2.notices
    assert notice.kind is NoticeKind.SUCCEEDED and notice.epochs == tuple(range(1, 11))
    assert notice.grid is not None and Image.open(io.BytesIO(notice.grid)).format == "PNG"
    assert sink2.dms == [(NoticeKind.SUCCEEDED, 2001)]
    assert sink2.cards[-1] == (JobStatus.SUCCEEDED, 10)
    stored = await services.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.SUCCEEDED and stored.progress == 1.0
    # The ledger holds what the workflow really cost (its debits).
    assert await services.store.ledger.spent_for_job(job.id) == stored.final_cost


async def test_a_forged_callback_body_changes_nothing_but_causes_a_refresh(services: Services, tmp_path: Path) -> None:
    sink = RecordingSink()
    tracker = await started(services, sink)
    job = await opened_job(services, tmp_path)
    await advance(sim(services), until_epoch(1) - 5)  # training, no epoch yet
    await tracker.refresh(job.id)
    before = tracker.refreshes

    forged = {"$type": "workflow", "workflowId": job.workflow_id, "status": "succeeded"}
    await tracker.on_callback(job.id, forged)
    await tracker.refresh(job.id)  # waits for the refresh the callback asked for (coalesced with it)

    assert tracker.refreshes > before
    stored = await services.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.PROCESSING
    assert sink.notices == [] and sink.epochs == []


async def test_members_who_turned_dms_off_get_no_dm_but_the_thread_is_told(services: Services, tmp_path: Path) -> None:
    sink = RecordingSink()
    tracker = await started(services, sink)
    await services.store.users.set_dm_notify(USER, False)
    job = await opened_job(services, tmp_path, epochs=2)
    sim(services).faults.fail_at_epoch(2, workflow_id=job.workflow_id)
    await advance(sim(services), 1000)
    assert (await tracker.refresh(job.id)).outcome is Outcome.FINISHED
    [notice] = sink.notices
    assert notice.kind is NoticeKind.FAILED and notice.epochs == (1,)
    assert notice.explanation is not None and notice.grid is None
    assert sink.dms == []


async def test_a_job_is_not_posted_about_before_its_thread_exists(services: Services, tmp_path: Path) -> None:
    sink = RecordingSink()
    tracker = await started(services, sink)
    job = await submit(services, tmp_path, guild_id=GUILD, user_id=USER, channel_id=CHANNEL)
    await advance(sim(services), until_epoch(1))
    assert (await tracker.refresh(job.id)).outcome is Outcome.PENDING
    assert sink.epochs == []
    await tracker.job_opened(job.id)
    assert (await tracker.refresh(job.id)).outcome is Outcome.RUNNING
    assert [e.number for e in sink.epochs] == [1]


async def test_a_submit_interrupted_by_a_crash_is_found_by_its_tag_and_reopened(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = RecordingSink()
    tracker = await started(services, sink)
    job = await crashed_submit(services, tmp_path, monkeypatch, GUILD)

    assert (await tracker.refresh(job.id)).outcome is Outcome.PENDING  # its lease still runs
    assert sink.reopened == []
    services.clock.advance(seconds=61)  # the lease ran out: nobody is submitting it any more
    assert (await tracker.refresh(job.id)).outcome is Outcome.RUNNING
    recovered = await services.store.jobs.get(job.id)
    assert recovered is not None and recovered.status is JobStatus.SUBMITTED
    assert recovered.workflow_id == next(iter(sim(services).workflows))
    assert sink.reopened == [job.id]


async def test_a_submit_that_never_reached_civitai_is_released_once_its_lease_ran_out(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = RecordingSink()
    tracker = await started(services, sink)

    real_submit = OrchestratorSession.submit

    async def crash(self: OrchestratorSession, template: Any, **kwargs: Any) -> Any:
        if kwargs.get("whatif"):
            return await real_submit(self, template, **kwargs)
        raise SystemExit("the process died before the submit went out")

    monkeypatch.setattr(OrchestratorSession, "submit", crash)
    with pytest.raises(SystemExit):
        await submit(services, tmp_path, guild_id=GUILD, user_id=USER, channel_id=CHANNEL)
    monkeypatch.undo()
    [job] = await services.store.jobs.list_unfinished()
    assert job.status is JobStatus.SUBMITTING
    assert await services.store.ledger.spent_for_job(job.id) > 0  # the price is reserved meanwhile
    services.clock.advance(seconds=61)
    assert (await tracker.refresh(job.id)).outcome is Outcome.FINISHED
    after = await services.store.jobs.get(job.id)
    assert after is not None and after.status is JobStatus.DISCARDED
    assert await services.store.ledger.spent_for_job(job.id) == 0
    assert sink.not_submitted_jobs == [job.id] and sim(services).workflows == {}


async def test_polling_long_polls_so_a_change_is_seen_before_the_wait_ends(services: Services, tmp_path: Path) -> None:
    sink = RecordingSink()
    tracker = await started(services, sink)
    tracker.schedule = PollSchedule(delays=(5.0,), interval=5.0)  # long-polls of 5 s
    job = await opened_job(services, tmp_path)
    await advance(sim(services), until_epoch(1) - 2)  # the next step of time brings epoch 1, one change
    tracker.follow(job.id)
    await eventually(lambda: tracker.refreshes > 0, "the first refresh")
    await asyncio.sleep(0.2)  # the first refresh is done; a long-poll is waiting for a change
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    await advance(sim(services), 2)
    while not sink.epochs:
        await asyncio.sleep(0.01)
        assert loop.time() - started_at < 3, "the long-poll did not return on the change"
    assert [e.number for e in sink.epochs] == [1]


def test_the_poll_schedule_backs_off_then_stays_at_its_interval() -> None:
    schedule = PollSchedule()
    assert [schedule.delay(n) for n in range(6)] == [2.0, 5.0, 10.0, 15.0, 30.0, 30.0]


async def test_closing_does_not_wait_out_a_long_poll(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "own",
        civitai_mode=CivitaiMode.SIMULATE,
        http_host="127.0.0.1",
        http_port=0,
        poll_delays_seconds=(30.0,),  # long-polls of 30 s
    )
    own = await Services.start(settings)
    sim(own).speed = 0
    await started(own, RecordingSink())
    job = await opened_job(own, tmp_path)
    own.tracker.follow(job.id)
    await eventually(lambda: own.tracker.refreshes > 0, "the first refresh")
    await asyncio.sleep(0.2)  # the poller is in its long-poll now
    loop = asyncio.get_running_loop()
    began = loop.time()
    await own.close()
    assert loop.time() - began < 3


async def test_a_post_whose_answer_was_lost_is_found_on_discord_not_posted_again(
    services: Services, tmp_path: Path
) -> None:
    # The post reaches Discord but the bot never learns it (killed, or the answer timed out):
    # the intent recorded before it makes the next refresh look for it instead of posting again.
    sink = RecordingSink(lose_answers={"epoch:2", "notice:end", "dm:end"})
    tracker = await started(services, sink)
    job = await opened_job(services, tmp_path, epochs=2)
    await advance(sim(services), 1000)  # the run is over
    for _ in range(4):  # epoch 2, the notice, the DM: each answer lost once
        await tracker.refresh(job.id)
    assert (await tracker.refresh(job.id)).outcome is Outcome.FINISHED
    assert [e.number for e in sink.epochs] == [1, 2]
    assert len(sink.notices) == 1 and len(sink.dms) == 1
    assert sorted(sink.searches) == ["dm:end", "epoch:2", "notice:end"]  # only posts that had an intent
    posted = await services.store.epochs.posted_epochs(job.id)
    assert [(p.epoch_number, p.message_id) for p in posted] == [(1, 1001), (2, 1002)]


async def test_errors_that_may_pass_never_lose_a_run_and_a_gone_one_is_lost_once_told(
    services: Services, tmp_path: Path
) -> None:
    sink = RecordingSink()
    tracker = await started(services, sink)
    services.orchestrator.client.retry = RetryPolicy(attempts=1)  # each failure reaches the tracker at once
    job = await opened_job(services, tmp_path)
    assert job.workflow_id is not None
    for status in (503, 500, 429):
        sim(services).faults.fail_next(1, status=status, route="get")
        assert (await tracker.refresh(job.id)).outcome is Outcome.PENDING
    stored = await services.store.jobs.get(job.id)
    assert stored is not None and stored.status.active and sink.notices == []

    sim(services).record(job.workflow_id).deleted = True
    sink.fail_notices = 1  # Discord is down when the loss is found: the job stays active until told
    assert (await tracker.refresh(job.id)).outcome is Outcome.PENDING
    assert await services.store.jobs.count_active_for_user(GUILD, USER) == 1
    assert (await tracker.refresh(job.id)).outcome is Outcome.FINISHED
    [notice] = sink.notices
    assert notice.kind is NoticeKind.LOST and notice.explanation is not None
    assert sink.dms == [(NoticeKind.LOST, 2001)] and sink.cards[-1] == (JobStatus.LOST, 0)
    assert await services.store.jobs.count_active_for_user(GUILD, USER) == 0
    assert (await tracker.refresh(job.id)).outcome is Outcome.FINISHED and len(sink.notices) == 1
    [entry] = [e for e in await services.store.audit.recent(GUILD) if e.action != "job.submit"]
    assert entry.action == "job.lost" and entry.actor_id is None and entry.details["job"] == job.id


@pytest.mark.parametrize("callback_comes", [True, False], ids=["reason-arrives", "reason-never-comes"])
async def test_a_failure_read_before_its_callback_waits_for_the_reason(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, callback_comes: bool
) -> None:
    # The workflow says "failed" but not why; the job callback says why. A refresh that read the
    # failure first (the callback still on its way) must not tell "failed without a reason".
    monkeypatch.setattr("bot.jobs.tracker.REASON_GRACE_SECONDS", 0.5)
    tracker = callback_tracker(services)
    sink = RecordingSink()
    tracker.attach(sink)
    await tracker.start()
    try:
        job = await opened_job(services, tmp_path, epochs=2)
        sim(services).faults.fail_at_epoch(2, workflow_id=job.workflow_id, reason="timeout")
        await advance(sim(services), 1000)

        assert (await tracker.refresh(job.id)).outcome is Outcome.RUNNING
        assert sink.notices == []  # not told yet: the reason may still come
        if callback_comes:
            await tracker.on_callback(job.id, {"$type": "job", "status": "failed", "reason": "timeout"})
        await eventually(lambda: sink.notices, "the end notice", within=5)
    finally:
        await tracker.stop()
    [notice] = sink.notices
    assert notice.kind is NoticeKind.FAILED and notice.explanation is not None
    headline = "The run took too long" if callback_comes else "The training failed"
    assert notice.explanation.headline == headline
    stored = await services.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.FAILED
