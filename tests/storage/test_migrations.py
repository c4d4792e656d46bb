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
