"""Implementations of the web Protocols.

``Services`` composes a ``HookSink`` from a ``HookJobs`` (``StoreHookJobs``: the store's job
records) and a ``CallbackTarget`` (the tracker; ``LoggingCallbackTarget`` until it is wired).
``NoTrackedJobs`` is for a server with no store: every callback is then answered 404.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.web.batching import Delivery, DeliveryBatcher
from bot.web.protocols import CallbackTarget, DeliveryOutcome, HookJobs
from bot.web.signing import DIGEST_PATTERN
from storage import Store
from storage.captions import is_caption_run_id
from storage.models import JobStatus

log = logging.getLogger(__name__)


@dataclass
class ComposedHookSink:
    jobs: HookJobs
    target: CallbackTarget

    async def hook_secret_hash(self, job_id: str) -> str | None:
        return await self.jobs.hook_secret_hash(job_id)

    async def record_delivery(self, job_id: str, body_digest: str, outcome: DeliveryOutcome) -> bool:
        return await self.jobs.record_delivery(job_id, body_digest, outcome)

    async def on_callback(self, job_id: str, payload: dict[str, Any]) -> None:
        await self.target.on_callback(job_id, payload)


@dataclass
class StoreHookJobs:
    """The store's job records and callback journal, as the hook route needs them."""

    store: Store
    # Concurrent callbacks share one commit: the disk's sync rate is otherwise the ceiling.
    batcher: DeliveryBatcher = field(init=False)

    def __post_init__(self) -> None:
        self.batcher = DeliveryBatcher(self._write)

    async def _write(self, deliveries: Sequence[Delivery]) -> set[str]:
        return await self.store.deliveries.record_many([(d.job_id, d.body_digest, str(d.outcome)) for d in deliveries])

    async def hook_secret_hash(self, job_id: str) -> str | None:
        if is_caption_run_id(job_id):  # a captioning workflow's callback (issue 15)
            return await self.store.captions.hook_secret_hash(job_id)
        job = await self.store.jobs.get(job_id)
        return job.hook_secret_hash if job is not None else None

    async def record_delivery(self, job_id: str, body_digest: str, outcome: DeliveryOutcome) -> bool:
        if is_caption_run_id(job_id):
            # The journal is per job (and keyed to it); a caption run's callbacks are only hints.
            return await self.store.captions.get(job_id) is not None
        return await self.batcher.record_delivery(job_id, body_digest, outcome)


async def job_counts_by_status(store: Store) -> dict[tuple[str, ...], float]:
    """The ``lorabot_jobs`` gauge, computed at scrape time."""
    return {(status.value,): float(await store.jobs.count(status=status)) for status in JobStatus}


class NoTrackedJobs:
    """No job records yet: every job is unknown, so no callback is ever authenticated."""

    async def hook_secret_hash(self, job_id: str) -> str | None:
        return None

    async def record_delivery(self, job_id: str, body_digest: str, outcome: DeliveryOutcome) -> bool:
        return False


class LoggingCallbackTarget:
    """Stand-in for the job tracker: notes the callback and does nothing else."""

    async def on_callback(self, job_id: str, payload: dict[str, Any]) -> None:
        log.debug("Callback for job %s (%s) received; no tracker is wired yet", job_id, payload.get("status"))


@dataclass
class DirectoryDatasetFiles:
    """Normalised zips stored as ``{root}/{digest}.zip``."""

    root: Path

    def path_for(self, digest: str) -> Path | None:
        if not DIGEST_PATTERN.fullmatch(digest):
            return None
        path = self.root / f"{digest}.zip"
        return path if path.is_file() else None


@dataclass
class CaptionRunCallbacks:
    """Callbacks of captioning runs go to captioning, every other one to the job tracker."""

    jobs: CallbackTarget
    captions: CallbackTarget

    async def on_callback(self, job_id: str, payload: dict[str, Any]) -> None:
        target = self.captions if is_caption_run_id(job_id) else self.jobs
        await target.on_callback(job_id, payload)


@dataclass
class CallbackRelay:
    """Forwards callbacks to a target set once it exists.

    The web server starts first (the simulator needs its address), the tracker after the
    orchestrator client; until then, and without a target, callbacks are only recorded: the
    tracker's reconcile pass at start-up catches the jobs up anyway.
    """

    target: CallbackTarget | None = None

    async def on_callback(self, job_id: str, payload: dict[str, Any]) -> None:
        if self.target is None:
            log.debug("Callback for job %s before the tracker started; the reconcile pass covers it", job_id)
            return
        await self.target.on_callback(job_id, payload)
