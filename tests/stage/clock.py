"""The stage's clock: real time plus an offset that tests move forward.

Discord's deadlines (3 s for the first answer to an interaction, 15 min for its token) are
measured on this clock, so ``stage.clock.advance(minutes=16)`` expires every open interaction
token at once instead of making a test wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime


class StageClock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._moved = asyncio.Event()

    def time(self) -> float:
        """Seconds since the Unix epoch, as the stage sees them."""
        return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def iso(self) -> str:
        return self.now().isoformat()

    def advance(self, *, seconds: float = 0, minutes: float = 0, hours: float = 0) -> None:
        """Move the stage's time forward; deadlines that pass fire at once."""
        delta = seconds + 60 * minutes + 3600 * hours
        if delta < 0:
            raise ValueError("the stage clock only moves forward")
        self._offset += delta
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def sleep_until(self, when: float) -> None:
        """Sleep until the stage clock reaches ``when`` (real time or an ``advance``)."""
        while (remaining := when - self.time()) > 0:
            moved = self._moved
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(moved.wait(), remaining)
