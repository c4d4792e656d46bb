"""Periodic clean-up: keep only what the README promises to keep, for as long as it says.

- normalised datasets unused for ``DATASET_RETENTION_DAYS`` (default 30);
- callback delivery records older than ``CALLBACK_RETENTION_DAYS`` (default 14);
- drafts nobody confirmed within the 15 minutes a confirmation lives;
- temporary files under ``DATA_DIR/tmp`` left by an intake that died (older than a day).

One pass runs at start-up (catching up on whatever piled up while the bot was down), then one
every ``interval`` seconds. Every pass is idempotent and each kind is cleaned independently, so
a failure in one (a locked file) does not keep the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path

from bot.clock import Clock
from bot.config import Settings
from bot.dataset.store import DatasetStore
from bot.metrics import BotMetrics
from storage import Store

log = logging.getLogger(__name__)

DRAFT_LIFETIME = timedelta(minutes=15)  # the interaction token of the confirmation lives this long
TEMP_FILE_LIFETIME = timedelta(days=1)  # intake caps its own work at minutes: a day-old file is an orphan
DEFAULT_INTERVAL_SECONDS = 600.0
STOP_GRACE_SECONDS = 5.0


@dataclass
class RetentionReport:
    datasets: int = 0
    deliveries: int = 0
    drafts: int = 0
    temp_files: int = 0

    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def __str__(self) -> str:
        return ", ".join(f"{getattr(self, f.name)} {f.name.replace('_', ' ')}" for f in fields(self))


def remove_old_entries(root: Path, older_than: float) -> int:
    """Delete files and folders directly under ``root`` last modified before ``older_than``."""
    if not root.is_dir():
        return 0
    removed = 0
    for entry in root.iterdir():
        try:
            if entry.lstat().st_mtime >= older_than:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except FileNotFoundError:
            continue  # removed meanwhile by its owner
    return removed


class Retention:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        datasets: DatasetStore,
        clock: Clock,
        *,
        metrics: BotMetrics | None = None,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
    ) -> None:
        self.settings = settings
        self.store = store
        self.datasets = datasets
        self.clock = clock
        self.metrics = metrics
        self.interval_seconds = interval_seconds
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def temp_root(self) -> Path:
        return self.settings.data_dir / "tmp"

    async def run_once(self) -> RetentionReport:
        """One clean-up pass; what it removed, by kind."""
        now = self.clock.now()
        report = RetentionReport()
        steps = {
            "datasets": lambda: asyncio.to_thread(self._purge_datasets, now.timestamp()),
            "deliveries": lambda: self.store.deliveries.purge_older_than(
                now - timedelta(days=self.settings.callback_retention_days)
            ),
            "drafts": lambda: self.store.jobs.discard_stale_drafts(now - DRAFT_LIFETIME, self.settings.shard_scope),
            "temp_files": lambda: asyncio.to_thread(
                remove_old_entries, self.temp_root, (now - TEMP_FILE_LIFETIME).timestamp()
            ),
        }
        for kind, step in steps.items():
            try:
                count = await step()
            except Exception:
                log.warning("Retention: could not clean up %s; trying again next pass", kind, exc_info=True)
                continue
            setattr(report, kind, count)
            if count and self.metrics is not None:
                self.metrics.retention_removed.inc(count, kind=kind)
        if report.total():
            log.info("Retention: removed %s", report)
        return report

    def _purge_datasets(self, now: float) -> int:
        return len(self.datasets.purge_expired(now=now))

    # -- the periodic task -------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_seconds)

    async def stop(self) -> None:
        """Let a pass in progress finish its current write (up to a few seconds), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_SECONDS)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
