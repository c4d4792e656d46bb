"""PostgreSQL through asyncpg, behind the same ``Connection`` interface as SQLite.

Statements arrive in the project's SQL (SQLite's dialect, storage.dialect) and are translated
once each (cached). Every write takes one transaction-scoped advisory lock per database schema:
the repositories were designed against SQLite, where writers are serialised (BEGIN IMMEDIATE),
and rely on nothing changing between a transaction's reads and its writes (a Confirm checks the
revision and the caps, then claims). The lock gives PostgreSQL the same guarantee across every
process sharing the database; reads never wait for it. A bot's write rate is far below what one
lock serves.

A connection the server drops (a restart, a failover, an idle timeout) is opened again: at the
next statement, and at once in the background when it was listening for other processes, so
their NOTIFYs reach it again without waiting for a statement. A read outside a transaction that
the drop interrupted is retried once on the new connection; a write is not (it may have landed),
its caller sees the error and the statement after it finds the connection open again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from asyncpg.exceptions import InternalClientError

from storage.db import IntegrityError, Params, Row, UniqueViolation, to_db_time, utcnow
from storage.dialect import to_postgres

T = TypeVar("T")
log = logging.getLogger(__name__)
Listener = Callable[[asyncpg.Connection, int, str, str], None]
# Between attempts to open a dropped listening connection again (seconds, the last one repeats).
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# Errors that end the connection, not just the statement (57P01, 57P02: the server shut it).
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError, asyncpg.AdminShutdownError, asyncpg.CrashShutdownError, InternalClientError,
    ConnectionError,
)

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

    def __init__(self, conn: asyncpg.Connection, lock_key: int, url: str | None = None) -> None:
        self.raw = conn
        self.lock_key = lock_key
        self.url = url  # to open it again when the server drops it (None: never)
        self._in_transaction = False
        self._listeners: list[Listener] = []
        self._reopen_lock = asyncio.Lock()
        self._relisten: asyncio.Task[None] | None = None
        self._closing = False
        conn.add_termination_listener(self._dropped)

    @classmethod
    async def connect(cls, url: str) -> PostgresConnection:
        """``url`` is a libpq URL; extra query parameters are server settings (search_path=…)."""
        conn = await asyncpg.connect(url)
        try:
            key = await conn.fetchval("SELECT hashtext(current_database() || '.' || current_schema())")
        except BaseException:
            await conn.close()
            raise
        return cls(conn, int(key), url)

    # A dropped connection

    async def _ensure_open(self) -> None:
        """Open the connection again if the server dropped it since the last statement."""
        if self.raw.is_closed():
            await self._reopen()

    async def _reopen(self, broken: asyncpg.Connection | None = None) -> None:
        """Replace a closed connection (or ``broken``, one that failed as dropped ones do) with a
        new one listening where the old one did; nothing if another caller already did."""
        async with self._reopen_lock:
            current = self.raw
            if self._closing or self.url is None or (current is not broken and not current.is_closed()):
                return
            if not current.is_closed():
                current.terminate()
            conn = await asyncpg.connect(self.url)
            try:
                for listener in self._listeners:
                    await conn.add_listener(self.channel, listener)
            except BaseException:
                await conn.close()
                raise
            conn.add_termination_listener(self._dropped)
            self.raw = conn
            log.warning("The PostgreSQL connection was lost and is open again%s",
                        " (listening for other processes again)" if self._listeners else "")  # fmt: skip

    def _dropped(self, conn: asyncpg.Connection) -> None:
        """asyncpg saw the connection close. A listening one is opened again now: nothing else
        would notice before the next statement, and NOTIFYs sent meanwhile are lost."""
        if conn is not self.raw or self._closing or not self._listeners or self.url is None:
            return
        if self._relisten is None or self._relisten.done():
            self._relisten = asyncio.get_running_loop().create_task(self._reopen_until_open())

    async def _reopen_until_open(self) -> None:
        attempt = 0
        while True:
            try:
                await self._reopen()
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                log.warning("PostgreSQL is out of reach (%s); trying again in %g s", type(exc).__name__, delay)
                attempt += 1
                await asyncio.sleep(delay)

    @staticmethod
    def _lost(exc: BaseException, conn: asyncpg.Connection) -> bool:
        """Whether ``exc`` ended the connection rather than the statement. A backend the server
        terminates while idle leaves asyncpg waiting for a reply that never comes (an internal
        state error) until it reads the closed socket: that is a lost connection too."""
        return conn.is_closed() or isinstance(exc, _CONNECTION_LOST)

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
        if not self._in_transaction:
            await self._ensure_open()
        conn = self.raw
        try:
            return await self._run(sql, text, action)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, InternalClientError, OSError) as exc:
            if self.url is None or self._closing or not self._lost(exc, conn):
                raise
            if not conn.is_closed():
                conn.terminate()  # the next statement opens a new one
            # A plain read is safe to repeat: once, on the new connection. A write may have landed.
            if self._in_transaction or not _is_read(sql):
                raise
            log.warning("A read was cut off by a lost PostgreSQL connection (%s); reading again", type(exc).__name__)
            await self._reopen(broken=conn)
            return await self._run(sql, text, action)

    async def _run(self, sql: str, text: str, action: Callable[[str], Awaitable[T]]) -> T:
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
        await self._ensure_open()
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
        await self._ensure_open()
        await self.raw.execute("SELECT pg_notify($1, $2)", self.channel, payload)

    async def listen(self, on_payload: Callable[[str], None]) -> None:
        """Call ``on_payload`` for every NOTIFY on the channel, also after the connection was
        dropped and opened again (those sent while it was down are lost: receivers catch up)."""

        def heard(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            on_payload(payload)

        await self._ensure_open()
        await self.raw.add_listener(self.channel, heard)
        self._listeners.append(heard)

    async def close(self) -> None:
        self._closing = True
        if self._relisten is not None:
            self._relisten.cancel()
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
