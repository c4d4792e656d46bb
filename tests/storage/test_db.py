"""The shared connection: transactions are all-or-nothing and other coroutines stay out of them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from storage import Store
from storage.db import from_db_time, to_db_time


async def test_a_failing_transaction_writes_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with store.db.transaction() as session:
            await session.run("INSERT INTO meta (key, value) VALUES ('a', '1')")
            raise RuntimeError("boom")
    assert await store.get_meta("a") is None
    await store.set_meta("b", "2")  # the connection is usable afterwards
    assert await store.get_meta("b") == "2"


async def test_other_coroutines_wait_instead_of_joining_a_transaction(store: Store) -> None:
    inside = asyncio.Event()

    async def failing_transaction() -> None:
        async with store.db.transaction() as session:
            await session.run("INSERT INTO meta (key, value) VALUES ('tx', '1')")
            inside.set()
            await asyncio.sleep(0.05)  # another coroutine runs now
            raise RuntimeError("rolled back")

    async def independent_write() -> None:
        await inside.wait()
        await store.set_meta("other", "kept")

    results = await asyncio.gather(failing_transaction(), independent_write(), return_exceptions=True)
    assert isinstance(results[0], RuntimeError) and results[1] is None
    assert await store.get_meta("tx") is None
    assert await store.get_meta("other") == "kept"  # not swept away by the rollback


def test_times_are_fixed_width_utc_text() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, 678_901, tzinfo=timezone(timedelta(hours=2)))
    text = to_db_time(moment)
    assert text == "2025-01-02T01:04:05.678Z"
    assert from_db_time(text) == datetime(2025, 1, 2, 1, 4, 5, 678_000, tzinfo=UTC)
    assert to_db_time(datetime(2025, 1, 2, tzinfo=UTC)) < to_db_time(datetime(2025, 1, 10, tzinfo=UTC))
    with pytest.raises(ValueError, match="naive"):
        to_db_time(datetime(2025, 1, 2))  # naive on purpose
