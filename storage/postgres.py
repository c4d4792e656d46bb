"""PostgreSQL through asyncpg, behind the same ``Connection`` interface as SQLite.

Statements arrive in the project's SQL (SQLite's dialect, storage.dialect) and are translated
once each (cached). Every write takes one transaction-scoped advisory lock per database schema:
the repositories were designed against SQLite, where writers are serialised (BEGIN IMMEDIATE),
and rely on nothing changing between a transaction's reads and its writes (a Confirm checks the
revision and the caps, then claims). The lock gives PostgreSQL the same guarantee across every
process sharing the database; reads never wait for it. A bot's write rate is far below what one
lock serves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from storage.db import IntegrityError, Params, Row, UniqueViolation, to_db_time, utcnow
from storage.dialect import to_postgres

T = TypeVar("T")

# SQLite's json_valid, so CHECK (json_valid(x)) reads the same in every migration.
_PRELUDE = """
CREATE OR REPLACE FUNCTION json_valid(value TEXT) RETURNS BOOLEAN LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    PERFORM value::jsonb;
    RETURN TRUE;
EXCEPTION WHEN others THEN
    RETURN FALSE;
END $$;
CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL);
"""

# Foreign keys in this schema, with the table that holds each (by oid: a rename keeps it).
_FOREIGN_KEYS = """
SELECT c.conname, c.conrelid, pg_get_constraintdef(c.oid) AS definition
FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
WHERE c.contype = 'f' AND n.nspname = current_schema()
"""


def _params(params: Params) -> Sequence[Any]:
    if isinstance(params, Mapping):
        raise TypeError("named parameters are not part of the project's SQL: use ? placeholders")
    return params


def _changed(status: str) -> int:
    """Rows a command changed, from its status tag ("UPDATE 3", "INSERT 0 1")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def _is_read(sql: str) -> bool:
    return sql.lstrip().upper().startswith("SELECT")


class PostgresConnection:
    dialect = "postgresql"

    def __init__(self, conn: asyncpg.Connection, lock_key: int) -> None:
        self.raw = conn
        self.lock_key = lock_key
        self._in_transaction = False

    @classmethod
    async def connect(cls, url: str) -> PostgresConnection:
        """``url`` is a libpq URL; extra query parameters are server settings (search_path=…)."""
        conn = await asyncpg.connect(url)
        try:
            key = await conn.fetchval("SELECT hashtext(current_database() || '.' || current_schema())")
        except BaseException:
            await conn.close()
            raise
        return cls(conn, int(key))

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = await self._call(sql, lambda text: self.raw.fetchrow(text, *_params(params)), None)
        return row

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        rows: list[Row] = await self._call(sql, lambda text: self.raw.fetch(text, *_params(params)), [])
        return list(rows)

    async def execute(self, sql: str, params: Params = ()) -> int:
        status = await self._call(sql, lambda text: self.raw.execute(text, *_params(params)), "")
        return _changed(status)

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        await self._call(sql, lambda text: self.raw.executemany(text, [_params(row) for row in rows]), None)

    async def _call(self, sql: str, action: Callable[[str], Awaitable[T]], nothing: T) -> T:
        """Run ``action`` on the translated statement; ``nothing`` when the translation is empty
        (a SQLite-only PRAGMA has nothing to do here)."""
        text = to_postgres(sql)
        if not text:
            return nothing
        try:
            if self._in_transaction or _is_read(sql):
                return await action(text)
            async with self.raw.transaction():
                await self._lock_writes()
                return await action(text)
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(str(exc)) from exc
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(str(exc)) from exc

    async def _lock_writes(self) -> None:
        await self.raw.execute("SELECT pg_advisory_xact_lock($1)", self.lock_key)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self.raw.transaction():
            await self._lock_writes()
            self._in_transaction = True
            try:
                yield
            finally:
                self._in_transaction = False

    async def server_version(self) -> str:
        return str(await self.raw.fetchval("SHOW server_version"))

    # Telling other processes (LISTEN/NOTIFY). Channels are per database, not per schema: the
    # channel carries the schema's lock key so two bots sharing a server never hear each other.

    @property
    def channel(self) -> str:
        return f"lorabot_jobs_{self.lock_key & 0xFFFFFFFF}"

    async def notify(self, payload: str) -> None:
        await self.raw.execute("SELECT pg_notify($1, $2)", self.channel, payload)

    async def listen(self, on_payload: Callable[[str], None]) -> None:
        def heard(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            on_payload(payload)

        await self.raw.add_listener(self.channel, heard)

    async def close(self) -> None:
        await self.raw.close()

    # Migrations

    async def current_version(self) -> int:
        await self.raw.execute(_PRELUDE)
        return int(await self.raw.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

    @asynccontextmanager
    async def migrating(self) -> AsyncIterator[int]:
        """Hold the migration lock (two processes starting at once migrate once); yields the
        database's version."""
        await self.raw.execute("SELECT pg_advisory_lock($1)", self.lock_key)
        try:
            yield await self.current_version()
        finally:
            await self.raw.execute("SELECT pg_advisory_unlock($1)", self.lock_key)

    async def apply_script(self, version: int, name: str, script: str) -> None:
        """Run one migration in a transaction, keeping the foreign keys a table rebuild drops."""
        async with self.raw.transaction():
            before = await self.raw.fetch(_FOREIGN_KEYS)
            await self.raw.execute(to_postgres(script))
            await self._restore_foreign_keys(before)
            await self.raw.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
                version,
                name,
                to_db_time(utcnow()),
            )

    async def _restore_foreign_keys(self, before: list[asyncpg.Record]) -> None:
        """``DROP TABLE t CASCADE`` (a rebuild of t) removed the keys other tables held on it;
        they name t, which is now the rebuilt table: add them back (checking every row)."""
        after = {(row["conrelid"], row["conname"]) for row in await self.raw.fetch(_FOREIGN_KEYS)}
        for row in before:
            if (row["conrelid"], row["conname"]) in after:
                continue
            table = await self.raw.fetchval("SELECT $1::oid::regclass::text", row["conrelid"])
            if table is None or table.isdigit():
                continue  # the table holding the key was itself dropped (or rebuilt with its own keys)
            await self.raw.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{row["conname"]}" {row["definition"]}')
