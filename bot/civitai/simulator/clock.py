"""Simulated time: real time multiplied by ``speed``, plus whatever tests ``advance`` by hand.

A 2000-step run lasts about 50 simulated minutes; at ``speed=20000`` that is a fraction of a
second of real time. ``speed=0`` stops time entirely so a test can move it step by step.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class SimClock:
    def __init__(self, speed: float = 1.0) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._speed = speed
        self._real_origin = time.monotonic()
        self._sim_origin = 0.0
        self._moved = asyncio.Event()

    def now(self) -> float:
        """Simulated seconds since the clock was made."""
        return self._sim_origin + (time.monotonic() - self._real_origin) * self._speed

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if value < 0:
            raise ValueError("speed must be >= 0")
        self._sim_origin, self._real_origin = self.now(), time.monotonic()
        self._speed = value
        self._wake()

    def advance(self, seconds: float) -> None:
        self._sim_origin += seconds
        self._wake()

    def _wake(self) -> None:
        self._moved.set()
        self._moved = asyncio.Event()

    async def sleep_until(self, instant: float) -> None:
        """Return once simulated time reaches ``instant`` (wakes early when time is moved)."""
        while (remaining := instant - self.now()) > 0:
            moved = self._moved
            timeout = remaining / self._speed if self._speed > 0 else None
            try:
                await asyncio.wait_for(moved.wait(), timeout)
            except TimeoutError:
                pass

    def wall_time_in(self, sim_seconds: float) -> datetime:
        """The wall-clock moment ``sim_seconds`` of simulated time from now (for ETAs)."""
        real = sim_seconds / self._speed if self._speed > 0 else sim_seconds
        return datetime.now(UTC) + timedelta(seconds=real)
