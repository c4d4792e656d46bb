"""Runs that can no longer be followed, ended ``lost``: by the tracker, or by a cancel.

A run is lost when its workflow is gone at Civitai (404), when the token it was paid with was
removed, or when it belongs to the other mode (a simulated run while the bot trains for real,
or the reverse). Errors that may pass (5xx, 429, unreachable) never make a run lost. What the
member is told says what happened and what the ledger recorded as charged, nothing more.
"""

from __future__ import annotations

import logging

from bot.audit import AuditTrail
from bot.jobs.explain import Explanation, LostReason, explain_lost
from storage import Store
from storage.models import Job

log = logging.getLogger(__name__)


def mode_mismatch(job: Job, *, simulated: bool) -> LostReason | None:
    """Why ``job`` cannot be followed by a bot in this mode, or None when it can."""
    if job.simulated == simulated:
        return None
    return LostReason.SIMULATED_IN_REAL_MODE if job.simulated else LostReason.REAL_IN_SIMULATED_MODE


async def lost_explanation(store: Store, job: Job, reason: LostReason) -> Explanation:
    """What happened, with the charge the ledger holds for the run (Civitai may refund it)."""
    charged = await store.ledger.spent_for_job(job.id)
    return explain_lost(reason, simulated=job.simulated, charged=charged)


async def close_lost(
    store: Store, audit: AuditTrail | None, job: Job, reason: LostReason, explanation: Explanation, *,
    actor_id: int | None,
) -> bool:  # fmt: skip
    """Audit the loss (once per job), then store the job ``lost``, which frees its slot: a crash
    in between leaves the job active, so it is closed (and not audited twice) next time. False
    when the run had ended otherwise meanwhile: its end stands."""
    if audit is not None:
        await audit.record_job_end(job, actor_id, "job.lost", reason=explanation.headline)
    closed = await store.jobs.mark_lost(job.id, reason.value)
    if closed:
        log.warning("Job %s can no longer be followed (%s): ended lost", job.id, reason.value)
    return closed
