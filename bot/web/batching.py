"""Group commit for callback delivery records.

Each callback must be recorded before it is answered (a failed write becomes a 503, so the
orchestrator retries), but one SQLite commit per callback makes the disk's sync rate the
ceiling on callbacks per second. ``DeliveryBatcher`` lets concurrent callbacks share one write:
while a batch is being written the next one gathers, so a lone callback waits for nothing and a
burst costs one transaction per batch. Each caller still learns whether *its* record was written
(an exception for a failed write, False when its job no longer exists).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.web.protocols import DeliveryOutcome

MAX_BATCH = 500


@dataclass(frozen=True)
class Delivery:
    job_id: str
    body_digest: str
    outcome: DeliveryOutcome


# Writes the deliveries whose job exists; returns the job ids that do not (nothing kept for them).
WriteDeliveries = Callable[[Sequence[Delivery]], Awaitable[set[str]]]


class DeliveryBatcher:
    def __init__(self, write: WriteDeliveries, *, max_batch: int = MAX_BATCH) -> None:
        self._write = write
        self._max_batch = max_batch
        self._pending: list[tuple[Delivery, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record_delivery(self, job_id: str, body_digest: str, outcome: DeliveryOutcome) -> bool:
        """Return once this delivery is written (with others), False if its job is gone; raise
        what the write raised."""
        written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((Delivery(job_id, body_digest, outcome), written))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        return await written

    async def flush(self) -> None:
        """Wait until every delivery handed in so far is written (call before closing the store)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def _write_pending(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                unknown = await self._write([delivery for delivery, _ in batch])
            except asyncio.CancelledError:
                # Shutting down mid-write: nobody may wait forever for an answer.
                for _, written in batch + self._pending:
                    written.cancel()
                self._pending.clear()
                raise
            except Exception as exc:
                for _, written in batch:
                    if not written.done():
                        written.set_exception(exc)
            else:
                for delivery, written in batch:
                    if not written.done():
                        written.set_result(delivery.job_id not in unknown)
