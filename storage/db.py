"""The connection wrapper every repository shares: one lock, one clock, explicit transactions.

The connection runs in autocommit mode, so a single statement is its own transaction. Several
statements that must land together go through ``Database.transaction()``. Every use of the
connection takes one asyncio lock: with a single shared connection, a statement from another
coroutine would otherwise run inside (and be committed or rolled back with) an unrelated
transaction.

Reads outside a transaction go to a second, read-only connection when the store opened one:
under load (fifty members confirming at once) the writer's lock and aiosqlite's one worker
thread are queued with submissions' writes, and a member's ``/help`` would wait behind all of
them before it could even answer. WAL (SQLite) and MVCC (PostgreSQL) let that reader see every
committed write at once and never wait for an open write transaction.

Two backends sit behind the same ``Connection`` interface: SQLite (here, aiosqlite) and
PostgreSQL (storage.postgres, asyncpg). Repositories write SQLite's dialect, within the subset
storage.dialect documents; the PostgreSQL connection translates it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

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


class Row(Protocol):
    """A result row of either backend: by column name or position."""

    def __getitem__(self, key: Any, /) -> Any: ...


class IntegrityError(Exception):
    """A constraint refused a write (either backend)."""


class UniqueViolation(IntegrityError):
    """A UNIQUE or PRIMARY KEY constraint refused a write."""


class Connection(Protocol):
    """One open connection to a backend; the caller serialises its use (Database's lock)."""

    dialect: str  # "sqlite" or "postgresql"

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...
    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...
    async def execute(self, sql: str, params: Params = ()) -> int: ...
    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None: ...
    def transaction(self) -> AbstractAsyncContextManager[None]: ...
    async def server_version(self) -> str: ...
    async def close(self) -> None: ...


_UNIQUE_ERRORS = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}


@contextmanager
def _sqlite_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        kind = UniqueViolation if getattr(exc, "sqlite_errorname", "") in _UNIQUE_ERRORS else IntegrityError
        raise kind(str(exc)) from exc


class SqliteConnection:
    """aiosqlite in autocommit mode; ``transaction()`` is BEGIN IMMEDIATE … COMMIT."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.raw = conn

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """One hand-off to aiosqlite's thread (a cursor costs three: execute, fetch, close). Each
        hand-off waits for the GIL and then for the event loop: under load (dataset checks in
        worker threads) that was tens of milliseconds apiece, and reads queue behind each other."""
        with _sqlite_errors():
            return list(await self.raw.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Params = ()) -> int:
        with _sqlite_errors():
            async with self.raw.execute(sql, params) as cursor:
                return cursor.rowcount

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        with _sqlite_errors():
            await self.raw.executemany(sql, rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """IMMEDIATE takes SQLite's write lock at the start, so another process sharing the file
        cannot slip a write between this transaction's reads and writes."""
        await self.raw.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.raw.in_transaction:
                await self.raw.execute("ROLLBACK")
            raise
        await self.raw.execute("COMMIT")

    async def server_version(self) -> str:
        return sqlite3.sqlite_version

    async def close(self) -> None:
        await self.raw.close()


class Session:
    """Statements on the connection. Whoever holds a Session holds the lock."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        return await self.conn.fetch_one(sql, params)

    async def all(self, sql: str, params: Params = ()) -> list[Row]:
        return await self.conn.fetch_all(sql, params)

    async def run(self, sql: str, params: Params = ()) -> int:
        """Execute a write; return the number of rows it changed."""
        return await self.conn.execute(sql, params)

    async def run_many(self, sql: str, rows: Iterable[Params]) -> None:
        """Execute one write for each row, in a single call to the database."""
        await self.conn.execute_many(sql, rows)

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Execute an INSERT into a table with an ``id INTEGER PRIMARY KEY``; return the new id."""
        row = await self.conn.fetch_one(sql + " RETURNING id", params)
        if row is None:
            raise RuntimeError("INSERT produced no row")
        return int(row[0])


def is_plain_read(sql: str) -> bool:
    """A statement that only reads (``INSERT … RETURNING`` through ``one`` is a write)."""
    return sql.lstrip()[:6].upper() == "SELECT"


class Database:
    def __init__(self, conn: Connection, clock: Clock = utcnow, *, reader: Connection | None = None) -> None:
        self.conn = conn
        self.clock = clock
        self._lock = asyncio.Lock()
        self._session = Session(conn)
        # Reads outside transactions; without one (``:memory:``) they share the writer's lock.
        self.reader = reader
        self._read_lock = asyncio.Lock() if reader is not None else self._lock
        self._read_session = Session(reader) if reader is not None else self._session

    def _for(self, sql: str) -> tuple[asyncio.Lock, Session]:
        if is_plain_read(sql):
            return self._read_lock, self._read_session
        return self._lock, self._session

    @property
    def dialect(self) -> str:
        return self.conn.dialect

    def now(self) -> str:
        return to_db_time(self.clock())

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        lock, session = self._for(sql)
        async with lock:
            return await session.one(sql, params)

    async def all(self, sql: str, params: Params = ()) -> list[Row]:
        lock, session = self._for(sql)
        async with lock:
            return await session.all(sql, params)

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
        """Statements that land together or not at all, with no other writer in between (SQLite:
        BEGIN IMMEDIATE; PostgreSQL: the store's write lock, see storage.postgres)."""
        async with self._lock, self.conn.transaction():
            yield self._session

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """The connection to itself, for what is not a statement (PostgreSQL's LISTEN/NOTIFY)."""
        async with self._lock:
            yield self.conn

    async def close(self) -> None:
        async with self._lock:
            if self.reader is not None:
                async with self._read_lock:
                    await self.reader.close()
            await self.conn.close()
