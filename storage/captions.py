"""Captioning runs (issue 15) and each server's free-run threshold for them.

A run is charged once: the move ``submitting → running`` records the workflow and inserts the
ledger charge in one transaction, and only the caller that makes that move charges. A run has no
job yet (it comes before the training draft), so its ledger rows carry no job id; they still
count against the member's and the server's caps.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from storage.db import Database, Row, from_db_time
from storage.ledger import insert_charge
from storage.models import Payer
from storage.shards import ShardScope, scope_where


class CaptionRunStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTING = "submitting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DISCARDED = "discarded"


UNFINISHED = (CaptionRunStatus.SUBMITTING, CaptionRunStatus.RUNNING)


@dataclass(frozen=True)
class NewCaptionRun:
    guild_id: int
    channel_id: int
    user_id: int
    source_digest: str
    mode: str
    style: str
    trigger_word: str | None
    images: Sequence[str]
    payer: Payer
    simulated: bool
    price_quoted: float | None
    context: Mapping[str, Any]


@dataclass(frozen=True)
class CaptionRun(NewCaptionRun):
    id: str
    external_id: str
    workflow_id: str | None
    status: CaptionRunStatus
    price_charged: float | None
    result_digest: str | None
    summary: dict[str, Any] | None
    failure: str | None
    created_at: datetime


def _run_from_row(row: Row) -> CaptionRun:
    return CaptionRun(
        id=row["id"], guild_id=row["guild_id"], channel_id=row["channel_id"], user_id=row["user_id"],
        source_digest=row["source_digest"], mode=row["mode"], style=row["style"], trigger_word=row["trigger_word"],
        images=json.loads(row["images"]), context=json.loads(row["context"]), payer=Payer(row["payer"]),
        simulated=bool(row["simulated"]), external_id=row["external_id"], workflow_id=row["workflow_id"],
        status=CaptionRunStatus(row["status"]), price_quoted=row["price_quoted"],
        price_charged=row["price_charged"], result_digest=row["result_digest"],
        summary=json.loads(row["summary"]) if row["summary"] else None, failure=row["failure"],
        created_at=from_db_time(row["created_at"]),
    )  # fmt: skip


class CaptionRunRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, new: NewCaptionRun) -> CaptionRun:
        run_id = "cap" + secrets.token_hex(6)
        now = self.db.now()
        await self.db.run(
            "INSERT INTO caption_runs (id, guild_id, channel_id, user_id, source_digest, mode, style, trigger_word,"
            " images, context, payer, simulated, external_id, price_quoted, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, new.guild_id, new.channel_id, new.user_id, new.source_digest, new.mode, new.style,
             new.trigger_word, json.dumps(list(new.images)), json.dumps(dict(new.context)), Payer(new.payer).value,
             int(new.simulated), f"ltb-{run_id}-{secrets.token_hex(6)}", new.price_quoted, now, now),
        )  # fmt: skip
        created = await self.get(run_id)
        assert created is not None
        return created

    async def get(self, run_id: str) -> CaptionRun | None:
        row = await self.db.one("SELECT * FROM caption_runs WHERE id = ?", (run_id,))
        return _run_from_row(row) if row is not None else None

    async def unfinished(self, shards: ShardScope | None = None) -> list[CaptionRun]:
        """Runs a restart interrupted, in the servers of ``shards`` (None: all)."""
        owned, owned_params = scope_where(shards)
        rows = await self.db.all(
            f"SELECT * FROM caption_runs WHERE status IN (?, ?) AND {owned} ORDER BY created_at",
            (*(s.value for s in UNFINISHED), *owned_params),
        )
        return [_run_from_row(row) for row in rows]

    async def move(self, run_id: str, source: CaptionRunStatus, target: CaptionRunStatus) -> bool:
        """``source → target``; True for exactly one caller (a double click claims once)."""
        changed = await self.db.run(
            "UPDATE caption_runs SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
            (target.value, self.db.now(), run_id, source.value),
        )
        return changed > 0

    async def mark_running(self, run_id: str, workflow_id: str, price: float | None) -> bool:
        """Record the workflow and charge ``price``, once: False when the run is not being
        submitted (another process already did it, or it was resumed after a restart)."""
        now = self.db.now()
        async with self.db.transaction() as session:
            row = await session.one("SELECT * FROM caption_runs WHERE id = ?", (run_id,))
            if row is None or row["status"] != CaptionRunStatus.SUBMITTING.value:
                return False
            await session.run(
                "UPDATE caption_runs SET status = ?, workflow_id = ?, price_charged = ?, updated_at = ? WHERE id = ?",
                (CaptionRunStatus.RUNNING.value, workflow_id, price, now, run_id),
            )
            if price:
                await insert_charge(session, guild_id=row["guild_id"], user_id=row["user_id"], job_id=None,
                                    payer=Payer(row["payer"]), amount=price, now=now)  # fmt: skip
            return True

    async def finish(
        self,
        run_id: str,
        *,
        result_digest: str | None,
        summary: Mapping[str, Any] | None,
        failure: str | None = None,
    ) -> bool:
        """running → succeeded (with the captioned dataset) or failed (with why)."""
        status = CaptionRunStatus.FAILED if failure is not None else CaptionRunStatus.SUCCEEDED
        changed = await self.db.run(
            "UPDATE caption_runs SET status = ?, result_digest = ?, summary = ?, failure = ?, updated_at = ?"
            " WHERE id = ? AND status IN (?, ?)",
            (status.value, result_digest, json.dumps(dict(summary)) if summary is not None else None, failure,
             self.db.now(), run_id, *(s.value for s in UNFINISHED)),
        )  # fmt: skip
        return changed > 0

    async def free_threshold(self, guild_id: int) -> int:
        """Captioning priced at or under this many Buzz runs without its own confirmation (0: always ask)."""
        row = await self.db.one("SELECT caption_buzz FROM guild_caption_settings WHERE guild_id = ?", (guild_id,))
        return int(row[0]) if row is not None else 0

    async def set_free_threshold(self, guild_id: int, buzz: int) -> None:
        await self.db.upsert("guild_caption_settings", "guild_id", guild_id, {"caption_buzz": buzz})

    async def replace_draft_dataset(self, job_id: str, digest: str, image_count: int) -> bool:
        """Point a draft at its re-captioned dataset and bump its revision in the same UPDATE, so a
        Confirm showing the older captions submits nothing (False once the job is no longer a draft)."""
        changed = await self.db.run(
            "UPDATE jobs SET dataset_digest = ?, image_count = ?, revision = revision + 1, updated_at = ?"
            " WHERE id = ? AND status = 'draft'",
            (digest, image_count, self.db.now(), job_id),
        )
        return changed > 0

    async def latest_draft_id(self, guild_id: int, user_id: int) -> str | None:
        """The member's newest training draft in this server (what `/dataset captions` edits)."""
        row = await self.db.one(
            "SELECT id FROM jobs WHERE guild_id = ? AND user_id = ? AND status = 'draft'"
            " ORDER BY created_at DESC LIMIT 1",
            (guild_id, user_id),
        )
        return str(row[0]) if row is not None else None
