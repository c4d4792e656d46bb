"""Pytest fixtures for the stage (registered for every test by tests/conftest.py).

stage_config   the world to build (override it in a test module for other members/channels)
stage          the running stage; at teardown, any problem it saw fails the test
bot_on_stage   the real TrainerBot in this process, connected and ready
bot_process    ``python -m bot`` on the stage, connected (kill / start it again)
alice, bob, admin   members (drivers) of the default guild
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import TrainerBot
from tests.stage.bots import BotProcess, bot_in_process
from tests.stage.driver import StageMember
from tests.stage.server import Stage
from tests.stage.world import StageConfig


@pytest.fixture
def stage_config() -> StageConfig:
    return StageConfig()


@pytest.fixture
async def stage(stage_config: StageConfig) -> AsyncIterator[Stage]:
    async with Stage(stage_config) as running:
        yield running
    # A violation, failed interaction or unknown route the test did not take fails it here.
    running.check()


@pytest.fixture
async def bot_on_stage(stage: Stage, tmp_path: Path) -> AsyncIterator[TrainerBot]:
    async with bot_in_process(stage, tmp_path / "bot-data") as bot:
        yield bot


@pytest.fixture
async def bot_process(stage: Stage, tmp_path: Path) -> AsyncIterator[BotProcess]:
    process = BotProcess(stage, tmp_path / "bot-data")
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


@pytest.fixture
def alice(stage: Stage) -> StageMember:
    return stage.member("alice")


@pytest.fixture
def bob(stage: Stage) -> StageMember:
    return stage.member("bob")


@pytest.fixture
def admin(stage: Stage) -> StageMember:
    return stage.member("admin")
