"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.databases import fresh_database, fresh_postgres, postgres_server_url, suite_backend_url

# The stage (a fake Discord the real bot connects to): stage, bot_on_stage, bot_process, alice…
pytest_plugins = ["tests.stage.fixtures"]


@pytest.fixture(autouse=True)
def pillow_bomb_limit() -> Iterator[None]:
    """A dataset check sets Pillow's process-wide bomb limit from its settings (a process runs
    with one setting); give each test Pillow's limit back, whatever the previous test checked."""
    saved = Image.MAX_IMAGE_PIXELS
    yield
    Image.MAX_IMAGE_PIXELS = saved


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty database on the suite's backend (tests/databases.py), also exported as
    DATABASE_URL for the bots a test starts."""
    with fresh_database(tmp_path) as url:
        if suite_backend_url() is not None:
            monkeypatch.setenv("DATABASE_URL", url)
        yield url


@pytest.fixture(autouse=True)
def _suite_backend(request: pytest.FixtureRequest) -> None:
    """On a PostgreSQL pass, every test gets its own schema (bots read DATABASE_URL)."""
    if suite_backend_url() is not None:
        request.getfixturevalue("database_url")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty PostgreSQL database whatever the suite's backend (skips or fails without one)."""
    with fresh_postgres(postgres_server_url()) as url:
        yield url
