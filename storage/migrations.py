"""Numbered SQL migrations (``migrations/NNNN_name.sql``), applied in order, once each.

One script per version, in the project's SQL (storage.dialect): SQLite runs it as written,
PostgreSQL gets it translated (storage.postgres).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import aiosqlite

from storage.db import Connection, SqliteConnection
from storage.postgres import PostgresConnection

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    """A migration failed; the database is still at the previous version."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("storage").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 0001, 0002, … without gaps: {versions}")
    return found


async def current_version(db: aiosqlite.Connection | Connection) -> int:
    if isinstance(db, PostgresConnection):
        return await db.current_version()
    if isinstance(db, SqliteConnection):
        db = db.raw
    assert isinstance(db, aiosqlite.Connection)
    await db.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, name TEXT NOT NULL,"
        " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
    )
    async with db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def apply_migrations(
    db: aiosqlite.Connection | Connection, migrations: Sequence[Migration] | None = None
) -> list[int]:
    """Apply every migration newer than the database; return the versions applied.

    ``migrations`` defaults to the packaged ones (tests pass their own).
    """
    chosen = load_migrations() if migrations is None else migrations
    if isinstance(db, PostgresConnection):
        return await _apply_postgres(db, chosen)
    if isinstance(db, SqliteConnection):
        db = db.raw
    assert isinstance(db, aiosqlite.Connection)
    return await _apply_sqlite(db, chosen)


async def _apply_postgres(db: PostgresConnection, migrations: Sequence[Migration]) -> list[int]:
    applied = []
    async with db.migrating() as version:
        for migration in migrations:
            if migration.version <= version:
                continue
            try:
                await db.apply_script(migration.version, migration.name, migration.sql)
            except Exception as exc:
                raise MigrationError(f"migration {migration.name} failed and was rolled back: {exc}") from exc
            applied.append(migration.version)
    return applied


async def _apply_sqlite(db: aiosqlite.Connection, migrations: Sequence[Migration]) -> list[int]:
    applied = []
    version = await current_version(db)
    async with db.execute("PRAGMA foreign_keys") as cursor:
        row = await cursor.fetchone()
    enforce_keys = bool(row and row[0])
    # A migration may rebuild a table (SQLite cannot change a CHECK in place): with foreign keys
    # on, dropping the old table would cascade into every table that refers to it. The pragma
    # is a no-op inside a transaction, so it is switched around each one, and the keys are
    # checked before the migration commits instead.
    await db.execute("PRAGMA foreign_keys=OFF")
    try:
        for migration in migrations:
            if migration.version <= version:
                continue
            await _apply(db, migration)
            applied.append(migration.version)
    finally:
        if enforce_keys:
            await db.execute("PRAGMA foreign_keys=ON")
    return applied


async def _apply(db: aiosqlite.Connection, migration: Migration) -> None:
    # executescript commits first; wrap in an explicit transaction so a failing
    # migration leaves the schema as it was (DDL is transactional in SQLite).
    try:
        await db.executescript(
            "BEGIN;\n"
            + migration.sql
            + f"\nINSERT INTO schema_version (version, name) VALUES ({migration.version}, '{migration.name}');"
        )
        async with db.execute("PRAGMA foreign_key_check") as cursor:
            broken = list(await cursor.fetchall())
        if broken:
            raise MigrationError(f"it leaves {len(broken)} row(s) with a dangling foreign key, e.g. {tuple(broken[0])}")
        await db.execute("COMMIT")
    except Exception as exc:
        # executescript stops at the failing statement with the transaction still open.
        if db.in_transaction:
            await db.execute("ROLLBACK")
        raise MigrationError(f"migration {migration.name} failed and was rolled back: {exc}") from exc
