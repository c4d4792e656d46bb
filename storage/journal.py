"""What the tracker already did for a job, kept in SQLite so restarts never repeat or lose it:
handled events, epochs posted to the thread, posts about to be made, and processed callback
deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from storage.db import Database, from_db_time, to_db_time
from storage.models import Delivery, PostedEpoch


class EventRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def mark_handled(self, job_id: str, key: str) -> bool:
        """Claim an event; True only for the first caller ever (atomic INSERT OR IGNORE)."""
        added = await self.db.run(
            "INSERT OR IGNORE INTO handled_events (job_id, event_key, handled_at) VALUES (?, ?, ?)",
            (job_id, key, self.db.now()),
        )
        return added > 0

    async def is_handled(self, job_id: str, key: str) -> bool:
        row = await self.db.one("SELECT 1 FROM handled_events WHERE job_id = ? AND event_key = ?", (job_id, key))
        return row is not None

    async def release(self, job_id: str, key: str) -> bool:
        """Forget a claim whose action failed, so the next refresh tries again."""
        removed = await self.db.run("DELETE FROM handled_events WHERE job_id = ? AND event_key = ?", (job_id, key))
        return removed > 0


class PostIntentRepository:
    """Posts the tracker is about to make, recorded before they are sent (``post_intents``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def intend(self, job_id: str, key: str) -> bool:
        """Record that the post ``key`` is about to be sent. False when an earlier attempt was
        recorded already: that one may have reached Discord, so look for it before posting."""
        added = await self.db.run(
            "INSERT OR IGNORE INTO post_intents (job_id, post_key, intended_at) VALUES (?, ?, ?)",
            (job_id, key, self.db.now()),
        )
        return added > 0

    async def intended(self, job_id: str) -> list[str]:
        """The keys of every post ever intended for the job, in the order they were recorded."""
        rows = await self.db.all(
            "SELECT post_key FROM post_intents WHERE job_id = ? ORDER BY intended_at, post_key", (job_id,)
        )
        return [row[0] for row in rows]


class EpochRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record_posted(self, job_id: str, epoch_number: int, message_id: int | None) -> bool:
        """True the first time an epoch is recorded for a job; later calls change nothing."""
        added = await self.db.run(
            "INSERT OR IGNORE INTO posted_epochs (job_id, epoch_number, message_id, posted_at) VALUES (?, ?, ?, ?)",
            (job_id, epoch_number, message_id, self.db.now()),
        )
        return added > 0

    async def set_message(self, job_id: str, epoch_number: int, message_id: int) -> bool:
        """Attach the thread message to an epoch recorded before it was posted."""
        changed = await self.db.run(
            "UPDATE posted_epochs SET message_id = ? WHERE job_id = ? AND epoch_number = ?",
            (message_id, job_id, epoch_number),
        )
        return changed > 0

    async def posted_epochs(self, job_id: str) -> list[PostedEpoch]:
        rows = await self.db.all(
            "SELECT * FROM posted_epochs WHERE job_id = ? ORDER BY epoch_number", (job_id,)
        )
        return [
            PostedEpoch(row["job_id"], row["epoch_number"], row["message_id"], from_db_time(row["posted_at"]))
            for row in rows
        ]


class DeliveryRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, job_id: str, body_digest: str, outcome: str) -> Delivery:
        now = self.db.now()
        delivery_id = await self.db.insert(
            "INSERT INTO callback_deliveries (job_id, received_at, body_digest, outcome) VALUES (?, ?, ?, ?)",
            (job_id, now, body_digest, outcome),
        )
        return Delivery(delivery_id, job_id, from_db_time(now), body_digest, outcome)

    async def record_many(self, deliveries: Sequence[tuple[str, str, str]]) -> None:
        """Record ``(job_id, body_digest, outcome)`` rows in one transaction (group commit)."""
        now = self.db.now()
        async with self.db.transaction() as session:
            await session.run_many(
                "INSERT INTO callback_deliveries (job_id, received_at, body_digest, outcome) VALUES (?, ?, ?, ?)",
                [(job_id, now, body_digest, outcome) for job_id, body_digest, outcome in deliveries],
            )

    async def for_job(self, job_id: str, limit: int = 50) -> list[Delivery]:
        """The job's most recent deliveries, newest first."""
        rows = await self.db.all(
            "SELECT * FROM callback_deliveries WHERE job_id = ? ORDER BY received_at DESC, id DESC LIMIT ?",
            (job_id, limit),
        )
        return [
            Delivery(row["id"], row["job_id"], from_db_time(row["received_at"]), row["body_digest"], row["outcome"])
            for row in rows
        ]

    async def purge_older_than(self, moment: datetime) -> int:
        """Delete deliveries received before ``moment`` (CALLBACK_RETENTION_DAYS); returns how many."""
        return await self.db.run("DELETE FROM callback_deliveries WHERE received_at < ?", (to_db_time(moment),))
