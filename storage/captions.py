"""Captioning runs (issue 15) and each server's free-run threshold for them.

A run pays like a training run: ``claim`` moves ``draft → submitting`` and reserves the quoted
price in the ledger in the transaction that checks the Buzz caps (two claims near a cap never
both pass); ``mark_running`` records the workflow and makes the charge its price, once;
``release`` drops the reservation when the submit surely created nothing. A run has no job yet
(it comes before the training draft): its ledger rows are keyed by ``caption_run_id`` and count
against the member's and the server's caps like any other.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from storage.db import Database, Row, from_db_time, optional_db_time
from storage.ledger import drop_charge, insert_charge, over_spend_caps
from storage.models import Claim, ClaimRefusal, Payer, SubmitLimits
from storage.shards import ShardScope, scope_where

# "cap" and 12 hex digits: never a job id (10 letters and digits), so a callback URL says which.
RUN_ID_PATTERN = re.compile(r"^cap[0-9a-f]{12}$")


def is_caption_run_id(value: str) -> bool:
    return RUN_ID_PATTERN.fullmatch(value) is not None


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
    lease_until: datetime | None = None
    hook_secret_hash: str | None = None


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
        lease_until=from_db_time(row["lease_until"]) if row["lease_until"] else None,
        hook_secret_hash=row["hook_secret_hash"],
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

    async def datasets_of_user(self, user_id: int) -> set[str]:
        """The datasets a member's captioning runs read and wrote (their images)."""
        rows = await self.db.all(
            "SELECT source_digest, result_digest FROM caption_runs WHERE user_id = ?", (user_id,)
        )
        return {digest for row in rows for digest in (row[0], row[1]) if digest}

    async def uses_dataset(self, digest: str) -> bool:
        """Whether any captioning run still refers to the dataset ``digest``."""
        row = await self.db.one(
            "SELECT EXISTS (SELECT 1 FROM caption_runs WHERE source_digest = ?1 OR result_digest = ?1)", (digest,)
        )
        return bool(row and row[0])

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

    async def claim(self, run_id: str, limits: SubmitLimits | None, lease_until: datetime) -> Claim:
        """draft → submitting, reserving the quoted price in the ledger, in one transaction that
        also checks ``limits``' Buzz caps with that price. True for exactly one caller however
        many press Caption; ``Claim.job`` is unused (re-read the run)."""
        now = self.db.now()
        async with self.db.transaction() as session:
            row = await session.one("SELECT * FROM caption_runs WHERE id = ?", (run_id,))
            if row is None or row["status"] != CaptionRunStatus.DRAFT.value:
                return Claim(None, ClaimRefusal.NOT_A_DRAFT)
            run = _run_from_row(row)
            price = run.price_quoted or 0.0
            refusal = await over_spend_caps(session, run.guild_id, run.user_id, price, limits) if limits else None
            if refusal is not None:
                return Claim(None, refusal[0], used=refusal[1], reserved=price)
            await session.run(
                "UPDATE caption_runs SET status = ?, lease_until = ?, updated_at = ? WHERE id = ?",
                (CaptionRunStatus.SUBMITTING.value, optional_db_time(lease_until), now, run_id),
            )
            await insert_charge(session, guild_id=run.guild_id, user_id=run.user_id, job_id=None, payer=run.payer,
                                amount=price, now=now, caption_run_id=run_id)  # fmt: skip
            return Claim(None, reserved=price)

    async def set_lease(self, run_id: str, until: datetime) -> bool:
        """Until when the run's submit may still be on its way (only while it is submitting)."""
        changed = await self.db.run(
            "UPDATE caption_runs SET lease_until = ? WHERE id = ? AND status = ?",
            (optional_db_time(until), run_id, CaptionRunStatus.SUBMITTING.value),
        )
        return changed > 0

    async def release(self, run_id: str) -> bool:
        """submitting → draft, dropping the reservation: the submit surely created nothing, so
        pressing Caption again submits anew."""
        now = self.db.now()
        async with self.db.transaction() as session:
            changed = await session.run(
                "UPDATE caption_runs SET status = ?, lease_until = NULL, updated_at = ? WHERE id = ? AND status = ?",
                (CaptionRunStatus.DRAFT.value, now, run_id, CaptionRunStatus.SUBMITTING.value),
            )
            if changed:
                await drop_charge(session, None, caption_run_id=run_id)
            return changed > 0

    async def mark_running(self, run_id: str, workflow_id: str, price: float | None) -> bool:
        """Record the workflow, and make the run's charge ``price`` (None keeps the reservation),
        once: False when the run is not being submitted (already recorded, or released)."""
        now = self.db.now()
        async with self.db.transaction() as session:
            row = await session.one("SELECT * FROM caption_runs WHERE id = ?", (run_id,))
            if row is None or row["status"] != CaptionRunStatus.SUBMITTING.value:
                return False
            await session.run(
                "UPDATE caption_runs SET status = ?, workflow_id = ?, price_charged = COALESCE(?, price_quoted),"
                " lease_until = NULL, updated_at = ? WHERE id = ?",
                (CaptionRunStatus.RUNNING.value, workflow_id, price, now, run_id),
            )
            if price is not None:
                await insert_charge(session, guild_id=row["guild_id"], user_id=row["user_id"], job_id=None,
                                    payer=Payer(row["payer"]), amount=price, now=now, caption_run_id=run_id,
                                    replace=True)  # fmt: skip
            return True

    async def set_hook_secret_hash(self, run_id: str, secret_hash: str) -> None:
        await self.db.run("UPDATE caption_runs SET hook_secret_hash = ? WHERE id = ?", (secret_hash, run_id))

    async def hook_secret_hash(self, run_id: str) -> str | None:
        row = await self.db.one("SELECT hook_secret_hash FROM caption_runs WHERE id = ?", (run_id,))
        return row[0] if row is not None else None

    async def spent(self, run_id: str) -> float:
        """What the ledger counts for the run (its reservation or charge)."""
        row = await self.db.one("SELECT COALESCE(SUM(amount), 0) FROM spend_ledger WHERE caption_run_id = ?", (run_id,))
        return float(row[0]) if row is not None else 0.0

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
