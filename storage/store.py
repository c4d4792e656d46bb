"""The store: one connection for writes (SQLite in WAL mode, or PostgreSQL), migrated at open,
a second one for reads outside transactions (storage.db says why), and the repositories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiosqlite

from storage.audit import AuditRepository
from storage.captions import CaptionRunRepository
from storage.db import Clock, Connection, Database, SqliteConnection, utcnow
from storage.guilds import GuildRepository
from storage.jobs import JobRepository
from storage.journal import DeliveryRepository, EpochRepository, EventRepository, PostIntentRepository
from storage.ledger import LedgerRepository
from storage.migrations import apply_migrations, current_version, load_migrations
from storage.models import FORGOTTEN_MEMBER_ID, GuildDefaults
from storage.postgres import PostgresConnection
from storage.users import UserRepository

SQLITE_SCHEME = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def sqlite_url(path: Path | str) -> str:
    return SQLITE_SCHEME + str(path)


def is_postgres(target: Path | str) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def sqlite_path(target: Path | str) -> Path | str:
    """The file of a ``sqlite:///…`` URL (or a plain path); ``:memory:`` stays as it is."""
    if isinstance(target, Path):
        return target
    if target.startswith(SQLITE_SCHEME):
        target = target.removeprefix(SQLITE_SCHEME)
    elif "://" in target:
        raise ValueError(
            f"unsupported database URL scheme in {target.split('://')[0]}://…:"
            " use sqlite:///path/to/file or postgresql://user@host/db"
        )
    return target if target == ":memory:" else Path(target)


async def _open_sqlite(path: Path | str) -> Connection:
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Autocommit: every statement commits by itself unless inside Database.transaction().
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=5000")
        await apply_migrations(conn)
    except BaseException:
        await conn.close()
        raise
    return SqliteConnection(conn)


async def _open_sqlite_reader(path: Path | str) -> Connection | None:
    """A second connection for reads (none for ``:memory:``, which is private to its connection).
    ``query_only`` makes a write sent here by mistake fail loudly instead of bypassing the
    writer's lock."""
    if str(path) == ":memory:":
        return None
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA query_only=ON")
        await conn.execute("PRAGMA busy_timeout=5000")
    except BaseException:
        await conn.close()
        raise
    return SqliteConnection(conn)


