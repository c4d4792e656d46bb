"""Fixtures of the tracking tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.civitai.simulator import Simulator


@pytest.fixture
async def orchestrator() -> AsyncIterator[Simulator]:
    """An orchestrator outside the bot (``real_mode`` points a bot at it), standing still (speed 0):
    it outlives bot restarts, and the bot can be switched between real and simulated mode."""
    sim = Simulator(speed=0, accept_any_token=True)
    await sim.start()
    yield sim
    await sim.stop()
