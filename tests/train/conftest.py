"""Fixtures for /train end to end: the real bot on the stage with a fast in-process simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import TrainerBot
from bot.civitai.client import RetryPolicy
from tests.stage import Stage
from tests.stage.bots import bot_in_process

# The client's own retries of a 5xx, made quick: the tests are about what the member sees.
FAST_RETRIES = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.005)


@pytest.fixture
def bot_settings() -> dict[str, object]:
    """Settings for the bot under test; override in a module (PUBLIC_URL…)."""
    return {}


@pytest.fixture
async def trainer(stage: Stage, tmp_path: Path, bot_settings: dict[str, object]) -> AsyncIterator[TrainerBot]:
    settings: dict[str, object] = {"simulator_speed": 5000, "command_cooldown_seconds": 0} | bot_settings
    async with bot_in_process(stage, tmp_path / "bot-data", **settings) as bot:
        bot.services.orchestrator.client.retry = FAST_RETRIES
        yield bot
