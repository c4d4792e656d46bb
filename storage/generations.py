"""Generations (imageGen workflows made with trained epochs), epoch votes and picks.

A generation follows the same exactly-once path as a training job: the row exists before the
submit, ``claim`` lets one Confirm through, and ``mark_submitted`` records the workflow and its
ledger charge in one transaction, so a retried Confirm or a restart never charges twice.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from storage.db import Database, Row, from_db_time, placeholders
from storage.ledger import over_spend_caps
from storage.models import Claim, ClaimRefusal, LedgerKind, Payer, SubmitLimits, TokenSource
from storage.shards import ShardScope, scope_where

_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
ID_LENGTH = 10


class GenerationStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    POSTED = "posted"
    FAILED = "failed"
    DISCARDED = "discarded"

    @property
    def finished(self) -> bool:
        return self in (GenerationStatus.POSTED, GenerationStatus.FAILED, GenerationStatus.DISCARDED)


class GenerationKind(StrEnum):
    TRY = "try"
    COMPARE = "compare"
    GENERATE = "generate"


class TryItAccess(StrEnum):
    OWNER = "owner"
    MEMBERS = "members"


@dataclass(frozen=True)
class NewGeneration:
    guild_id: int
    channel_id: int
    user_id: int
    job_id: str | None
    kind: GenerationKind
    params: Mapping[str, Any]
    payer: Payer
    token_source: TokenSource
    price_estimate: float
    price_quoted: float | None
    simulated: bool


@dataclass(frozen=True)
class Generation:
    id: str
    guild_id: int
    channel_id: int
    user_id: int
    job_id: str | None
    kind: GenerationKind
    params: dict[str, Any]
    payer: Payer
    token_source: TokenSource
    external_id: str
    workflow_id: str | None
    status: GenerationStatus
    price_estimate: float | None
    price_quoted: float | None
    price_charged: float | None
    simulated: bool
    message_id: int | None
    end_reason: str | None
    created_at: datetime

    @property
    def price(self) -> float:
        """What the member was shown: the whatif price, else the estimate."""
        return self.price_charged or self.price_quoted or self.price_estimate or 0.0


def _from_row(row: Row) -> Generation:
    return Generation(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        job_id=row["job_id"],
        kind=GenerationKind(row["kind"]),
        params=json.loads(row["params"]),
        payer=Payer(row["payer"]),
        token_source=TokenSource(row["token_source"]),
        external_id=row["external_id"],
        workflow_id=row["workflow_id"],
        status=GenerationStatus(row["status"]),
        price_estimate=row["price_estimate"],
        price_quoted=row["price_quoted"],
        price_charged=row["price_charged"],
        simulated=bool(row["simulated"]),
        message_id=row["message_id"],
        end_reason=row["end_reason"],
        created_at=from_db_time(row["created_at"]),
    )


_INSERT_CHARGE = (
    "INSERT OR IGNORE INTO spend_ledger (guild_id, user_id, generation_id, payer, kind, amount, at, recorded_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _charge_of(row: Row) -> tuple[Any, ...]:
    """The first columns of a generation's charge row (amount and times follow)."""
    return (row["guild_id"], row["user_id"], row["id"], row["payer"], LedgerKind.CHARGE.value)


class GenerationRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, new: NewGeneration) -> Generation:
        generation_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))
        now = self.db.now()
        await self.db.run(
            "INSERT INTO generations (id, guild_id, channel_id, user_id, job_id, kind, params, payer, token_source,"
            " external_id, price_estimate, price_quoted, simulated, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                generation_id, new.guild_id, new.channel_id, new.user_id, new.job_id, new.kind.value,
                json.dumps(dict(new.params), sort_keys=True), new.payer.value, new.token_source.value,
                f"ltb-gen-{generation_id}-{secrets.token_hex(6)}", new.price_estimate, new.price_quoted,
                int(new.simulated), now, now,
            ),
        )  # fmt: skip
        created = await self.get(generation_id)
        assert created is not None
        return created

    async def get(self, generation_id: str) -> Generation | None:
        row = await self.db.one("SELECT * FROM generations WHERE id = ?", (generation_id,))
        return _from_row(row) if row is not None else None

    async def unfinished(self, shards: ShardScope | None = None) -> list[Generation]:
        """Generations submitted (or being submitted) whose images are not posted yet, in the
        servers of ``shards`` (None: all)."""
        owned, owned_params = scope_where(shards)
        rows = await self.db.all(
            f"SELECT * FROM generations WHERE finished_at IS NULL AND status IN (?, ?) AND {owned} ORDER BY created_at",
            (GenerationStatus.SUBMITTING.value, GenerationStatus.SUBMITTED.value, *owned_params),
        )
        return [_from_row(row) for row in rows]

    async def claim(self, generation_id: str, limits: SubmitLimits | None = None) -> Claim:
        """draft → submitting and reserve the price in the ledger, in one transaction, as a run's
        claim does: one caller however many press Confirm, and two Confirms near a Buzz cap can
        never both pass (``limits``' spend caps are checked with this price in the same
        transaction). ``Claim.job`` is unused here; ``refusal`` None means this caller holds it."""
        now = self.db.now()
        async with self.db.transaction() as session:
            row = await session.one("SELECT * FROM generations WHERE id = ?", (generation_id,))
            if row is None or row["status"] != GenerationStatus.DRAFT.value:
                return Claim(None, ClaimRefusal.NOT_A_DRAFT)
            generation = _from_row(row)
            price = generation.price
            refusal = None
            if limits is not None:
                refusal = await over_spend_caps(session, generation.guild_id, generation.user_id, price, limits)
            if refusal is not None:
                return Claim(None, refusal[0], used=refusal[1], reserved=price)
            await session.run(
                "UPDATE generations SET status = ?, updated_at = ? WHERE id = ?",
                (GenerationStatus.SUBMITTING.value, now, generation_id),
            )
            await session.run(_INSERT_CHARGE, (*_charge_of(row), price, now, now))
            return Claim(None, reserved=price)

    async def release_claim(self, generation_id: str) -> bool:
        """submitting → draft, releasing the reservation: its submit surely created nothing."""
        now = self.db.now()
        async with self.db.transaction() as session:
            changed = await session.run(
                "UPDATE generations SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
                (GenerationStatus.DRAFT.value, now, generation_id, GenerationStatus.SUBMITTING.value),
            )
            if changed:
                await session.run(
                    "DELETE FROM spend_ledger WHERE generation_id = ? AND kind = ?",
                    (generation_id, LedgerKind.CHARGE.value),
                )
        return changed > 0

    async def discard(self, generation_id: str) -> bool:
        return await self._move(generation_id, {GenerationStatus.DRAFT}, GenerationStatus.DISCARDED)

    async def mark_submitted(self, generation_id: str, workflow_id: str, price: float) -> Generation | None:
        """Record the workflow and charge ``price`` to the ledger, once. None unless submitting."""
        now = self.db.now()
        async with self.db.transaction() as session:
            row = await session.one("SELECT * FROM generations WHERE id = ?", (generation_id,))
            if row is None:
                return None
            if row["status"] == GenerationStatus.SUBMITTING.value:
                await session.run(
                    "UPDATE generations SET status = ?, workflow_id = ?, price_charged = ?, submitted_at = ?,"
                    " updated_at = ? WHERE id = ?",
                    (GenerationStatus.SUBMITTED.value, workflow_id, price, now, now, generation_id),
                )
                # The reservation made at the claim becomes the price the submit answered with.
                if not await session.run(_INSERT_CHARGE, (*_charge_of(row), price, now, now)):
                    await session.run(
                        "UPDATE spend_ledger SET amount = ?, recorded_at = ? WHERE generation_id = ? AND kind = ?",
                        (price, now, generation_id, LedgerKind.CHARGE.value),
                    )
            elif row["workflow_id"] != workflow_id:
                return None
            updated = await session.one("SELECT * FROM generations WHERE id = ?", (generation_id,))
        return _from_row(updated) if updated is not None else None

    async def spent(self, generation_id: str) -> float:
        row = await self.db.one(
            "SELECT COALESCE(SUM(amount), 0) FROM spend_ledger WHERE generation_id = ?", (generation_id,)
        )
        return float(row[0]) if row is not None else 0.0

    async def finish(
        self, generation_id: str, status: GenerationStatus, *, message_id: int | None = None, reason: str | None = None
    ) -> bool:
        """posted or failed, once; a failure that Civitai refunded is credited back in the ledger."""
        now = self.db.now()
        changed = await self.db.run(
            "UPDATE generations SET status = ?, message_id = ?, end_reason = ?, updated_at = ?, finished_at = ?"
            " WHERE id = ? AND finished_at IS NULL",
            (status.value, message_id, reason, now, now, generation_id),
        )
        return changed > 0

    async def credit(self, generation_id: str, amount: float) -> None:
        """Give back what a failed generation was charged (Civitai refunds failed image steps)."""
        now = self.db.now()
        await self.db.run(
            "INSERT OR IGNORE INTO spend_ledger"
            " (guild_id, user_id, generation_id, payer, amount, kind, at, recorded_at)"
            " SELECT guild_id, user_id, id, payer, ?, ?, COALESCE(submitted_at, ?), ? FROM generations WHERE id = ?",
            (-abs(amount), LedgerKind.CREDIT.value, now, now, generation_id),
        )

    async def _move(self, generation_id: str, sources: set[GenerationStatus], target: GenerationStatus) -> bool:
        now = self.db.now()
        finished_at = now if target.finished else None
        changed = await self.db.run(
            f"UPDATE generations SET status = ?, updated_at = ?, finished_at = ? WHERE id = ?"
            f" AND status IN ({placeholders(sources)})",
            (target.value, now, finished_at, generation_id, *(s.value for s in sources)),
        )
        return changed > 0

    # --- who may press Try it -------------------------------------------------------------------

    async def try_it_access(self, guild_id: int) -> TryItAccess:
        row = await self.db.one("SELECT try_it FROM generation_settings WHERE guild_id = ?", (guild_id,))
        return TryItAccess(row[0]) if row is not None else TryItAccess.OWNER

    async def set_try_it_access(self, guild_id: int, access: TryItAccess) -> None:
        await self.db.upsert(
            "generation_settings", "guild_id", guild_id, {"try_it": access.value, "updated_at": self.db.now()}
        )

    async def set_run_open(self, job_id: str, open_to_members: bool) -> None:
        """The owner lets every member try this run (or takes it back)."""
        if open_to_members:
            await self.db.run(
                "INSERT OR IGNORE INTO try_it_runs (job_id, opened_at) VALUES (?, ?)", (job_id, self.db.now())
            )
        else:
            await self.db.run("DELETE FROM try_it_runs WHERE job_id = ?", (job_id,))

    async def run_is_open(self, job_id: str) -> bool:
        return await self.db.one("SELECT 1 FROM try_it_runs WHERE job_id = ?", (job_id,)) is not None

    # --- votes and picks ------------------------------------------------------------------------

    async def vote(self, job_id: str, user_id: int, epoch: int) -> None:
        """One vote per member and run; voting again replaces it."""
        await self.db.run(
            "INSERT INTO epoch_votes (job_id, user_id, epoch_number, voted_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (job_id, user_id) DO UPDATE SET epoch_number = excluded.epoch_number,"
            " voted_at = excluded.voted_at",
            (job_id, user_id, epoch, self.db.now()),
        )

    async def tally(self, job_id: str) -> dict[int, int]:
        """Votes per epoch, epochs without votes left out."""
        rows = await self.db.all(
            "SELECT epoch_number, COUNT(*) FROM epoch_votes WHERE job_id = ? GROUP BY epoch_number ORDER BY 1",
            (job_id,),
        )
        return {int(row[0]): int(row[1]) for row in rows}

    async def pick(self, job_id: str, epoch: int) -> None:
        await self.db.upsert("epoch_picks", "job_id", job_id, {"epoch_number": epoch, "picked_at": self.db.now()})

    async def picked(self, job_id: str) -> int | None:
        row = await self.db.one("SELECT epoch_number FROM epoch_picks WHERE job_id = ?", (job_id,))
        return int(row[0]) if row is not None else None

    async def set_vote_message(self, job_id: str, channel_id: int, message_id: int) -> None:
        await self.db.upsert("vote_messages", "job_id", job_id, {"channel_id": channel_id, "message_id": message_id})

    async def vote_message(self, job_id: str) -> tuple[int, int] | None:
        """``(channel_id, message_id)`` of the run's final grid, once known."""
        row = await self.db.one("SELECT channel_id, message_id FROM vote_messages WHERE job_id = ?", (job_id,))
        return (int(row[0]), int(row[1])) if row is not None else None

    async def picks_of_owner(self, user_id: int) -> dict[str, int]:
        """job id → picked epoch, for every run of ``user_id`` with a pick."""
        rows = await self.db.all(
            "SELECT p.job_id, p.epoch_number FROM epoch_picks p JOIN jobs j ON j.id = p.job_id WHERE j.user_id = ?",
            (user_id,),
        )
        return {str(row[0]): int(row[1]) for row in rows}
