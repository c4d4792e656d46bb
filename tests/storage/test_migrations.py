"""Migrations: the expected schema from nothing, no-op when re-run, all-or-nothing when broken."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from storage import Store
from storage.migrations import Migration, MigrationError, apply_migrations, load_migrations

EXPECTED_TABLES = {
    "meta",
    "schema_version",
    "guild_settings",
    "guild_channels",
    "guild_blocks",
    "user_settings",
    "jobs",
    "handled_events",
    "posted_epochs",
    "post_intents",
    "callback_deliveries",
    "audit_log",
    "spend_ledger",
}


async def schema_snapshot(path: Path) -> tuple[list[tuple[str, ...]], list[tuple[int, str, str]]]:
    async with aiosqlite.connect(path) as conn:
        async with conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name") as cur:
            master = [tuple(row) for row in await cur.fetchall()]
        async with conn.execute("SELECT version, name, applied_at FROM schema_version ORDER BY version") as cur:
            versions = [tuple(row) for row in await cur.fetchall()]
    return master, versions  # type: ignore[return-value]


async def test_empty_database_gets_every_table(db_path: Path) -> None:
    store = await Store.open(db_path)
    await store.close()
    master, versions = await schema_snapshot(db_path)
    tables = {name for kind, name, *_ in master if kind == "table"}
    assert EXPECTED_TABLES <= tables
    assert [v[0] for v in versions] == [m.version for m in load_migrations()]
    assert len(versions) >= 2
    indexes = {name for kind, name, *_ in master if kind == "index"}
    assert {"jobs_user_created", "spend_ledger_guild_user_at", "spend_ledger_job_kind"} <= indexes


async def test_reopening_a_migrated_database_changes_nothing(db_path: Path) -> None:
    store = await Store.open(db_path)
    await store.set_meta("k", "v")
    await store.close()
    before = await schema_snapshot(db_path)
    store = await Store.open(db_path)
    assert await store.get_meta("k") == "v"
    await store.close()
    assert await schema_snapshot(db_path) == before


async def test_broken_migration_leaves_schema_as_it_was(db_path: Path) -> None:
    store = await Store.open(db_path)
    await store.close()
    before = await schema_snapshot(db_path)
    good = load_migrations()
    broken = Migration(
        version=len(good) + 1,
        name=f"{len(good) + 1:04d}_broken.sql",
        sql="CREATE TABLE half_done (x INTEGER);\n"
        "ALTER TABLE jobs ADD COLUMN extra TEXT;\n"
        "INSERT INTO nowhere VALUES (1);",
    )
    async with aiosqlite.connect(db_path, isolation_level=None) as conn:
        with pytest.raises(MigrationError, match=r"broken\.sql"):
            await apply_migrations(conn, [*good, broken])
        assert not conn.in_transaction
    assert await schema_snapshot(db_path) == before


async def test_migrations_stop_at_the_broken_one_on_a_fresh_database(tmp_path: Path) -> None:
    path = tmp_path / "fresh.sqlite3"
    good = load_migrations()
    broken = Migration(len(good) + 1, "broken", "CREATE TABLE t (x); SELECT * FROM nowhere;")
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        with pytest.raises(MigrationError):
            await apply_migrations(conn, [*good, broken])
    master, versions = await schema_snapshot(path)
    assert [v[0] for v in versions] == [m.version for m in good]
    assert "t" not in {name for _, name, *_ in master}


async def test_rebuilding_jobs_keeps_every_row_that_refers_to_a_job(db_path: Path) -> None:
    """0003 rebuilds ``jobs``: with foreign keys on, dropping the old table would have cascaded
    into events, epochs and deliveries and nulled the ledger's job ids."""
    first_two = [m for m in load_migrations() if m.version <= 2]
    db_path.parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(db_path, isolation_level=None) as conn:
        await conn.execute("PRAGMA foreign_keys=ON")
        await apply_migrations(conn, first_two)
        t = "2026-01-01T00:00:00.000Z"
        await conn.execute(
            "INSERT INTO jobs (id, guild_id, channel_id, user_id, name, variant, params, dataset_digest, image_count,"
            " payer, token_source, external_id, workflow_id, status, created_at, updated_at)"
            " VALUES ('j1', 1, 2, 3, 'n', 'dev', '{}', 'd', 4, 'operator', 'operator', 'x1', '', 'submitted', ?, ?)",
            (t, t),
        )
        await conn.execute("INSERT INTO handled_events VALUES ('j1', 'k', ?)", (t,))
        await conn.execute("INSERT INTO posted_epochs VALUES ('j1', 1, 9, ?)", (t,))
        await conn.execute(
            "INSERT INTO spend_ledger (guild_id, user_id, job_id, payer, amount, kind, at, recorded_at)"
            " VALUES (1, 3, 'j1', 'operator', 10, 'charge', ?, ?)",
            (t, t),
        )
        await apply_migrations(conn)
        async with conn.execute("PRAGMA foreign_keys") as cur:
            assert (await cur.fetchone())[0] == 1  # type: ignore[index]
        counts = []
        for sql in (
            "SELECT COUNT(*) FROM handled_events",
            "SELECT COUNT(*) FROM posted_epochs",
            "SELECT COUNT(*) FROM spend_ledger WHERE job_id = 'j1'",
        ):
            async with conn.execute(sql) as cur:
                counts.append((await cur.fetchone())[0])  # type: ignore[index]
        assert counts == [1, 1, 1]
        async with conn.execute("SELECT workflow_id, revision, thread_gone FROM jobs") as cur:
            assert tuple(await cur.fetchone()) == (None, 1, 0)  # type: ignore[arg-type]
