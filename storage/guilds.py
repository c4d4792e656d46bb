"""Per-guild settings, the channels /train is limited to, and blocked members."""

from __future__ import annotations

from typing import Any

from storage.db import Database, Row, from_db_time
from storage.models import GUILD_SETTING_FIELDS, Block, GuildDefaults, GuildSettings, Payer, ThreadMode

# Lowest value each numeric setting accepts (the schema has the same CHECKs).
_MINIMUMS: dict[str, int] = {
    "max_concurrent_jobs_per_user": 1,
    "user_daily_buzz_cap": 0,
    "guild_monthly_buzz_cap": 0,
    "max_steps": 1,
    "max_epochs": 1,
}
_IDS = ("required_role_id", "log_channel_id")


def _column_value(name: str, value: Any) -> Any:
    """Check one setting and turn it into what the column holds (None: back to default)."""
    if name not in GUILD_SETTING_FIELDS:
        raise TypeError(f"unknown guild setting {name!r}; known: {', '.join(GUILD_SETTING_FIELDS)}")
    if value is None:
        return None
    if name == "payer":
        return Payer(value).value
    if name == "thread_mode":
        return ThreadMode(value).value
    if name == "cooldown_seconds":
        seconds = float(value)
        if seconds < 0:
            raise ValueError("cooldown_seconds must be 0 or more")
        return seconds
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if name in _IDS:
        return value
    if value < _MINIMUMS[name]:
        raise ValueError(f"{name} must be at least {_MINIMUMS[name]}, got {value}")
    return value


def _block_from_row(row: Row) -> Block:
    return Block(
        guild_id=row["guild_id"],
        user_id=row["user_id"],
        blocked_by=row["blocked_by"],
        reason=row["reason"],
        blocked_at=from_db_time(row["blocked_at"]),
    )


class GuildRepository:
    def __init__(self, db: Database, defaults: GuildDefaults) -> None:
        self.db = db
        self.defaults = defaults

    # Settings

    async def get(self, guild_id: int) -> GuildSettings:
        """The guild's settings, each one its override or else the global default."""
        row = await self.db.one("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
        stored = {name: (row[name] if row is not None else None) for name in GUILD_SETTING_FIELDS}
        resolved: dict[str, Any] = {
            name: value if value is not None else getattr(self.defaults, name, None) for name, value in stored.items()
        }
        return GuildSettings(
            guild_id=guild_id,
            required_role_id=resolved["required_role_id"],
            max_concurrent_jobs_per_user=resolved["max_concurrent_jobs_per_user"],
            user_daily_buzz_cap=resolved["user_daily_buzz_cap"],
            guild_monthly_buzz_cap=resolved["guild_monthly_buzz_cap"],
            max_steps=resolved["max_steps"],
            max_epochs=resolved["max_epochs"],
            payer=Payer(resolved["payer"]),
            thread_mode=ThreadMode(resolved["thread_mode"]),
            log_channel_id=resolved["log_channel_id"],
            cooldown_seconds=float(resolved["cooldown_seconds"]),
            has_server_token=row is not None and row["server_token_ciphertext"] is not None,
            overridden=frozenset(name for name, value in stored.items() if value is not None),
        )

    async def update(self, guild_id: int, **fields: Any) -> GuildSettings:
        """Override settings (None resets one to the default); returns the new settings.

        Raises TypeError for an unknown setting or a wrong type, ValueError for a value out of
        range: callers validate input first, this is the last line of defence.
        """
        values = {name: _column_value(name, value) for name, value in fields.items()}
        await self.db.upsert("guild_settings", "guild_id", guild_id, values | {"updated_at": self.db.now()})
        return await self.get(guild_id)

    # The server's Civitai token (ciphertext from bot.secretbox)

    async def set_token_ciphertext(self, guild_id: int, ciphertext: str) -> None:
        await self.db.upsert(
            "guild_settings",
            "guild_id",
            guild_id,
            {"server_token_ciphertext": ciphertext, "updated_at": self.db.now()},
        )

    async def get_token_ciphertext(self, guild_id: int) -> str | None:
        row = await self.db.one("SELECT server_token_ciphertext FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return row[0] if row is not None else None

    async def clear_token(self, guild_id: int) -> bool:
        changed = await self.db.run(
            "UPDATE guild_settings SET server_token_ciphertext = NULL, updated_at = ?"
            " WHERE guild_id = ? AND server_token_ciphertext IS NOT NULL",
            (self.db.now(), guild_id),
        )
        return changed > 0

    async def any_server_token(self) -> bool:
        """Whether some guild stored a token (CIVITAI_MODE=auto then runs for real)."""
        row = await self.db.one(
            "SELECT EXISTS (SELECT 1 FROM guild_settings WHERE server_token_ciphertext IS NOT NULL)"
        )
        return bool(row and row[0])

    # Channels /train is limited to (none listed: everywhere)

    async def add_channel(self, guild_id: int, channel_id: int) -> bool:
        """True when the channel was not in the list yet."""
        added = await self.db.run(
            "INSERT OR IGNORE INTO guild_channels (guild_id, channel_id, added_at) VALUES (?, ?, ?)",
            (guild_id, channel_id, self.db.now()),
        )
        return added > 0

    async def remove_channel(self, guild_id: int, channel_id: int) -> bool:
        removed = await self.db.run(
            "DELETE FROM guild_channels WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
        )
        return removed > 0

    async def clear_channels(self, guild_id: int) -> int:
        return await self.db.run("DELETE FROM guild_channels WHERE guild_id = ?", (guild_id,))

    async def list_channels(self, guild_id: int) -> list[int]:
        rows = await self.db.all(
            "SELECT channel_id FROM guild_channels WHERE guild_id = ? ORDER BY added_at, channel_id", (guild_id,)
        )
        return [row[0] for row in rows]

    async def channel_allowed(self, guild_id: int, channel_id: int) -> bool:
        row = await self.db.one(
            "SELECT NOT EXISTS (SELECT 1 FROM guild_channels WHERE guild_id = ?)"
            " OR EXISTS (SELECT 1 FROM guild_channels WHERE guild_id = ? AND channel_id = ?)",
            (guild_id, guild_id, channel_id),
        )
        return bool(row and row[0])

    # Blocked members

    async def block(self, guild_id: int, user_id: int, *, by: int | None, reason: str | None = None) -> Block:
        """Block a member (blocking again replaces who and why)."""
        now = self.db.now()
        await self.db.run(
            "INSERT INTO guild_blocks (guild_id, user_id, blocked_by, reason, blocked_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (guild_id, user_id) DO UPDATE SET blocked_by = excluded.blocked_by,"
            " reason = excluded.reason, blocked_at = excluded.blocked_at",
            (guild_id, user_id, by, reason, now),
        )
        return Block(guild_id, user_id, by, reason, from_db_time(now))

    async def unblock(self, guild_id: int, user_id: int) -> bool:
        removed = await self.db.run("DELETE FROM guild_blocks WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))
        return removed > 0

    async def get_block(self, guild_id: int, user_id: int) -> Block | None:
        row = await self.db.one("SELECT * FROM guild_blocks WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))
        return _block_from_row(row) if row is not None else None

    async def is_blocked(self, guild_id: int, user_id: int) -> bool:
        return await self.get_block(guild_id, user_id) is not None

    async def list_blocked(self, guild_id: int) -> list[Block]:
        rows = await self.db.all("SELECT * FROM guild_blocks WHERE guild_id = ? ORDER BY blocked_at", (guild_id,))
        return [_block_from_row(row) for row in rows]
