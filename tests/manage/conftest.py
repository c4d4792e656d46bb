"""The bot for the /jobs, /account and /admin tests: the stage's, without the command cooldown
(these tests start several runs in a row as the same member)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import TrainerBot
from tests.stage import Stage
from tests.stage.bots import bot_in_process


@pytest.fixture
async def bot_on_stage(stage: Stage, tmp_path: Path) -> AsyncIterator[TrainerBot]:
    async with bot_in_process(stage, tmp_path / "bot-data", command_cooldown_seconds=0) as bot:
        yield bot
