"""The audit log: every submit, cancel, failure and setting change, per guild."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from storage.db import Database, from_db_time
from storage.models import AuditEntry

_INSERT = "INSERT INTO audit_log (guild_id, actor_id, subject_id, action, details, at) VALUES (?, ?, ?, ?, ?, ?)"


def _row(guild_id: int | None, actor_id: int | None, subject_id: int | None, action: str,
         details: Mapping[str, Any], now: str) -> tuple[Any, ...]:  # fmt: skip
    return (guild_id, actor_id, subject_id, action, json.dumps(details, sort_keys=True), now)


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        guild_id: int | None,
        actor_id: int | None,
        action: str,
        details: Mapping[str, Any] | None = None,
        *,
        subject_id: int | None = None,
    ) -> AuditEntry:
        """Log an action; ``subject_id`` is the member it concerns when that is not the actor."""
        now = self.db.now()
        details = dict(details or {})
        entry_id = await self.db.insert(_INSERT, _row(guild_id, actor_id, subject_id, action, details, now))
        return AuditEntry(entry_id, guild_id, actor_id, subject_id, action, details, from_db_time(now))

    async def add_once(
        self,
        job_id: str,
        key: str,
        guild_id: int | None,
        actor_id: int | None,
        action: str,
        details: Mapping[str, Any] | None = None,
        *,
        subject_id: int | None = None,
    ) -> AuditEntry | None:
        """Log an action about a job once: the entry and the handled event ``key`` of the job are
        written in one transaction, so a repeat (a restart, a second path) adds nothing: None."""
        now = self.db.now()
        details = dict(details or {})
        async with self.db.transaction() as session:
            claimed = await session.run(
                "INSERT OR IGNORE INTO handled_events (job_id, event_key, handled_at) VALUES (?, ?, ?)",
                (job_id, key, now),
            )
            if not claimed:
                return None
            entry_id = await session.insert(_INSERT, _row(guild_id, actor_id, subject_id, action, details, now))
        return AuditEntry(entry_id, guild_id, actor_id, subject_id, action, details, from_db_time(now))

    async def recent(self, guild_id: int, limit: int = 20) -> list[AuditEntry]:
        rows = await self.db.all(
            "SELECT * FROM audit_log WHERE guild_id = ? ORDER BY at DESC, id DESC LIMIT ?", (guild_id, limit)
        )
        return [
            AuditEntry(
                id=row["id"],
                guild_id=row["guild_id"],
                actor_id=row["actor_id"],
                subject_id=row["subject_id"],
                action=row["action"],
                details=json.loads(row["details"]),
                at=from_db_time(row["at"]),
            )
            for row in rows
        ]
