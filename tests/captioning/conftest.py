"""The captioning core against the in-process simulator and a real SQLite file (no Discord)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import CivitaiMode, Settings
from bot.services import Services


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings(
        data_dir=tmp_path / "data", civitai_mode=CivitaiMode.SIMULATE, http_port=0, http_host="127.0.0.1",
        simulator_speed=50_000,
    )  # fmt: skip
    services = await Services.start(settings)
    yield services
    await services.close()


# The /train stage fixtures: the real bot on the stage with a fast in-process simulator.
from tests.train.conftest import bot_settings, trainer  # noqa: E402, F401
