"""Fixtures for the stage's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.app import TrainerBot
from tests.stage.probe_ext import EXTENSION


@pytest.fixture
async def probe_bot(bot_on_stage: TrainerBot) -> TrainerBot:
    """The real bot with the test-only probe commands loaded and synced (so members see them)."""
    await bot_on_stage.load_extension(EXTENSION)
    await bot_on_stage.tree.sync()
    return bot_on_stage


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client, for requests the bot would never send."""
    async with aiohttp.ClientSession() as session:
        yield session
