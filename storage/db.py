"""The connection wrapper every repository shares: one lock, one clock, explicit transactions.

The connection runs in autocommit mode, so a single statement is its own transaction. Several
statements that must land together go through ``Database.transaction()``. Every use of the
connection takes one asyncio lock: with a single shared connection, a statement from another
coroutine would otherwise run inside (and be committed or rolled back with) an unrelated
transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiosqlite

Clock = Callable[[], datetime]
Params = Sequence[Any] | Mapping[str, Any]

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_db_time(moment: datetime) -> str:
    """Fixed-width UTC text with milliseconds (the same shape as SQLite's strftime('%f'))."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware datetime (UTC)")
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def from_db_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def optional_db_time(moment: datetime | None) -> str | None:
    return to_db_time(moment) if moment is not None else None


def optional_time(text: str | None) -> datetime | None:
    return from_db_time(text) if text is not None else None


def placeholders(values: Iterable[Any]) -> str:
    """``?, ?, ?`` for an IN (…) list."""
    return ", ".join("?" for _ in values)


class Session:
    """Statements on the connection. Whoever holds a Session holds the lock."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def one(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        async with self.conn.execute(sql, params) as cursor:
            row: aiosqlite.Row | None = await cursor.fetchone()
        return row

    async def all(self, sql: str, params: Params = ()) -> list[aiosqlite.Row]:
        async with self.conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def run(self, sql: str, params: Params = ()) -> int:
        """Execute a write; return the number of rows it changed."""
        async with self.conn.execute(sql, params) as cursor:
            return cursor.rowcount

    async def run_many(self, sql: str, rows: Iterable[Params]) -> None:
        """Execute one write for each row, in a single call to the database thread."""
        await self.conn.executemany(sql, rows)

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Execute an INSERT; return the new row's rowid."""
        async with self.conn.execute(sql, params) as cursor:
            rowid = cursor.lastrowid
        if rowid is None:
            raise RuntimeError("INSERT produced no rowid")
        return rowid


class Database:
    def __init__(self, conn: aiosqlite.Connection, clock: Clock = utcnow) -> None:
        self.conn = conn
        self.clock = clock
        self._lock = asyncio.Lock()
        self._session = Session(conn)

    def now(self) -> str:
        return to_db_time(self.clock())

    async def one(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        async with self._lock:
            return await self._session.one(sql, params)

    async def all(self, sql: str, params: Params = ()) -> list[aiosqlite.Row]:
        async with self._lock:
            return await self._session.all(sql, params)

    async def run(self, sql: str, params: Params = ()) -> int:
        async with self._lock:
            return await self._session.run(sql, params)

    async def insert(self, sql: str, params: Params = ()) -> int:
        async with self._lock:
            return await self._session.insert(sql, params)

    async def upsert(self, table: str, key_column: str, key: Any, values: Mapping[str, Any]) -> None:
        """Insert a row keyed by ``key`` or update the given columns of the existing one.

        Table and column names come from the repositories' own constants, never from input.
        """
        columns = [key_column, *values]
        await self.run(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders(columns)})"
            f" ON CONFLICT ({key_column}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in values),
            (key, *values.values()),
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """BEGIN IMMEDIATE … COMMIT, rolled back if the block raises.

        IMMEDIATE takes SQLite's write lock at the start, so another process sharing the file
        cannot slip a write between this transaction's reads and writes.
        """
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._session
            except BaseException:
                if self.conn.in_transaction:
                    await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    async def close(self) -> None:
        async with self._lock:
            await self.conn.close()
