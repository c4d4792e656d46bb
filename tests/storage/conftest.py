"""A real database per test (a SQLite file under tmp_path, or a PostgreSQL schema: see
tests/databases.py), with a clock the test controls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storage import Store
from storage.models import NewJob, Payer, TokenSource, Variant

GUILD = 111_111_111_111_111_111
OTHER_GUILD = 222_222_222_222_222_222
USER = 333_333_333_333_333_333
OTHER_USER = 444_444_444_444_444_444
ADMIN = 555_555_555_555_555_555
CHANNEL = 666_666_666_666_666_666


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "bot.sqlite3"


@pytest.fixture
async def store(database_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    opened = await Store.open(database_url, clock=clock)
    yield opened
    await opened.close()


BASE_JOB = NewJob(
    guild_id=GUILD,
    channel_id=CHANNEL,
    user_id=USER,
    name="my-style",
    variant=Variant.DEV,
    params={"steps": 2000, "epochs": 10, "sample_prompts": ["a cat"]},
    dataset_digest="sha256:" + "ab" * 32,
    image_count=12,
    payer=Payer.OPERATOR,
    token_source=TokenSource.OPERATOR,
    hook_secret_hash="hash-of-the-hook-secret",
    price_estimate=2000.0,
    price_quoted=2010.0,
)


def new_job(**changes: Any) -> NewJob:
    return replace(BASE_JOB, **changes)
