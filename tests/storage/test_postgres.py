"""What only PostgreSQL needs proving: the migrations' table rebuild and concurrent starts.

These need a server (TEST_POSTGRES_URL, see tests/databases.py); the rest of the storage tests
run on PostgreSQL too when TEST_DATABASE_URL names one.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from storage import Store
from storage.db import IntegrityError
from storage.migrations import apply_migrations, load_migrations
from storage.postgres import PostgresConnection

T = "2026-01-01T00:00:00.000Z"


async def test_rebuilding_jobs_keeps_the_foreign_keys_other_tables_hold(postgres_url: str) -> None:
    """0003 rebuilds ``jobs`` (CREATE jobs_new, copy, DROP jobs, RENAME): the keys of events,
    epochs, deliveries and the ledger must survive it and point at the new table."""
    conn = await PostgresConnection.connect(postgres_url)
    try:
        await apply_migrations(conn, [m for m in load_migrations() if m.version <= 2])
        await conn.execute(
            "INSERT INTO jobs (id, guild_id, channel_id, user_id, name, variant, params, dataset_digest, image_count,"
            " payer, token_source, external_id, workflow_id, status, created_at, updated_at)"
            " VALUES ('j1', 1, 2, 3, 'n', 'dev', '{}', 'd', 4, 'operator', 'operator', 'x1', '', 'submitted', ?, ?)",
            (T, T),
        )
        await conn.execute("INSERT INTO handled_events VALUES ('j1', 'k', ?)", (T,))
        await conn.execute("INSERT INTO posted_epochs VALUES ('j1', 1, 9, ?)", (T,))
        await conn.execute(
            "INSERT INTO callback_deliveries (job_id, received_at, body_digest, outcome) VALUES ('j1', ?, 'd', 'o')",
            (T,),
        )
        await conn.execute(
            "INSERT INTO spend_ledger (guild_id, user_id, job_id, payer, amount, kind, at, recorded_at)"
            " VALUES (1, 3, 'j1', 'operator', 10, 'charge', ?, ?)",
            (T, T),
        )
        assert await apply_migrations(conn) == [m.version for m in load_migrations() if m.version > 2]

        counts = [
            (await conn.fetch_one(f"SELECT COUNT(*) FROM {table}"))[0]  # type: ignore[index]
            for table in ("handled_events", "posted_epochs", "callback_deliveries", "spend_ledger")
        ]
        assert counts == [1, 1, 1, 1]
        row = await conn.fetch_one("SELECT workflow_id, revision, thread_gone, status FROM jobs")
        assert tuple(row) == (None, 1, 0, "submitted")  # type: ignore[arg-type]
        # The keys hold on the rebuilt table: a row for a job that does not exist is refused…
        with pytest.raises(IntegrityError):
            await conn.execute("INSERT INTO handled_events VALUES ('nope', 'k', ?)", (T,))
        # …and deleting the job cascades as before (the ledger keeps its line, without the job).
        await conn.execute("DELETE FROM jobs WHERE id = 'j1'")
        counts = [
            (await conn.fetch_one(f"SELECT COUNT(*) FROM {table}"))[0]  # type: ignore[index]
            for table in ("handled_events", "posted_epochs", "callback_deliveries")
        ]
        assert counts == [0, 0, 0]
        assert tuple(await conn.fetch_one("SELECT job_id, amount FROM spend_ledger")) == (None, 10.0)  # type: ignore[arg-type]
    finally:
        await conn.close()


async def test_processes_starting_together_migrate_once(postgres_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(postgres_url) for _ in range(3)))
    try:
        rows = await stores[0].db.all("SELECT version FROM schema_version ORDER BY version")
        assert [row[0] for row in rows] == [m.version for m in load_migrations()]
        assert (await stores[1].schema_version()) == (len(load_migrations()), len(load_migrations()))
        assert (await stores[2].describe()).startswith("PostgreSQL ")
    finally:
        for store in stores:
            await store.close()


async def test_a_big_snowflake_and_exact_amounts_round_trip(postgres_url: str) -> None:
    """Discord ids need 64 bits (BIGINT, not INTEGER) and amounts 8-byte floats (not REAL)."""
    store = await Store.open(postgres_url)
    try:
        snowflake = 2**63 - 1
        await store.ledger.charge(snowflake, snowflake, None, "operator", 1234.5678901234)  # type: ignore[arg-type]
        assert await store.ledger.spent_for_job("none") == 0.0
        rows = await store.db.all("SELECT guild_id, user_id, amount FROM spend_ledger")
        assert [tuple(row) for row in rows] == [(snowflake, snowflake, 1234.5678901234)]
    finally:
        await store.close()


async def _drop_connections(url: str, *pids: int) -> None:
    """What a server restart or a failover does to a process's connections."""
    admin = await asyncpg.connect(url)
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", list(pids))
    finally:
        await admin.close()


async def test_dropped_connections_are_opened_again_and_notifications_heard_again(postgres_url: str) -> None:
    listening, telling = await Store.open(postgres_url), await Store.open(postgres_url)
    heard: list[str] = []
    try:
        await listening.listen_to_processes(heard.append)
        writer, reader = listening.db.conn, listening.db.reader
        assert isinstance(writer, PostgresConnection) and isinstance(reader, PostgresConnection)
        await _drop_connections(postgres_url, writer.raw.get_server_pid(), reader.raw.get_server_pid())

        # The listening connection comes back by itself: the other process is heard again
        # without this one running a statement first.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while "again" not in heard:
            assert loop.time() < deadline, "the listener was not opened again"
            await telling.tell_processes("again")
            await asyncio.sleep(0.2)

        # Reads (on the reader, dropped too) and writes, in and out of transactions, work again.
        await listening.set_meta("after", "the drop")
        assert await listening.get_meta("after") == "the drop"
        async with listening.db.transaction() as session:
            await session.run("UPDATE meta SET value = ? WHERE key = ?", ("a transaction", "after"))
        assert await telling.get_meta("after") == "a transaction"

        # A plain read cut off by a drop is read again on a new connection; the caller never sees it.
        slow_read = asyncio.create_task(
            listening.db.one("SELECT value, pg_sleep(0.5) FROM meta WHERE key = ?", ("after",))
        )
        await asyncio.sleep(0.2)  # the read is running on the server now
        await _drop_connections(postgres_url, reader.raw.get_server_pid())
        row = await slow_read
        assert row is not None and row[0] == "a transaction"
        assert await listening.get_meta("after") == "a transaction"
    finally:
        await listening.close()
        await telling.close()
