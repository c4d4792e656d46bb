"""Simulated time: real time multiplied by ``speed``, plus whatever tests ``advance`` by hand.

A 2000-step run lasts about 50 simulated minutes; at ``speed=20000`` that is a fraction of a
second of real time. ``speed=0`` stops time entirely so a test can move it step by step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SimClock:
    """``start``: the simulated second to begin at (a restored clock goes on where it was)."""

    def __init__(self, speed: float = 1.0, start: float = 0.0) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._speed = speed
        self._real_origin = time.monotonic()
        self._sim_origin = start
        self._moved = asyncio.Event()
        # Told when the clock stops being a plain function of real time (speed set, advance).
        self.on_move: Callable[[], None] | None = None

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
        if self.on_move is not None:
            self.on_move()
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

    def reading(self) -> dict[str, float]:
        """What a later process needs to go on from here: simulated now, wall time, speed."""
        return {"sim": self.now(), "wall": time.time(), "speed": self._speed}

    @staticmethod
    def resumed_at(reading: dict[str, float]) -> float:
        """The simulated now of a clock last read as ``reading``: time went on at its speed
        while no process ran it (a run started before a restart may have ended meanwhile)."""
        return reading["sim"] + max(0.0, time.time() - reading["wall"]) * reading["speed"]

    def wall_time_in(self, sim_seconds: float) -> datetime:
        """The wall-clock moment ``sim_seconds`` of simulated time from now (for ETAs)."""
        real = sim_seconds / self._speed if self._speed > 0 else sim_seconds
        return datetime.now(UTC) + timedelta(seconds=real)