async def _open_postgres(url: str) -> Connection:
    conn = await PostgresConnection.connect(url)
    try:
        await apply_migrations(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


# Whether an audit entry's JSON details hold the member id ?1 (as a number) or ?2 (as text)
# anywhere: JSON functions are the one thing the two backends spell differently.
_NAMES_IN_DETAILS = {
    "sqlite": "EXISTS (SELECT 1 FROM json_tree(audit_log.details) WHERE atom = ?1 OR atom = ?2)",
    "postgresql": "jsonb_path_exists(details::jsonb, 'strict $.** ? (@ == $n || @ == $s)',"
    " jsonb_build_object('n', ?1::bigint, 's', ?2::text))",
}


class Store:
    def __init__(self, db: Database, defaults: GuildDefaults | None = None) -> None:
        self.db = db
        self.guilds = GuildRepository(db, defaults or GuildDefaults())
        self.users = UserRepository(db)
        self.jobs = JobRepository(db)
        self.events = EventRepository(db)
        self.epochs = EpochRepository(db)
        self.intents = PostIntentRepository(db)
        self.deliveries = DeliveryRepository(db)
        self.audit = AuditRepository(db)
        self.ledger = LedgerRepository(db)
        self.captions = CaptionRunRepository(db)

    @classmethod
    async def open(cls, target: Path | str, *, defaults: GuildDefaults | None = None, clock: Clock = utcnow) -> Store:
        """Connect, apply pending migrations and return the store.

        ``target`` is a SQLite file (a path or ``sqlite:///path``) or a ``postgresql://`` URL.
        ``defaults`` are the global guild defaults (``bot.services`` builds them from the
        settings); ``clock`` lets tests control time.
        """
        postgres = isinstance(target, str) and is_postgres(target)
        conn = await (_open_postgres(str(target)) if postgres else _open_sqlite(sqlite_path(target)))
        try:
            # Opened after the migrations, so it reads the migrated schema.
            reader = await (
                PostgresConnection.connect(str(target)) if postgres else _open_sqlite_reader(sqlite_path(target))
            )
        except BaseException:
            await conn.close()
            raise
        return cls(Database(conn, clock, reader=reader), defaults)

    async def close(self) -> None:
        await self.db.close()

    async def schema_version(self) -> tuple[int, int]:
        """(the database's migration version, the newest migration this code ships)."""
        return await current_version(self.db.conn), len(load_migrations())

    async def describe(self) -> str:
        """The backend and its version, e.g. "SQLite 3.40.1" or "PostgreSQL 15.8"."""
        name = "PostgreSQL" if self.db.dialect == "postgresql" else "SQLite"
        return f"{name} {await self.db.conn.server_version()}"

    async def integrity_problems(self) -> list[str]:
        """What SQLite's quick_check finds wrong with the file (empty when it is sound).
        PostgreSQL checks its own pages (there is nothing to ask it here)."""
        if self.db.dialect != "sqlite":
            return []
        rows = await self.db.all("PRAGMA quick_check")
        found = [str(row[0]) for row in rows]
        return [] if found == ["ok"] else found

    async def tell_processes(self, payload: str) -> None:
        """Hand ``payload`` to every process listening on this database (none on SQLite: one
        process only). Delivered only to processes listening now: the receiver must also catch
        up by itself (the tracker's reconcile pass)."""
        async with self.db.connection() as conn:
            if isinstance(conn, PostgresConnection):
                await conn.notify(payload)

    async def listen_to_processes(self, on_payload: Callable[[str], None]) -> None:
        """Call ``on_payload`` with what other processes ``tell_processes`` from now on."""
        async with self.db.connection() as conn:
            if isinstance(conn, PostgresConnection):
                await conn.listen(on_payload)

    async def get_meta(self, key: str) -> str | None:
        row = await self.db.one("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        await self.db.run(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def forget_user(self, user_id: int) -> dict[str, int]:
        """Delete everything that belongs to or names a member; returns rows removed per table.

        Their jobs go with the events, epochs and deliveries that hang off them (ON DELETE
        CASCADE), their captioning runs too; their spend stays in the ledger under
        ``FORGOTTEN_MEMBER_ID``. Blocks the member placed on others stay in force, without their
        name. Cancel the member's running jobs first: a job deleted here is no longer followed.
        """
        removed: dict[str, int] = {}
        async with self.db.transaction() as session:
            removed["jobs"] = await session.run("DELETE FROM jobs WHERE user_id = ?", (user_id,))
            # Spend stays counted against the server's monthly cap, under nobody's name: forgetting
            # must not hand a server its budget back.
            removed["spend_ledger"] = await session.run(
                "UPDATE spend_ledger SET user_id = ? WHERE user_id = ?", (FORGOTTEN_MEMBER_ID, user_id)
            )
            removed["user_settings"] = await session.run("DELETE FROM user_settings WHERE user_id = ?", (user_id,))
            # What they generated and their votes on others' runs (their ledger rows stay, as above).
            removed["generations"] = await session.run("DELETE FROM generations WHERE user_id = ?", (user_id,))
            removed["epoch_votes"] = await session.run("DELETE FROM epoch_votes WHERE user_id = ?", (user_id,))
            # Their captioning runs: file names and captions of their images (ledger rows stay, as above).
            removed["caption_runs"] = await session.run("DELETE FROM caption_runs WHERE user_id = ?", (user_id,))
            removed["guild_blocks"] = await session.run("DELETE FROM guild_blocks WHERE user_id = ?", (user_id,))
            await session.run("UPDATE guild_blocks SET blocked_by = NULL WHERE blocked_by = ?", (user_id,))
            # Details are free-form JSON: any value equal to the id (as number or text) names them.
            removed["audit_log"] = await session.run(
                "DELETE FROM audit_log WHERE actor_id = ?1 OR subject_id = ?1 OR " + _NAMES_IN_DETAILS[self.db.dialect],
                (user_id, str(user_id)),
            )
        return removed
