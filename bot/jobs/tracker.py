"""Following runs: refresh each job from the orchestrator, turn what changed into events, act once.

Triggers only ever *request* a refresh: a callback (``on_callback``: a hint, never trusted for
state), the poll loop (without ``PUBLIC_URL``), the reconcile pass (at start and every few
minutes, for every unfinished job) and retries after a failed action. Refreshes of one job are
serialised and coalesced: one in flight and at most one queued, however many requests arrive.

A refresh reads ``GET /v2/consumer/workflows/{id}`` with the job's own token and compares it
with what SQLite says was already done, so a restart, a duplicate or a replayed callback never
repeats anything and a missed one costs only time:

- status or progress changed → the job card is edited (throttled, ``CardThrottle``);
- an available epoch not yet in ``posted_epochs`` → an epoch message;
- a terminal status → the end notice, the owner's DM and the final card, each recorded once
  (and a failure in the audit trail); only then is the terminal status stored, so an end that
  could not be told yet keeps the job in the reconcile pass until it is;
- a run that can no longer be followed (its workflow is gone, its token was removed, it belongs
  to the other mode, simulated or real) → told the same way, then stored ``lost``. Errors that
  may pass (5xx, 429, unreachable) never make a run lost.

Every post is exactly-once across crashes and downtime of any length: an intent is recorded
before the post, and an intent left without its record is looked for on Discord before posting
again (``bot.jobs.events``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any

from bot.audit import AuditTrail
from bot.civitai.client import MAX_CONNECTIONS, OrchestratorClient, OrchestratorSession
from bot.civitai.errors import NotFound, OrchestratorError
from bot.civitai.models import TrainingEpoch, Workflow
from bot.civitai.pricing import price_from_workflow
from bot.clock import Clock
from bot.config import Settings
from bot.errors import UserFacingError
from bot.jobs.card_throttle import CardThrottle
from bot.jobs.epoch_files import EpochFiles, EpochLink, total_epochs
from bot.jobs.events import (
    CARD_FINAL,
    THREAD_OPENED,
    JobEventSink,
    Notice,
    NoticeKind,
    dm_key,
    epoch_key,
    notice_key,
)
from bot.jobs.explain import MODERATION_UNDER_REVIEW, LostReason, explain_end
from bot.jobs.lost import close_lost, lost_explanation, mode_mismatch
from bot.jobs.payer import MissingToken, job_token
from bot.jobs.recovery import SUBMIT_LEASE, adopt, find_workflow
from bot.jobs.settlement import settle_job
from bot.jobs.state import card_fingerprint, job_status, progress, stored_state
from bot.logging_setup import about_job, job_context
from bot.metrics import BotMetrics
from bot.secretbox import SecretBox
from storage import Store
from storage.models import Job, JobStatus

log = logging.getLogger(__name__)

# Refreshes of different jobs run side by side, up to this many (a reconcile after downtime
# must not fire hundreds of reads at once).
REFRESH_CONCURRENCY = 8
# A job is not posted about until its card and thread exist; this long after the submit, posts
# go wherever they can (the thread never came: DMs).
THREAD_GRACE = timedelta(minutes=2)
# Long-polls hold a pooled connection for their whole wait. Past this many at once the other
# pollers just sleep: refreshes and submits always find a connection, and the client's pool
# never queues hundreds of requests (its bookkeeping grows with queue × connections).
LONG_POLLS_AT_ONCE = MAX_CONNECTIONS // 3
# Refreshes in flight get this long to finish when the tracker stops.
STOP_GRACE_SECONDS = 3.0
MAX_HINT_LENGTH = 100
# The workflow says a run failed but not why; the why comes with the job callback, which may
# still be on its way (the refresh that saw the failure can overtake it). A failed run waits
# this long for it before it is told as "failed without giving a reason".
REASON_GRACE_SECONDS = 5.0


class Outcome(StrEnum):
    RUNNING = "running"  # followed, nothing left undone
    PENDING = "pending"  # something could not be done yet: try again soon
    FINISHED = "finished"  # terminal and fully told
    GONE = "gone"  # nothing to follow: unknown job, never submitted, workflow unreadable


@dataclass(frozen=True)
class Refresh:
    outcome: Outcome
    changed: bool = False  # the card or the posted epochs moved

    @property
    def following(self) -> bool:
        return self.outcome in (Outcome.RUNNING, Outcome.PENDING)


@dataclass(frozen=True)
class PollSchedule:
    """Waits between polls: ``delays`` one after another, then ``interval`` for good."""

    delays: tuple[float, ...] = (2.0, 5.0, 10.0, 15.0)
    interval: float = 30.0

    def delay(self, attempt: int) -> float:
        return self.delays[attempt] if attempt < len(self.delays) else self.interval

    @classmethod
    def from_settings(cls, settings: Settings) -> PollSchedule:
        return cls(tuple(settings.poll_delays_seconds), settings.poll_interval_seconds)


@dataclass
class _Lane:
    """One job's refreshes: the one running and the requests waiting for the next."""

    task: asyncio.Task[None] | None = None
    running: list[asyncio.Future[Refresh]] = field(default_factory=list)
    queued: list[asyncio.Future[Refresh]] = field(default_factory=list)


