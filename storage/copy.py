"""Moving a bot's data between databases (``python -m bot db copy``), and listing it all.

Both ends are opened as stores (so both are migrated to this code's schema first); every table
is copied row by row, values as stored (ids, times and amounts exact), parents before the
tables that refer to them, in one transaction on the target. A target that already holds data
is refused: copying is for moving to a new, empty database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage.db import Database
from storage.store import Store

_BATCH = 500


class CopyRefused(RuntimeError):
    """The copy cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    parents: frozenset[str]  # tables it refers to by foreign key
    has_id: bool  # an auto-numbered ``id`` (its counter must follow the copied ids)


# Per backend: the bot's tables; each column with whether it is the auto-numbered id; the tables
# a table refers to.
_CATALOG = {
    "sqlite": (
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " AND name <> 'schema_version' ORDER BY name",
        "SELECT name, name = 'id' AND pk = 1 AND upper(type) = 'INTEGER' FROM pragma_table_info(?) ORDER BY cid",
        'SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)',
    ),
    "postgresql": (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_type = 'BASE TABLE' AND table_name <> 'schema_version' ORDER BY table_name",
        "SELECT column_name, column_name = 'id' AND is_identity = 'YES' FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        "SELECT DISTINCT confrelid::regclass::text FROM pg_constraint"
        " WHERE contype = 'f' AND conrelid = (?::text)::regclass",
    ),
}


async def tables(db: Database) -> list[Table]:
    """The bot's tables (not ``schema_version``, which each database keeps for itself), parents
    first."""
    names_sql, columns_sql, parents_sql = _CATALOG[db.dialect]
    found = []
    for row in await db.all(names_sql):
        name = str(row[0])
        columns = await db.all(columns_sql, (name,))
        parents = frozenset(parent[0] for parent in await db.all(parents_sql, (name,))) - {name}
        found.append(Table(name, tuple(c[0] for c in columns), parents, any(bool(c[1]) for c in columns)))
    return _parents_first(found)


def _parents_first(found: Sequence[Table]) -> list[Table]:
    ordered: list[Table] = []
    placed: set[str] = set()
    remaining = list(found)
    while remaining:
        ready = [t for t in remaining if t.parents <= placed | {t.name}]
        if not ready:
            raise RuntimeError(f"foreign keys form a cycle among {[t.name for t in remaining]}")
        for table in ready:
            ordered.append(table)
            placed.add(table.name)
            remaining.remove(table)
    return ordered


async def rows(db: Database, table: Table) -> list[tuple[Any, ...]]:
    """Every row of a table, in its columns' order, sorted (in Python: the backends' text
    collations differ) so two databases compare equal."""
    found = await db.all(f"SELECT {', '.join(table.columns)} FROM {table.name}")
    values = [tuple(row[i] for i in range(len(table.columns))) for row in found]
    return sorted(values, key=lambda row: tuple((v is None, "" if v is None else v) for v in row))


async def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, by table."""
    return {table.name: await rows(store.db, table) for table in await tables(store.db)}


async def copy_store(source: Store, target: Store) -> dict[str, int]:
    """Copy every row of ``source`` into the empty ``target``; returns rows copied per table."""
    source_tables = await tables(source.db)
    target_tables = {t.name: t for t in await tables(target.db)}
    source_version, _ = await source.schema_version()
    target_version, _ = await target.schema_version()
    if source_version != target_version:
        raise CopyRefused(f"the source is at schema version {source_version} and the target at {target_version}")
    occupied = {t: n for t in target_tables if (n := await _count(target.db, t))}
    if occupied:
        listed = ", ".join(f"{n} in {t}" for t, n in sorted(occupied.items()))
        raise CopyRefused(
            f"the target database already holds data ({listed}): copy into a new, empty database"
            " (or drop its tables first)"
        )
    copied: dict[str, int] = {}
    async with target.db.transaction() as session:
        for table in source_tables:
            if table.name not in target_tables:
                raise CopyRefused(f"the target has no table {table.name}")
            found = await rows(source.db, table)
            columns = ", ".join(table.columns)
            marks = ", ".join("?" for _ in table.columns)
            for start in range(0, len(found), _BATCH):
                await session.run_many(
                    f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", found[start : start + _BATCH]
                )
            copied[table.name] = len(found)
        if target.db.dialect == "postgresql":
            for table in source_tables:
                if table.has_id:
                    # The next auto-numbered id follows the copied ones.
                    await session.one(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"
                        f" (SELECT COALESCE(MAX(id), 0) + 1 FROM {table.name}), false)"
                    )
    return copied


async def _count(db: Database, table: str) -> int:
    row = await db.one(f"SELECT COUNT(*) FROM {table}")
    return int(row[0]) if row is not None else 0
