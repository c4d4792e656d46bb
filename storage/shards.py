"""Which servers' rows a process owns when the bot runs as several processes (shards).

Discord assigns a server to shard ``(guild_id >> 22) % shard_count``; a process that connects
shards ``ids`` of ``count`` receives only those servers' events, so it follows only their jobs.
A scope of None (one process, the default) owns everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import placeholders


def shard_of(guild_id: int, count: int) -> int:
    """The shard Discord gives a server (discord-facts: ``(guild_id >> 22) % shard_count``)."""
    return (guild_id >> 22) % count


@dataclass(frozen=True)
class ShardScope:
    count: int
    ids: frozenset[int]

    def owns(self, guild_id: int) -> bool:
        return shard_of(guild_id, self.count) in self.ids

    def where(self, column: str = "guild_id") -> tuple[str, list[int]]:
        """A SQL condition (both dialects: ``>>`` and ``%`` on 64-bit integers) and its params."""
        ids = sorted(self.ids)
        return f"(({column} >> 22) % ? IN ({placeholders(ids)}))", [self.count, *ids]


def scope_where(scope: ShardScope | None, column: str = "guild_id") -> tuple[str, list[int]]:
    """``scope``'s condition, or one that is always true when the process owns every shard."""
    return ("1 = 1", []) if scope is None else scope.where(column)
