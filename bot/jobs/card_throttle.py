"""At most one job-card edit every few seconds per job, and never a stale last one.

Progress changes often; Discord rate-limits message edits and members do not need every
percent. An edit asked for too soon after the previous one waits for the end of the interval and
then shows the latest state asked for, so what the card ends up showing is always the newest.
The final state of a run is shown at once (``final``), replacing any edit still waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from storage.models import Job

log = logging.getLogger(__name__)

ShowCard = Callable[[Job, int], Awaitable[None]]


@dataclass
class _Card:
    last_edit: float = float("-inf")
    pending: tuple[Job, int] | None = None
    task: asyncio.Task[None] | None = None


class CardThrottle:
    def __init__(self, interval: float, show: ShowCard, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._show = show
        self._clock = clock
        self._cards: dict[str, _Card] = {}

    def request(self, job: Job, epochs_done: int) -> None:
        """Show ``job`` on its card now, or at the end of the interval (then the latest asked for)."""
        card = self._cards.setdefault(job.id, _Card())
        card.pending = (job, epochs_done)
        if card.task is None or card.task.done():
            card.task = asyncio.create_task(self._run(card), name=f"card-{job.id}")

    async def _run(self, card: _Card) -> None:
        while card.pending is not None:
            wait = card.last_edit + self.interval - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            if card.pending is None:  # pragma: no cover - final() took over while we slept
                return
            job, epochs_done = card.pending
            card.pending = None
            card.last_edit = self._clock()
            try:
                await self._show(job, epochs_done)
            except Exception as exc:  # a later state or the final edit will show it
                log.warning("Could not edit the card of job %s: %s", job.id, exc)

    async def final(self, job: Job, epochs_done: int) -> None:
        """Show the run's final state now (an error propagates: the caller retries it)."""
        card = self._cards.pop(job.id, None)
        if card is not None and card.task is not None and not card.task.done():
            card.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await card.task
        await self._show(job, epochs_done)

    async def close(self) -> None:
        tasks = [card.task for card in self._cards.values() if card.task is not None and not card.task.done()]
        self._cards.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
