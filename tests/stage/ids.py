"""Snowflake ids like Discord's: the creation time in the high bits, so ids sort by age."""

from __future__ import annotations

from tests.stage.clock import StageClock

DISCORD_EPOCH_MS = 1_420_070_400_000


class Snowflakes:
    def __init__(self, clock: StageClock) -> None:
        self._clock = clock
        self._last = 0

    def next(self) -> int:
        millis = int(self._clock.time() * 1000) - DISCORD_EPOCH_MS
        self._last = max(self._last + 1, millis << 22)
        return self._last

    def next_on_shard(self, shard_id: int, count: int) -> int:
        """The next id whose server falls on ``shard_id`` of ``count`` ((id >> 22) % count)."""
        candidate = self.next()
        while (candidate >> 22) % count != shard_id:
            candidate = ((candidate >> 22) + 1) << 22
        self._last = candidate
        return candidate
