"""Training jobs: the row exists before the submit, so Confirm is idempotent across crashes.

Life of a job: ``create`` (draft, revision 1; each ``update_draft`` is a new revision) →
``claim_for_submit`` (draft → submitting and the price reserved in the ledger, atomic with the
caps, so only one Confirm click submits and no race beats a limit) → ``mark_submitted``
(workflow id, the charge made exact) or, when the submit surely created nothing,
``release_claim`` / ``abandon_submit`` (the reservation dropped) → ``update_state`` with each
authoritative workflow state until a terminal status. While a submit is in flight its task
renews a lease; recovery (``take_over_submit``) only takes over one whose lease ran out.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from storage.db import (
    Database,
    Row,
    Session,
    UniqueViolation,
    from_db_time,
    optional_db_time,
    optional_time,
    placeholders,
    to_db_time,
)
from storage.ledger import drop_charge, insert_charge, over_spend_caps
from storage.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    Claim,
    ClaimRefusal,
    Job,
    JobStatus,
    NewJob,
    Payer,
    SubmitLimits,
    TokenSource,
    Variant,
)
from storage.shards import ShardScope, scope_where

# Lowercase letters and digits: easy to type into an autocomplete box, safe in URLs and custom ids.
_ID_ALPHABET = string.ascii_lowercase + string.digits
JOB_ID_LENGTH = 10  # ~51 bits
_ID_ATTEMPTS = 5

# Statuses the orchestrator reports (update_state accepts only these).
ORCHESTRATOR_STATUSES = frozenset(
    {
        JobStatus.UNASSIGNED,
        JobStatus.PREPARING,
        JobStatus.SCHEDULED,
        JobStatus.PROCESSING,
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.EXPIRED,
        JobStatus.CANCELED,
    }
)

# Statuses of a run the orchestrator accepted and that has not ended: the ones that can be lost.
FOLLOWED_STATUSES = ACTIVE_STATUSES - {JobStatus.SUBMITTING}

StatusFilter = JobStatus | Collection[JobStatus] | None


def new_job_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(JOB_ID_LENGTH))


def new_external_id(job_id: str) -> str:
    """The workflow ``externalId`` (1–128 of ``[A-Za-z0-9_-]``), fixed for the job's lifetime."""
    return f"ltb-{job_id}-{secrets.token_hex(6)}"


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _status_set(status: StatusFilter) -> frozenset[JobStatus] | None:
    if status is None:
        return None
    if isinstance(status, JobStatus):
        return frozenset({status})
    return frozenset(JobStatus(s) for s in status)


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _job_from_row(row: Row) -> Job:
    return Job(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        name=row["name"],
        variant=Variant(row["variant"]),
        params=json.loads(row["params"]),
        dataset_digest=row["dataset_digest"],
        image_count=row["image_count"],
        payer=Payer(row["payer"]),
        token_source=TokenSource(row["token_source"]),
        external_id=row["external_id"],
        hook_secret_hash=row["hook_secret_hash"],
        workflow_id=row["workflow_id"],
        status=JobStatus(row["status"]),
        price_estimate=row["price_estimate"],
        price_quoted=row["price_quoted"],
        price_charged=row["price_charged"],
        final_cost=row["final_cost"],
        last_state=json.loads(row["last_state"]) if row["last_state"] is not None else None,
        last_state_at=optional_time(row["last_state_at"]),
        progress=row["progress"],
        card_channel_id=row["card_channel_id"],
        card_message_id=row["card_message_id"],
        thread_id=row["thread_id"],
        simulated=bool(row["simulated"]),
        created_at=from_db_time(row["created_at"]),
        updated_at=from_db_time(row["updated_at"]),
        submitted_at=optional_time(row["submitted_at"]),
        finished_at=optional_time(row["finished_at"]),
        revision=row["revision"],
        lease_until=optional_time(row["lease_until"]),
        end_reason=row["end_reason"],
        thread_gone=bool(row["thread_gone"]),
    )


class JobRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # Creating and reading

    async def create(self, new: NewJob) -> Job:
        """Store a draft with a fresh id and external id; the caller hashed the hook secret."""
        now = self.db.now()
        for _ in range(_ID_ATTEMPTS):
            job_id = new_job_id()
            try:
                await self.db.run(
                    "INSERT INTO jobs (id, guild_id, channel_id, user_id, name, variant, params, dataset_digest,"
                    " image_count, payer, token_source, external_id, hook_secret_hash, status, price_estimate,"
                    " price_quoted, simulated, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job_id,
                        new.guild_id,
                        new.channel_id,
                        new.user_id,
                        new.name,
                        Variant(new.variant).value,
                        _json(new.params),
                        new.dataset_digest,
                        new.image_count,
                        Payer(new.payer).value,
                        TokenSource(new.token_source).value,
                        new_external_id(job_id),
                        new.hook_secret_hash,
                        JobStatus.DRAFT.value,
                        new.price_estimate,
                        new.price_quoted,
                        int(new.simulated),
                        now,
                        now,
                    ),
                )
            except UniqueViolation:
                # A new draft has no workflow id yet: only its random id or external id can
                # collide. Draw another.
                continue
            return await self._require(job_id)
        raise RuntimeError(f"could not draw an unused job id in {_ID_ATTEMPTS} attempts")

    async def get(self, job_id: str) -> Job | None:
        return await self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))

    async def get_by_workflow(self, workflow_id: str) -> Job | None:
        return await self._one("SELECT * FROM jobs WHERE workflow_id = ?", (workflow_id,))

    async def get_by_external_id(self, external_id: str) -> Job | None:
        return await self._one("SELECT * FROM jobs WHERE external_id = ?", (external_id,))

    # Before the submit

    async def update_draft(
        self,
        job_id: str,
        params: Mapping[str, Any],
        price_estimate: float | None,
        price_quoted: float | None,
        *,
        revision: int | None = None,
    ) -> int | None:
        """Change a draft's parameters and price, as a new revision; returns that revision.

        None once claimed or discarded, or when ``revision`` is given and the draft is no longer
        at it (someone changed it meanwhile). Every change bumps the revision, so a Confirm
        showing an older one submits nothing.
        """
        where = " AND revision = ?" if revision is not None else ""
        row = await self.db.one(
            "UPDATE jobs SET params = ?, price_estimate = ?, price_quoted = ?, revision = revision + 1,"
            f" updated_at = ? WHERE id = ? AND status = ?{where} RETURNING revision",
            (
                _json(params),
                price_estimate,
                price_quoted,
                self.db.now(),
                job_id,
                JobStatus.DRAFT.value,
                *(() if revision is None else (revision,)),
            ),
        )
        return int(row[0]) if row is not None else None

    async def claim_for_submit(
        self,
        job_id: str,
        *,
        revision: int | None = None,
        limits: SubmitLimits | None = None,
        lease_until: datetime | None = None,
    ) -> Claim:
        """Move draft → submitting and reserve its price in the ledger, in one transaction.

        True for exactly one caller however many click Confirm, in however many processes. The
        same transaction checks that the draft is still at ``revision`` and that ``limits``
        (runs going, daily and monthly spend with this price) allow it, so two Confirms racing
        near a cap can never both pass. The reservation is the quoted price (else the estimate);
        ``mark_submitted`` replaces it with the price the submit answered with.
        """
        now = self.db.now()
        async with self.db.transaction() as session:
            row = await session.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
            if row is None:
                return Claim(None, ClaimRefusal.NOT_A_DRAFT)
            job = _job_from_row(row)
            if job.status is not JobStatus.DRAFT:
                return Claim(job, ClaimRefusal.NOT_A_DRAFT)
            if revision is not None and job.revision != revision:
                return Claim(job, ClaimRefusal.REVISED)
            price = job.price_quoted if job.price_quoted is not None else (job.price_estimate or 0.0)
            refusal = await self._over_limit(session, job, price, limits) if limits is not None else None
            if refusal is not None:
                return Claim(job, refusal[0], used=refusal[1], reserved=price)
            await session.run(
                "UPDATE jobs SET status = ?, lease_until = ?, updated_at = ? WHERE id = ?",
                (JobStatus.SUBMITTING.value, optional_db_time(lease_until), now, job_id),
            )
            await insert_charge(
                session, guild_id=job.guild_id, user_id=job.user_id, job_id=job_id, payer=job.payer,
                amount=price, now=now,
            )  # fmt: skip
            return Claim(await self._require_in(session, job_id), reserved=price)

    @staticmethod
    async def _over_limit(
        session: Session, job: Job, price: float, limits: SubmitLimits
    ) -> tuple[ClaimRefusal, float] | None:
        if limits.max_active is not None:
            statuses = sorted(s.value for s in ACTIVE_STATUSES)
            row = await session.one(
                "SELECT COUNT(*) FROM jobs WHERE guild_id = ? AND user_id = ?"
                f" AND status IN ({placeholders(statuses)})",
                (job.guild_id, job.user_id, *statuses),
            )
            active = int(row[0]) if row is not None else 0
            if active >= limits.max_active:
                return ClaimRefusal.CONCURRENCY, active
        return await over_spend_caps(session, job.guild_id, job.user_id, price, limits)

    async def renew_lease(self, job_id: str, held: datetime, until: datetime) -> bool:
        """Extend the submit lease the caller holds (it still reads ``held``); False once the
        submit is over or recovery took the job over."""
        changed = await self.db.run(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND status = ? AND lease_until = ?",
            (to_db_time(until), job_id, JobStatus.SUBMITTING.value, to_db_time(held)),
        )
        return changed > 0

    async def take_over_submit(self, job_id: str, until: datetime) -> Job | None:
        """Recovery's claim on a submit whose lease ran out (its task died or gave up): the job
        with a fresh lease for the taker, or None while another holder's lease still runs."""
        now = self.db.now()
        row = await self.db.one(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND status = ? AND (lease_until IS NULL OR lease_until <= ?)"
            " RETURNING *",
            (to_db_time(until), job_id, JobStatus.SUBMITTING.value, now),
        )
        return _job_from_row(row) if row is not None else None

    async def release_claim(self, job_id: str) -> bool:
        """Move submitting → draft and drop the reservation: the submit surely created nothing."""
        return await self._end_submit(job_id, JobStatus.DRAFT)

    async def abandon_submit(self, job_id: str) -> bool:
        """Move submitting → discarded and drop the reservation: recovery found that the submit
        created nothing, and the confirmation it came from is gone."""
        return await self._end_submit(job_id, JobStatus.DISCARDED)

    async def _end_submit(self, job_id: str, target: JobStatus) -> bool:
        now = self.db.now()
        async with self.db.transaction() as session:
            changed = await session.run(
                "UPDATE jobs SET status = ?, lease_until = NULL, updated_at = ?, finished_at = ?"
                " WHERE id = ? AND status = ?",
                (target.value, now, now if target.finished else None, job_id, JobStatus.SUBMITTING.value),
            )
            if changed:
                await drop_charge(session, job_id)
            return changed > 0

    async def discard(self, job_id: str) -> bool:
        """Finish a draft that was never submitted (cancelled, expired or refused)."""
        return await self._move(job_id, {JobStatus.DRAFT}, JobStatus.DISCARDED)

    async def discard_draft(self, job_id: str) -> bool:
        """Discard a job only while it is a draft: a Cancel click racing a Confirm must never
        orphan a submit that is already on its way."""
        return await self._move(job_id, {JobStatus.DRAFT}, JobStatus.DISCARDED)

    async def discard_stale_drafts(self, created_before: datetime, shards: ShardScope | None = None) -> int:
        """Discard drafts nobody confirmed (the confirmation expires after 15 min) in the servers
        of ``shards`` (None: all); returns how many."""
        now = self.db.now()
        owned, owned_params = scope_where(shards)
        return await self.db.run(
            "UPDATE jobs SET status = ?, updated_at = ?, finished_at = ?"
            f" WHERE status = ? AND created_at < ? AND {owned}",
            (JobStatus.DISCARDED.value, now, now, JobStatus.DRAFT.value, to_db_time(created_before), *owned_params),
        )

    async def mark_submitted(self, job_id: str, workflow_id: str, price: float | None) -> Job | None:
        """Record the workflow the orchestrator created; its charge becomes ``price``.

        ``price`` is the submit response's cost total (else the quote; None keeps the
        reservation). Idempotent: repeating it with the same workflow id changes nothing. None
        when the job is not being submitted.
        """
        if not workflow_id:
            raise ValueError("a workflow id is never stored empty")
        now = self.db.now()
        async with self.db.transaction() as session:
            row = await session.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
            if row is None:
                return None
            if row["status"] == JobStatus.SUBMITTING.value:
                await session.run(
                    "UPDATE jobs SET status = ?, workflow_id = ?, price_charged = COALESCE(?, price_charged),"
                    " lease_until = NULL, submitted_at = ?, updated_at = ? WHERE id = ?",
                    (JobStatus.SUBMITTED.value, workflow_id, price, now, now, job_id),
                )
                if price is not None:
                    await insert_charge(
                        session, guild_id=row["guild_id"], user_id=row["user_id"], job_id=job_id,
                        payer=Payer(row["payer"]), amount=price, now=now, replace=True,
                    )  # fmt: skip
            elif row["workflow_id"] != workflow_id:
                return None
            return await self._require_in(session, job_id)

    # Following the run

    async def update_state(
        self, job_id: str, status: JobStatus, last_state: Mapping[str, Any] | None, progress: float | None
    ) -> bool:
        """Store an authoritative workflow state.

        A finished job keeps its terminal status (terminal statuses never change); False then,
        and for a job that was never submitted.
        """
        status = JobStatus(status)
        if status not in ORCHESTRATOR_STATUSES:
            raise ValueError(f"{status.value!r} is not an orchestrator status")
        if progress is not None:
            progress = min(1.0, max(0.0, progress))
        now = self.db.now()
        finished = sorted(s.value for s in FINISHED_STATUSES)
        never_submitted = (JobStatus.DRAFT.value, JobStatus.DISCARDED.value)
        changed = await self.db.run(
            "UPDATE jobs SET status = ?, last_state = ?, last_state_at = ?, progress = ?, updated_at = ?,"
            " finished_at = CASE WHEN ? THEN COALESCE(finished_at, ?) ELSE finished_at END"
            f" WHERE id = ? AND status NOT IN (?, ?) AND (status NOT IN ({placeholders(finished)}) OR status = ?)",
            (
                status.value,
                _json(last_state),
                now,
                progress,
                now,
                status.finished,
                now,
                job_id,
                *never_submitted,
                *finished,
                status.value,
            ),
        )
        return changed > 0

    async def mark_lost(self, job_id: str, reason: str) -> bool:
        """End a submitted run that can no longer be followed: status ``lost`` with ``reason``.

        Atomic, and only from a status the orchestrator reported (or ``submitted``): a run that
        ended meanwhile keeps its end, and a submit still in flight is never taken. False then.
        """
        now = self.db.now()
        sources = sorted(s.value for s in FOLLOWED_STATUSES)
        changed = await self.db.run(
            "UPDATE jobs SET status = ?, end_reason = ?, updated_at = ?, finished_at = COALESCE(finished_at, ?)"
            f" WHERE id = ? AND workflow_id IS NOT NULL AND status IN ({placeholders(sources)})",
            (JobStatus.LOST.value, reason, now, now, job_id, *sources),
        )
        return changed > 0

    async def mark_thread_gone(self, job_id: str) -> bool:
        """Remember that the job's thread cannot take posts any more; True the first time only."""
        changed = await self.db.run(
            "UPDATE jobs SET thread_gone = 1, updated_at = ? WHERE id = ? AND thread_gone = 0", (self.db.now(), job_id)
        )
        return changed > 0

    async def set_hook_secret_hash(self, job_id: str, secret_hash: str) -> bool:
        """Store the hash of the job's callback secret (set just before the submit)."""
        changed = await self.db.run(
            "UPDATE jobs SET hook_secret_hash = ?, updated_at = ? WHERE id = ?", (secret_hash, self.db.now(), job_id)
        )
        return changed > 0

    async def set_card(self, job_id: str, channel_id: int, message_id: int) -> bool:
        changed = await self.db.run(
            "UPDATE jobs SET card_channel_id = ?, card_message_id = ?, updated_at = ? WHERE id = ?",
            (channel_id, message_id, self.db.now(), job_id),
        )
        return changed > 0

    async def set_thread(self, job_id: str, thread_id: int | None) -> bool:
        changed = await self.db.run(
            "UPDATE jobs SET thread_id = ?, updated_at = ? WHERE id = ?", (thread_id, self.db.now(), job_id)
        )
        return changed > 0

    # Listing

    async def matching(
        self,
        *,
        guild_id: int | None = None,
        user_id: int | None = None,
        status: StatusFilter = None,
        limit: int = 25,
        offset: int = 0,
    ) -> list[Job]:
        """The jobs the filters match (a member's, a server's, or a member's in one server), newest first."""
        where, params = self._filters(user_id=user_id, guild_id=guild_id, status=status)
        return await self._page(where, params, limit, offset)

    async def list_for_user(
        self,
        user_id: int,
        *,
        guild_id: int | None = None,
        status: StatusFilter = None,
        limit: int = 25,
        offset: int = 0,
    ) -> list[Job]:
        """The member's jobs, newest first."""
        return await self.matching(user_id=user_id, guild_id=guild_id, status=status, limit=limit, offset=offset)

    async def count(
        self, *, guild_id: int | None = None, user_id: int | None = None, status: StatusFilter = None
    ) -> int:
        """How many jobs the same filters match (for "page 2 of 5")."""
        where, params = self._filters(user_id=user_id, guild_id=guild_id, status=status)
        row = await self.db.one(f"SELECT COUNT(*) FROM jobs WHERE {where}", params)
        return int(row[0]) if row is not None else 0

    async def count_active_for_user(self, guild_id: int, user_id: int) -> int:
        """Jobs counted against the per-member concurrency limit."""
        return await self.count(guild_id=guild_id, user_id=user_id, status=ACTIVE_STATUSES)

    async def uses_dataset(self, digest: str) -> bool:
        """Whether any job still refers to the dataset ``digest``."""
        row = await self.db.one("SELECT EXISTS (SELECT 1 FROM jobs WHERE dataset_digest = ?)", (digest,))
        return bool(row and row[0])

    async def list_unfinished(self, shards: ShardScope | None = None) -> list[Job]:
        """Every job the tracker must follow (including submits a crash interrupted) in the
        servers of ``shards`` (None: all), oldest first."""
        statuses = sorted(s.value for s in ACTIVE_STATUSES)
        owned, owned_params = scope_where(shards)
        rows = await self.db.all(
            f"SELECT * FROM jobs WHERE status IN ({placeholders(statuses)}) AND {owned} ORDER BY created_at, id",
            [*statuses, *owned_params],
        )
        return [_job_from_row(row) for row in rows]

    async def search(
        self,
        user_id: int | None,
        text: str,
        *,
        guild_id: int | None = None,
        status: StatusFilter = None,
        finished_only: bool = False,
        limit: int = 25,
    ) -> list[Job]:
        """The member's jobs (every member's with ``user_id=None``, for admins) whose name or id starts
        with ``text`` (case-insensitive), newest first."""
        wanted = _status_set(status)
        if finished_only:
            wanted = FINISHED_STATUSES if wanted is None else wanted & FINISHED_STATUSES
        where, params = self._filters(user_id=user_id, guild_id=guild_id, status=wanted)
        prefix = _like_prefix(text.strip())
        where += " AND (name LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\')"
        return await self._page(where, [*params, prefix, prefix], limit, 0)

    # Helpers

    @staticmethod
    def _filters(*, user_id: int | None, guild_id: int | None, status: StatusFilter) -> tuple[str, list[Any]]:
        clauses, params = ["1 = 1"], list[Any]()
        if user_id is not None:
            clauses.append("user_id = ?")
            params.append(user_id)
        if guild_id is not None:
            clauses.append("guild_id = ?")
            params.append(guild_id)
        wanted = _status_set(status)
        if wanted is not None:
            # An empty collection matches nothing rather than everything.
            clauses.append(f"status IN ({placeholders(wanted)})" if wanted else "0 = 1")
            params.extend(sorted(s.value for s in wanted))
        return " AND ".join(clauses), params

    async def _page(self, where: str, params: list[Any], limit: int, offset: int) -> list[Job]:
        rows = await self.db.all(
            f"SELECT * FROM jobs WHERE {where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            [*params, max(0, limit), max(0, offset)],
        )
        return [_job_from_row(row) for row in rows]

    async def _move(self, job_id: str, sources: set[JobStatus], target: JobStatus) -> bool:
        now = self.db.now()
        finished_at = now if target.finished else None
        changed = await self.db.run(
            f"UPDATE jobs SET status = ?, updated_at = ?, finished_at = ? WHERE id = ?"
            f" AND status IN ({placeholders(sources)})",
            (target.value, now, finished_at, job_id, *(s.value for s in sources)),
        )
        return changed > 0

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Job | None:
        row = await self.db.one(sql, params)
        return _job_from_row(row) if row is not None else None

    async def _require(self, job_id: str) -> Job:
        job = await self.get(job_id)
        if job is None:
            raise LookupError(f"job {job_id} vanished")
        return job

    @staticmethod
    async def _require_in(session: Session, job_id: str) -> Job:
        row = await session.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise LookupError(f"job {job_id} vanished")
        return _job_from_row(row)
