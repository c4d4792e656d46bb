"""Settling a finished job in the spend ledger from what Civitai says it took and gave back.

The submit charged the quoted price; once a run ends, the workflow's transactions say what was
really debited and credited (a run cancelled before it started is usually refunded, but refunds
are Civitai's decision). Settling again replaces the previous settlement, so the tracker and a
cancel may both call this for the same run.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.civitai.models import Workflow
from storage import Store


@dataclass(frozen=True)
class Settlement:
    debited: float
    credited: float

    @property
    def net(self) -> float:
        return self.debited - self.credited


def settlement_of(workflow: Workflow) -> Settlement | None:
    """Debits and credits of a finished workflow; None while running or when Civitai sent none."""
    if not workflow.terminal or workflow.transactions is None or not workflow.transactions.items:
        return None
    debited = credited = 0.0
    for transaction in workflow.transactions.items:
        kind = (transaction.type or "").lower()
        if kind == "debit":
            debited += transaction.amount
        elif kind == "credit":
            credited += abs(transaction.amount)
    return Settlement(debited, credited)


async def settle_job(store: Store, job_id: str, workflow: Workflow) -> Settlement | None:
    """Write the job's final cost to the ledger when the workflow carries it."""
    settlement = settlement_of(workflow)
    if settlement is not None:
        await store.ledger.settle(job_id, settlement.debited, settlement.credited)
    return settlement