class Tracker:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        secretbox: SecretBox,
        client: OrchestratorClient,
        clock: Clock,
        schedule: PollSchedule | None = None,
        metrics: BotMetrics | None = None,
        simulated: bool | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        self.settings = settings
        # Which orchestrator the client talks to: a run of the other kind cannot be followed.
        self.simulated = settings.simulated if simulated is None else simulated
        self.audit = audit  # failed and lost runs are recorded there (and reach the log channel)
        self.store = store
        self.secretbox = secretbox
        self.client = client
        self.clock = clock
        self.schedule = schedule or PollSchedule.from_settings(settings)
        self.metrics = metrics  # how long refreshes take (``lorabot_refresh_seconds``)
        self.polling = not settings.public_url
        # The servers whose jobs this process follows (None: all, one process). Another
        # process owns the rest: it is told of their callbacks, and nothing here refreshes them.
        self.shards = settings.shard_scope
        self.files = EpochFiles()
        self.cards = CardThrottle(settings.card_edit_interval_seconds, self._show_card)
        self.refreshes = 0  # workflow reads done by refreshes (tests check coalescing with it)
        self._sink: JobEventSink | None = None
        self._running = False
        self._lanes: dict[str, _Lane] = {}
        self._pollers: dict[str, asyncio.Task[None]] = {}
        self._retries: dict[str, asyncio.Task[None]] = {}
        self._rechecks: dict[str, asyncio.Task[None]] = {}
        self._failures: dict[str, int] = {}
        self._hints: dict[str, str] = {}
        self._failed_seen: dict[str, float] = {}  # job → loop time its reason-less failure was first read
        self._reconciler: asyncio.Task[None] | None = None
        self._told: set[asyncio.Task[None]] = set()  # callbacks other processes passed on
        self._limit = asyncio.Semaphore(REFRESH_CONCURRENCY)
        self._long_polls = 0

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def sink(self) -> JobEventSink:
        if self._sink is None:
            raise RuntimeError("the tracker has no sink: attach one before start()")
        return self._sink

    def attach(self, sink: JobEventSink) -> None:
        self._sink = sink

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Start the reconcile loop (its first pass runs at once)."""
        if self._running:
            return
        self.sink  # noqa: B018 - fail now rather than at the first event
        self._running = True
        await self.store.listen_to_processes(self._heard_from_process)
        self._reconciler = asyncio.create_task(self._reconcile_loop(), name="tracker-reconcile")

    async def stop(self) -> None:
        """Stop every loop; refreshes in flight get a moment to finish their current post."""
        self._running = False
        waiting = (*self._pollers.values(), *self._retries.values(), *self._rechecks.values(), *self._told)
        background = [t for t in (self._reconciler, *waiting) if t]
        for task in background:
            task.cancel()
        lanes = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if lanes:
            _, pending = await asyncio.wait(lanes, timeout=STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
        await asyncio.gather(*background, *lanes, return_exceptions=True)
        await self.cards.close()
        self._pollers.clear()
        self._retries.clear()
        self._rechecks.clear()

    # --- triggers -----------------------------------------------------------------------------

    async def on_callback(self, job_id: str, payload: dict[str, Any]) -> None:
        """A callback arrived (authenticated by its URL secret): only a hint to refresh.

        Its body changes no state. A failure ``reason`` is kept only to word the explanation
        once the workflow itself says the run failed (the workflow carries no reason).
        """
        reason = payload.get("reason")
        hint = reason[:MAX_HINT_LENGTH] if isinstance(reason, str) and reason else None
        job = await self.store.jobs.get(job_id)
        if job is not None and not self.owns(job):
            # Reached the wrong process (a load balancer in front of several): tell the owner.
            # Should it miss this, its reconcile pass still finds what changed.
            await self.store.tell_processes(json.dumps({"job": job_id, "reason": hint}))
            return
        self._hinted_refresh(job_id, hint)

    def _hinted_refresh(self, job_id: str, hint: str | None) -> None:
        if hint:
            self._hints[job_id] = hint
        self.request_refresh(job_id)

    def owns(self, job: Job) -> bool:
        """Whether this process follows ``job`` (its server is on one of its shards)."""
        return self.shards is None or self.shards.owns(job.guild_id)

    def _heard_from_process(self, payload: str) -> None:
        """Another process received a callback for a job (every listener hears it, the sender
        too): the owner refreshes it; nobody passes it on again."""
        try:
            told = json.loads(payload)
            job_id, hint = str(told["job"]), told.get("reason")
        except (ValueError, KeyError, TypeError):
            log.warning("Ignoring a malformed message from another process")
            return
        if not self._running:
            return
        task = asyncio.create_task(self._told_refresh(job_id, hint if isinstance(hint, str) else None))
        self._told.add(task)
        task.add_done_callback(self._told.discard)

    async def _told_refresh(self, job_id: str, hint: str | None) -> None:
        job = await self.store.jobs.get(job_id)
        if job is not None and self.owns(job):
            self._hinted_refresh(job_id, hint)

    async def job_opened(self, job_id: str) -> None:
        """The job's card and thread exist: start posting, and follow it from now on."""
        await self.store.events.mark_handled(job_id, THREAD_OPENED)
        self.follow(job_id)

    def follow(self, job_id: str) -> None:
        """Follow a submitted job: poll it (no PUBLIC_URL) or read it once (callbacks follow)."""
        if not self._running:
            return
        if self.polling:
            poller = self._pollers.get(job_id)
            if poller is None or poller.done():
                self._pollers[job_id] = asyncio.create_task(self._poll(job_id), name=f"poll-{job_id}")
        else:
            self.request_refresh(job_id)

    def request_refresh(self, job_id: str) -> asyncio.Future[Refresh]:
        """Refresh soon; the future completes after a refresh that started after this call."""
        waiter: asyncio.Future[Refresh] = asyncio.get_running_loop().create_future()
        if not self._running:
            waiter.set_result(Refresh(Outcome.GONE))
            return waiter
        lane = self._lanes.setdefault(job_id, _Lane())
        lane.queued.append(waiter)
        if lane.task is None:
            lane.task = asyncio.create_task(self._drain(job_id, lane), name=f"refresh-{job_id}")
        return waiter

    async def refresh(self, job_id: str) -> Refresh:
        return await self.request_refresh(job_id)

    async def reconcile(self) -> int:
        """Look at every unfinished job once (missed callbacks, a restart); returns how many."""
        jobs = await self.store.jobs.list_unfinished(self.shards)
        for job in jobs:
            if self.polling and job.status is not JobStatus.SUBMITTING:
                self.follow(job.id)
            else:
                self.request_refresh(job.id)
        return len(jobs)

    # --- what the Discord side asks for -------------------------------------------------------

    async def session_for(self, job: Job) -> OrchestratorSession:
        token = await job_token(self.store, self.secretbox, job, operator_token=self.settings.civitai_token)
        return self.client.session(token)

    async def fresh_link(self, job: Job, number: int) -> EpochLink:
        """A download link for one epoch's LoRA, made now (never stored: it expires)."""
        return await self.files.fresh_link(await self.session_for(job), job, number)

    # --- loops --------------------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                count = await self.reconcile()
                log.debug("Reconcile pass: %d unfinished job(s)", count)
            except Exception:
                log.exception("The reconcile pass failed; trying again at the next one")
            await asyncio.sleep(self.settings.reconcile_interval_seconds)

    async def _poll(self, job_id: str) -> None:
        """Poll one job until it is finished: long-poll the workflow, refresh, back off."""
        with job_context(job_id=job_id):
            attempt = 0
            result = await self.request_refresh(job_id)
            while result.following:
                await self._wait_for_change(job_id, self.schedule.delay(attempt))
                result = await self.request_refresh(job_id)
                attempt = 0 if result.changed else attempt + 1
            self._pollers.pop(job_id, None)

    async def _wait_for_change(self, job_id: str, seconds: float) -> None:
        """Sleep ``seconds``, or return sooner when the orchestrator says the workflow changed.

        Long-polling (``wait`` + ``until=change``) takes whole seconds; shorter waits just sleep.
        """
        job = await self.store.jobs.get(job_id)
        if seconds < 1 or job is None or job.workflow_id is None or self._long_polls >= LONG_POLLS_AT_ONCE:
            await asyncio.sleep(seconds)
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._long_polls += 1
        with about_job(job):
            try:
                session = await self.session_for(job)
                await session.get(job.workflow_id, wait=int(seconds), until_change=True)
            except (OrchestratorError, UserFacingError) as exc:
                log.debug("Long-poll of job %s failed (%s); sleeping instead", job_id, type(exc).__name__)
                await asyncio.sleep(max(0.0, seconds - (loop.time() - started)))
            finally:
                self._long_polls -= 1

    def _retry_later(self, job_id: str) -> None:
        """Something could not be done: refresh again after a backoff (callback mode)."""
        if self.polling or not self._running:
            return  # the poll loop retries by itself
        current = self._retries.get(job_id)
        if current is not None and not current.done():
            return
        attempt = self._failures.get(job_id, 0)
        self._failures[job_id] = attempt + 1
        delay = self.schedule.delay(attempt)

        async def later() -> None:
            await asyncio.sleep(delay)
            self._retries.pop(job_id, None)
            self.request_refresh(job_id)

        self._retries[job_id] = asyncio.create_task(later(), name=f"retry-{job_id}")

    def recheck_later(self, job_id: str, seconds: float) -> None:
        """Refresh ``job_id`` after ``seconds`` (a submit whose lease is still running)."""
        if not self._running or job_id in self._rechecks:
            return

        async def later() -> None:
            try:
                await asyncio.sleep(seconds)
            finally:
                self._rechecks.pop(job_id, None)
            self.request_refresh(job_id)

        self._rechecks[job_id] = asyncio.create_task(later(), name=f"recheck-{job_id}")

    def _settled(self, job_id: str) -> None:
        """A refresh did everything: a retry still waiting from an earlier failure is moot."""
        self._failures.pop(job_id, None)
        retry = self._retries.pop(job_id, None)
        if retry is not None:
            retry.cancel()

    async def _drain(self, job_id: str, lane: _Lane) -> None:
        with job_context(job_id=job_id):
            await self._drain_lane(job_id, lane)

    async def _drain_lane(self, job_id: str, lane: _Lane) -> None:
        try:
            while lane.queued:
                lane.running, lane.queued = lane.queued, []
                result = await self._refresh_safely(job_id)
                for waiter in lane.running:
                    if not waiter.done():
                        waiter.set_result(result)
                lane.running = []
                if result.outcome is Outcome.PENDING:
                    self._retry_later(job_id)
                else:
                    self._settled(job_id)
        finally:
            for waiter in (*lane.running, *lane.queued):
                waiter.cancel()
            if self._lanes.get(job_id) is lane:
                del self._lanes[job_id]

    async def _refresh_safely(self, job_id: str) -> Refresh:
        async with self._limit:
            try:
                job = await self.store.jobs.get(job_id)
            except Exception:
                log.exception("Reading job %s from the store failed", job_id)
                return Refresh(Outcome.PENDING)
            if job is None:
                return Refresh(Outcome.GONE)
            if not self.owns(job):
                log.debug("Not refreshing job %s: its server is on another process's shard", job_id)
                return Refresh(Outcome.GONE)
            with about_job(job):  # every line below, failures included, carries the job's ids
                return await self._refresh_logged(job)

    async def _refresh_logged(self, job: Job) -> Refresh:
        job_id = job.id
        try:
            return await self._refresh(job)
        except OrchestratorError as exc:
            if exc.retryable:
                log.warning("Could not read job %s from Civitai (%s); will retry", job_id, type(exc).__name__)
                return Refresh(Outcome.PENDING)
            log.warning("Cannot follow job %s: %s", job_id, exc)
            return Refresh(Outcome.GONE)
        except UserFacingError as exc:  # e.g. the token it was paid with was removed
            log.warning("Cannot follow job %s: %s", job_id, exc.user_message)
            return Refresh(Outcome.GONE)
        except Exception:
            log.exception("Refreshing job %s failed", job_id)
            return Refresh(Outcome.PENDING)

    # --- one refresh --------------------------------------------------------------------------

    async def _refresh(self, job: Job) -> Refresh:
        if job.status is JobStatus.SUBMITTING:
            return await self._recover_submit(job)
        if job.status.finished:
            return Refresh(Outcome.FINISHED)
        if job.workflow_id is None or job.status is JobStatus.DRAFT:
            return Refresh(Outcome.GONE)
        if not await self._ready(job):
            return Refresh(Outcome.PENDING)
        if (mismatch := mode_mismatch(job, simulated=self.simulated)) is not None:
            return await self._lose(job, mismatch)
        try:
            session = await self.session_for(job)
        except MissingToken:
            return await self._lose(job, LostReason.TOKEN_REMOVED)
        self.refreshes += 1
        with self._timed():
            try:
                workflow = await session.get(job.workflow_id)
            except NotFound:
                return await self._lose(job, LostReason.WORKFLOW_GONE)
            return await self._apply(job, session, workflow)

    def _timed(self) -> contextlib.AbstractContextManager[None]:
        return self.metrics.refresh_seconds.time() if self.metrics else contextlib.nullcontext()

    async def _ready(self, job: Job) -> bool:
        if await self.store.events.is_handled(job.id, THREAD_OPENED):
            return True
        return job.submitted_at is not None and self.clock.now() - job.submitted_at > THREAD_GRACE

    async def _apply(self, job: Job, session: OrchestratorSession, workflow: Workflow) -> Refresh:
        status = job_status(workflow, job.status)
        state = stored_state(workflow)
        fraction = progress(workflow, status)
        now = replace(job, status=status, last_state=state, progress=fraction)
        epochs_done = len(workflow.available_epochs())
        card_moved = card_fingerprint(job.status, job.progress, job.last_state) != card_fingerprint(
            status, fraction, state
        )
        posted, all_posted = await self._post_epochs(now, session, workflow)
        told = all_posted
        output = workflow.training_output()
        if output is not None and output.under_review and not status.finished:
            notice = Notice(now, NoticeKind.UNDER_REVIEW, MODERATION_UNDER_REVIEW)
            told = await self._tell(notice, self._as_is(notice)) and told
        changed = card_moved or posted > 0
        if status.finished:
            stored = await self.store.jobs.get(job.id)
            if stored is not None and stored.status.finished:
                self._failed_seen.pop(job.id, None)
                return Refresh(Outcome.FINISHED)  # ended by a cancel from Discord, which told everyone
            if told and (wait := self._reason_wait(now, workflow)) > 0:
                self.recheck_later(job.id, wait)  # or sooner: the callback's hint refreshes it
                return Refresh(Outcome.RUNNING, changed)
            if told:
                told = await self._end(now, session, workflow, epochs_done)
            if not told:
                return Refresh(Outcome.PENDING, changed)
            await settle_job(self.store, job.id, workflow)
            await self.store.jobs.update_state(job.id, status, state, fraction)
            self._hints.pop(job.id, None)
            self._failed_seen.pop(job.id, None)
            log.info("Job %s ended %s and everyone was told", job.id, status.value)
            return Refresh(Outcome.FINISHED, True)
        await self.store.jobs.update_state(job.id, status, state, fraction)
        if status is not job.status:
            log.info("Job %s is %s (was %s)", job.id, status.value, job.status.value)
        if card_moved:
            self.cards.request(now, epochs_done)
        return Refresh(Outcome.RUNNING if told else Outcome.PENDING, changed)

    def _reason_wait(self, job: Job, workflow: Workflow) -> float:
        """Seconds still to wait for the callback that says why ``job`` failed (0: tell it now).

        Only callbacks carry a reason the workflow lacks, so a polling bot never waits."""
        if self.polling or job.status is not JobStatus.FAILED or job.id in self._hints:
            return 0.0
        step = workflow.training_step()
        output = workflow.training_output()
        if (step is not None and step.failure_reasons()) or (output is not None and output.rejected):
            return 0.0
        now = asyncio.get_running_loop().time()
        first = self._failed_seen.setdefault(job.id, now)
        return max(0.0, first + REASON_GRACE_SECONDS - now)

    async def _post_epochs(self, job: Job, session: OrchestratorSession, workflow: Workflow) -> tuple[int, bool]:
        """Post every available epoch not posted yet, in order; (how many posted, all done)."""
        available = workflow.available_epochs()
        if not available:
            return 0, True
        done = {epoch.epoch_number for epoch in await self.store.epochs.posted_epochs(job.id)}
        posted = 0
        for epoch in available:
            if epoch.epoch_number in done:
                continue
            post = functools.partial(self._post_epoch, job, session, workflow, epoch)
            try:
                message_id = await self._deliver(job, epoch_key(epoch.epoch_number), post)
            except Exception as exc:
                # Later epochs wait too, so the thread stays in order.
                log.warning("Could not post epoch %d of job %s yet: %s", epoch.epoch_number, job.id, exc,
                            exc_info=not isinstance(exc, OrchestratorError))  # fmt: skip
                return posted, False
            await self.store.epochs.record_posted(job.id, epoch.epoch_number, message_id)
            posted += 1
        return posted, True

    async def _post_epoch(
        self, job: Job, session: OrchestratorSession, workflow: Workflow, epoch: TrainingEpoch
    ) -> int | None:
        event = await self.files.epoch_ready(session, job, workflow, epoch)  # samples fetched now
        message_id = await self.sink.post_epoch(event)
        log.info("Posted epoch %d/%d of job %s", epoch.epoch_number, event.total, job.id)
        return message_id

    async def _end(self, job: Job, session: OrchestratorSession, workflow: Workflow, epochs_done: int) -> bool:
        """Tell how the run ended (thread, DM) and show the final card; True when all is done."""
        output = workflow.training_output()
        moderation = output.moderation_status if output is not None else None
        kind = NoticeKind(job.status.value)
        explanation = None
        if kind is not NoticeKind.SUCCEEDED:
            step = workflow.training_step()
            reasons = step.failure_reasons() if step is not None else []
            reason = reasons[0] if reasons else self._hints.get(job.id)
            explanation = explain_end(job.status.value, reason=reason, moderation=moderation)
        notice = Notice(
            job=job,
            kind=kind,
            explanation=explanation,
            epochs=tuple(epoch.epoch_number for epoch in workflow.available_epochs()),
            total_epochs=total_epochs(workflow, job),
            final_cost=price_from_workflow(workflow),
        )

        async def with_grid() -> Notice:
            if kind is not NoticeKind.SUCCEEDED:
                return notice
            return replace(notice, grid=await self.files.grid(session, job, workflow))

        if not await self._tell(notice, with_grid):
            return False
        if not await self._once(job.id, CARD_FINAL, lambda: self.cards.final(job, epochs_done)):
            return False
        if explanation is not None and job.status in (JobStatus.FAILED, JobStatus.EXPIRED) and self.audit:
            reason = explanation.headline
            await self.audit.record_job_end(job, None, "job.failed", status=job.status.value, reason=reason)
        return True

    async def _lose(self, job: Job, reason: LostReason) -> Refresh:
        """End a run that can no longer be followed: tell its owner (thread, DM) and show it on the
        card, each once, then audit it and store it ``lost``, which frees its slot. Until all is
        told it stays active, and ``/jobs cancel`` can close it (``bot.jobs.cancel``)."""
        stored = await self.store.jobs.get(job.id)
        if stored is None or stored.status.finished:
            return Refresh(Outcome.FINISHED)  # a cancel from Discord closed it, and said so
        explanation = await lost_explanation(self.store, stored, reason)
        lost = replace(stored, status=JobStatus.LOST, end_reason=reason.value)
        notice = Notice(lost, NoticeKind.LOST, explanation)
        if not await self._tell(notice, self._as_is(notice)):
            return Refresh(Outcome.PENDING)
        epochs_done = len(await self.store.epochs.posted_epochs(job.id))
        if not await self._once(job.id, CARD_FINAL, lambda: self.cards.final(lost, epochs_done)):
            return Refresh(Outcome.PENDING)
        await close_lost(self.store, self.audit, stored, reason, explanation, actor_id=None)
        self._hints.pop(job.id, None)
        return Refresh(Outcome.FINISHED, True)

    @staticmethod
    def _as_is(notice: Notice) -> Callable[[], Awaitable[Notice]]:
        async def build() -> Notice:
            return notice

        return build

    async def _tell(self, notice: Notice, build: Callable[[], Awaitable[Notice]]) -> bool:
        """Post the notice in the thread, then DM the owner (if they want DMs), each once."""
        job = notice.job
        key = notice_key(notice.kind)
        message_id: int | None = None
        if not await self.store.events.is_handled(job.id, key):

            async def post() -> int | None:
                return await self.sink.post_notice(await build())

            try:
                message_id = await self._deliver(job, key, post)
            except Exception as exc:
                log.warning("Could not post the %s notice of job %s yet: %s", notice.kind, job.id, exc,
                            exc_info=not isinstance(exc, OrchestratorError))  # fmt: skip
                return False
            await self.store.events.mark_handled(job.id, key)
        if not (await self.store.users.get(job.user_id)).dm_notify:
            return True

        async def send_dm() -> None:
            await self._deliver(job, dm_key(notice.kind), lambda: self.sink.send_dm(notice, message_id))

        return await self._once(job.id, dm_key(notice.kind), send_dm)

    async def _deliver(self, job: Job, key: str, post: Callable[[], Awaitable[int | None]]) -> int | None:
        """Make the post ``key`` (its done record is missing) exactly once: record the intent
        first; when an earlier attempt was recorded, it may be on Discord already (the bot
        stopped between the post and its record, or the post's answer was lost), so look for it
        before posting again. Returns the message id (None when it went nowhere)."""
        if not await self.store.intents.intend(job.id, key):
            found = await self.sink.find_post(job, key)
            if found is not None:
                log.info("Found the %s post of job %s already on Discord (message %s)", key, job.id, found)
                return found
        return await post()

    async def _once(self, job_id: str, key: str, action: Callable[[], Awaitable[None]]) -> bool:
        """Run ``action`` unless ``key`` was handled; record it after it succeeded."""
        if await self.store.events.is_handled(job_id, key):
            return True
        try:
            await action()
        except Exception as exc:
            log.warning("Could not do %s for job %s yet: %s", key, job_id, exc)
            return False
        await self.store.events.mark_handled(job_id, key)
        return True

    async def _show_card(self, job: Job, epochs_done: int) -> None:
        await self.sink.show_card(job, epochs_done)

    # --- a submit a crash interrupted ---------------------------------------------------------

    async def _recover_submit(self, job: Job) -> Refresh:
        """Resolve a job left ``submitting`` once its lease ran out: its task died (a crash, a
        restart) or gave up on a lost answer. The orchestrator is asked first (by the job's tag
        and externalId); only when it has no such workflow is the reservation dropped."""
        now = self.clock.now()
        if job.lease_until is not None and job.lease_until > now:
            # A submit is still at work (uploads of many images take a while): look once it ends.
            self.recheck_later(job.id, (job.lease_until - now).total_seconds() + 1)
            return Refresh(Outcome.PENDING)
        taken = await self.store.jobs.take_over_submit(job.id, now + SUBMIT_LEASE)
        if taken is None:
            return Refresh(Outcome.PENDING)  # another process took it over just now
        session = await self.session_for(taken)
        found = await find_workflow(session, taken)
        if found is None:
            if not await self.store.jobs.abandon_submit(job.id):
                return Refresh(Outcome.GONE)
            log.warning("Job %s was left submitting and Civitai has no workflow for it: not submitted", job.id)
            await self.sink.not_submitted(taken)
            return Refresh(Outcome.FINISHED, True)
        submitted = await adopt(self.store, taken, found)
        if submitted is None:
            return Refresh(Outcome.GONE)
        with about_job(submitted):
            log.info("Recovered the submit of job %s (workflow %s)", job.id, found.id)
            await self.sink.reopen(submitted)
        return Refresh(Outcome.RUNNING, True)
