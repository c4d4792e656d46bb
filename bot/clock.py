"""Wall-clock time for deadlines the bot enforces itself (confirmation expiry, cooldowns,
budget periods).

One ``Clock`` per process lives on ``Services``; tests that run the bot in-process move it
forward with ``advance`` instead of sleeping fifteen minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self) -> None:
        self._offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def timestamp(self) -> float:
        return self.now().timestamp()

    def advance(self, **delta: float) -> None:
        """Move this clock forward, e.g. ``advance(minutes=16)``."""
        self._offset += timedelta(**delta)
