"""The spend ledger: what each job cost, so budget caps and /admin usage are one query each.

A job's net spend is its ``charge`` (the price at submit) plus its ``settle`` row (final cost
minus the charge) plus its ``credit`` row (refunds, negative). Settlement and credit rows carry
the charge's time, so a job's cost stays in the period it was submitted in.
"""

from __future__ import annotations

from datetime import datetime

from storage.db import Database, Session, to_db_time
from storage.models import ClaimRefusal, LedgerKind, Payer, SubmitLimits, UserUsage

_INSERT = (
    "INSERT OR IGNORE INTO spend_ledger (guild_id, user_id, job_id, payer, amount, kind, at, recorded_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _owner(job_id: str | None, caption_run_id: str | None) -> tuple[str, str | None]:
    """The ledger column a charge is keyed by (one charge row per job or caption run), and its id."""
    return ("caption_run_id", caption_run_id) if caption_run_id is not None else ("job_id", job_id)


async def insert_charge(
    session: Session,
    *,
    guild_id: int,
    user_id: int,
    job_id: str | None,
    payer: Payer,
    amount: float,
    now: str,
    caption_run_id: str | None = None,
    replace: bool = False,
) -> bool:
    """Record a charge; False when this job (or caption run) was already charged (a retried
    submit). With ``replace``, an existing charge becomes ``amount``: the reservation made at the
    claim becomes the price the submit answered with."""
    column, key = _owner(job_id, caption_run_id)
    added = await session.run(
        f"INSERT OR IGNORE INTO spend_ledger (guild_id, user_id, {column}, payer, amount, kind, at, recorded_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (guild_id, user_id, key, Payer(payer).value, amount, LedgerKind.CHARGE.value, now, now),
    )
    if not added and replace:
        await session.run(
            f"UPDATE spend_ledger SET amount = ?, recorded_at = ? WHERE {column} = ? AND kind = ?",
            (amount, now, key, LedgerKind.CHARGE.value),
        )
    return added > 0


async def drop_charge(session: Session, job_id: str | None, *, caption_run_id: str | None = None) -> None:
    """Release a reservation: its submit surely created nothing."""
    column, key = _owner(job_id, caption_run_id)
    await session.run(f"DELETE FROM spend_ledger WHERE {column} = ? AND kind = ?", (key, LedgerKind.CHARGE.value))


async def over_spend_caps(
    session: Session, guild_id: int, user_id: int, price: float, limits: SubmitLimits
) -> tuple[ClaimRefusal, float] | None:
    """The Buzz cap ``price`` would pass, with what was spent against it; read in the caller's
    claim transaction, so two claims racing near a cap can never both pass."""
    if limits.daily_cap is not None:
        spent = await spent_since(session, guild_id, limits.day_start, user_id=user_id)
        if spent + price > limits.daily_cap:
            return ClaimRefusal.DAILY_CAP, spent
    if limits.monthly_cap is not None:
        spent = await spent_since(session, guild_id, limits.month_start)
        if spent + price > limits.monthly_cap:
            return ClaimRefusal.MONTHLY_CAP, spent
    return None


async def spent_since(session: Session, guild_id: int, since: datetime, *, user_id: int | None = None) -> float:
    """Net spend in a server since ``since`` (one member's with ``user_id``), reservations included."""
    sql = "SELECT COALESCE(SUM(amount), 0) FROM spend_ledger WHERE guild_id = ? AND at >= ?"
    params: tuple[object, ...] = (guild_id, to_db_time(since))
    if user_id is not None:
        sql += " AND user_id = ?"
        params += (user_id,)
    row = await session.one(sql, params)
    return float(row[0]) if row is not None else 0.0


def _payer_clause(payer: Payer | None) -> tuple[str, tuple[str, ...]]:
    return ("", ()) if payer is None else (" AND payer = ?", (Payer(payer).value,))


class LedgerRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def charge(self, guild_id: int, user_id: int, job_id: str | None, payer: Payer, amount: float) -> bool:
        """Charge outside a submit (``jobs.mark_submitted`` charges the submit price itself)."""
        now = self.db.now()
        async with self.db.transaction() as session:
            return await insert_charge(
                session, guild_id=guild_id, user_id=user_id, job_id=job_id, payer=payer, amount=amount, now=now
            )

    async def settle(self, job_id: str, final_cost: float, credits: float = 0.0) -> bool:
        """Replace the submit-time price of a job by its final cost and credits.

        Settling again replaces the previous settlement. False when the job does not exist.
        """
        now = self.db.now()
        async with self.db.transaction() as session:
            job = await session.one("SELECT guild_id, user_id, payer FROM jobs WHERE id = ?", (job_id,))
            if job is None:
                return False
            charged = await session.one(
                "SELECT COALESCE(SUM(amount), 0), MIN(at) FROM spend_ledger WHERE job_id = ? AND kind = ?",
                (job_id, LedgerKind.CHARGE.value),
            )
            assert charged is not None  # an aggregate always returns one row
            at = charged[1] or now
            await session.run(
                "DELETE FROM spend_ledger WHERE job_id = ? AND kind IN (?, ?)",
                (job_id, LedgerKind.SETTLE.value, LedgerKind.CREDIT.value),
            )
            rows = [(LedgerKind.SETTLE, final_cost - charged[0])]
            if credits:
                rows.append((LedgerKind.CREDIT, -abs(credits)))
            for kind, amount in rows:
                await session.run(
                    _INSERT, (job["guild_id"], job["user_id"], job_id, job["payer"], amount, kind.value, at, now)
                )
            await session.run("UPDATE jobs SET final_cost = ?, updated_at = ? WHERE id = ?", (final_cost, now, job_id))
            return True

    async def spent_for_job(self, job_id: str) -> float:
        row = await self.db.one("SELECT COALESCE(SUM(amount), 0) FROM spend_ledger WHERE job_id = ?", (job_id,))
        return float(row[0]) if row is not None else 0.0

    async def spent_by_user(self, guild_id: int, user_id: int, since: datetime, *, payer: Payer | None = None) -> float:
        clause, extra = _payer_clause(payer)
        row = await self.db.one(
            "SELECT COALESCE(SUM(amount), 0) FROM spend_ledger WHERE guild_id = ? AND user_id = ? AND at >= ?"
            + clause,
            (guild_id, user_id, to_db_time(since), *extra),
        )
        return float(row[0]) if row is not None else 0.0

    async def spent_by_guild(self, guild_id: int, since: datetime, *, payer: Payer | None = None) -> float:
        clause, extra = _payer_clause(payer)
        row = await self.db.one(
            "SELECT COALESCE(SUM(amount), 0) FROM spend_ledger WHERE guild_id = ? AND at >= ?" + clause,
            (guild_id, to_db_time(since), *extra),
        )
        return float(row[0]) if row is not None else 0.0

    async def usage_by_user(self, guild_id: int, since: datetime) -> list[UserUsage]:
        """Net spend and number of charged jobs per member since ``since``, biggest first."""
        rows = await self.db.all(
            "SELECT user_id, SUM(amount) AS spent, COUNT(DISTINCT CASE WHEN kind = ? THEN job_id END) AS jobs"
            " FROM spend_ledger WHERE guild_id = ? AND at >= ? GROUP BY user_id ORDER BY spent DESC, user_id",
            (LedgerKind.CHARGE.value, guild_id, to_db_time(since)),
        )
        return [UserUsage(user_id=row["user_id"], spent=float(row["spent"]), jobs=int(row["jobs"])) for row in rows]
