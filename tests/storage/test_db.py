"""The shared connection: transactions are all-or-nothing and other coroutines stay out of them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from storage import Store
from storage.db import SqliteConnection, from_db_time, to_db_time


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


async def test_a_read_does_not_wait_behind_an_open_write_transaction(store: Store) -> None:
    """The mechanism behind a member's ``/help`` answering at once while fifty submissions write:
    a read outside any transaction is served while a write transaction is still open, sees only
    what is committed, and sees the write once it commits."""
    await store.set_meta("limits", "before")
    written, release = asyncio.Event(), asyncio.Event()

    async def long_write_transaction() -> None:
        async with store.db.transaction() as session:
            await session.run("UPDATE meta SET value = 'after' WHERE key = 'limits'")
            written.set()
            await release.wait()  # e.g. a submission's transaction, still open

    writer = asyncio.create_task(long_write_transaction())
    try:
        await written.wait()
        # Before the reader connection this waited for the writer's lock (the timeout fired).
        assert await asyncio.wait_for(store.get_meta("limits"), timeout=5) == "before"
        assert not writer.done()
    finally:
        release.set()
        await writer
    assert await store.get_meta("limits") == "after"


async def test_a_sqlite_read_is_one_hand_off_to_the_database_thread(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every hand-off waits for the GIL and the loop; under load a cursor's three (execute, fetch,
    close) made each read hold the reader for tens of milliseconds while others queued."""
    if not isinstance(store.db.reader, SqliteConnection):
        pytest.skip("aiosqlite's worker thread is SQLite's")
    raw = store.db.reader.raw
    hand_offs: list[object] = []
    through = raw._execute

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hand_offs.append(fn)
        return await through(fn, *args, **kwargs)

    monkeypatch.setattr(raw, "_execute", counted)
    await store.set_meta("k", "v")
    assert await store.get_meta("k") == "v"
    assert len(hand_offs) == 1
    assert len(await store.db.all("SELECT key FROM meta")) >= 1
    assert len(hand_offs) == 2


async def test_a_write_sent_as_a_read_still_goes_through_the_writer(store: Store) -> None:
    row = await store.db.one("INSERT INTO meta (key, value) VALUES ('w', '1') RETURNING value")
    assert row is not None and row[0] == "1"
    assert await store.get_meta("w") == "1"


def test_times_are_fixed_width_utc_text() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, 678_901, tzinfo=timezone(timedelta(hours=2)))
    text = to_db_time(moment)
    assert text == "2025-01-02T01:04:05.678Z"
    assert from_db_time(text) == datetime(2025, 1, 2, 1, 4, 5, 678_000, tzinfo=UTC)
    assert to_db_time(datetime(2025, 1, 2, tzinfo=UTC)) < to_db_time(datetime(2025, 1, 10, tzinfo=UTC))
    with pytest.raises(ValueError, match="naive"):
        to_db_time(datetime(2025, 1, 2))  # naive on purpose
