"""Which database the tests run on, and a fresh, empty one for each test.

TEST_DATABASE_URL selects the backend for the whole suite: unset (or ``sqlite``) runs every
store on a SQLite file under the test's tmp_path; a ``postgresql://`` URL runs every store in
a schema of its own on that server (dropped after the test). The autouse fixture in
tests/conftest.py also exports it as DATABASE_URL, so bots started by the tests (in this process
or as ``python -m bot``) use it too.

TEST_POSTGRES_URL names a server for the tests that need PostgreSQL whatever the backend (db
copy, the PostgreSQL migrations). Without one they skip, except when REQUIRE_POSTGRES is set
(.ci/run sets it): then they fail, so CI never passes without having run them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest

from storage.store import is_postgres, sqlite_url


def suite_backend_url() -> str | None:
    """The PostgreSQL server the whole suite runs on, or None for SQLite."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    return url if is_postgres(url) else None


def postgres_server_url() -> str:
    """A PostgreSQL server for the tests that need one (skip or fail as the docstring says)."""
    url = os.environ.get("TEST_POSTGRES_URL") or suite_backend_url()
    if url:
        return url
    message = "no PostgreSQL for this test: set TEST_POSTGRES_URL=postgresql://… (bash .ci/run starts one)"
    if os.environ.get("REQUIRE_POSTGRES"):
        pytest.fail(message)
    pytest.skip(message)


def _in_thread(statement: str, url: str) -> None:
    """Run one statement on its own loop in a thread: fixtures here are synchronous, and the
    test's event loop must stay untouched."""

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def with_search_path(server: str, schema: str) -> str:
    """The server's URL, with every connection's tables in ``schema`` (asyncpg passes unknown
    query parameters on as server settings)."""
    return f"{server}{'&' if '?' in server else '?'}search_path={schema}"


@contextmanager
def fresh_postgres(server: str) -> Iterator[str]:
    """A URL of ``server`` whose tables live in a new, empty schema (dropped afterwards)."""
    schema = f"test_{secrets.token_hex(6)}"
    _in_thread(f"CREATE SCHEMA {schema}", server)
    try:
        yield with_search_path(server, schema)
    finally:
        _in_thread(f"DROP SCHEMA {schema} CASCADE", server)


@contextmanager
def fresh_database(tmp_path: Path) -> Iterator[str]:
    """A URL for an empty database on the suite's backend."""
    server = suite_backend_url()
    if server is None:
        yield sqlite_url(tmp_path / "data" / "bot.sqlite3")
        return
    with fresh_postgres(server) as url:
        yield url
