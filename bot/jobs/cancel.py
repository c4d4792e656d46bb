"""Cancelling a job: at the orchestrator with the token that submitted it, then in the store.

A draft (priced, never confirmed) is simply discarded. A submitted run is cancelled with
``PUT workflows/{id} {"status": "canceled"}`` through the account that pays for it; the
answer (or, if the workflow had ended meanwhile, a fresh read) becomes the job's
authoritative state, and its transactions settle the ledger. Whether Buzz comes back is
Civitai's decision, and every message says so.

A run that can no longer be followed (its workflow is gone, its token was removed, it belongs
to the other mode: ``bot.jobs.lost``) cannot be stopped at Civitai; cancelling it closes it
``lost`` here, with the explanation of what happened and what was charged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from bot.audit import AuditTrail
from bot.civitai.client import OrchestratorClient
from bot.civitai.errors import Conflict, NotFound
from bot.civitai.models import Workflow
from bot.errors import UserFacingError
from bot.jobs.explain import Explanation, LostReason
from bot.jobs.lost import close_lost, lost_explanation, mode_mismatch
from bot.jobs.payer import MissingToken, job_token
from bot.jobs.settlement import Settlement, settle_job
from bot.logging_setup import about_job
from bot.secretbox import SecretBox
from storage import Store
from storage.jobs import ORCHESTRATOR_STATUSES
from storage.models import Job, JobStatus

log = logging.getLogger(__name__)

REFUND_NOTE = "Refunds are Civitai's decision: any Buzz they give back shows on your Civitai account."


class CannotCancel(UserFacingError):
    def __init__(self, message: str) -> None:
        super().__init__(message, title="Can't cancel that")


@dataclass(frozen=True)
class Cancellation:
    job: Job  # as stored after the cancel
    submitted: bool  # False: a draft that never reached Civitai was discarded
    settlement: Settlement | None  # what Civitai debited and credited, when it said
    # Set when the run could no longer be followed: closed ``lost`` here, not stopped at Civitai.
    lost: Explanation | None = None
    lost_reason: LostReason | None = None

    @property
    def cancelled(self) -> bool:
        """False when the run had already ended some other way before the cancel arrived."""
        return self.job.status in (JobStatus.CANCELED, JobStatus.DISCARDED)

    @property
    def closed(self) -> bool:
        """The run ended by this cancel: cancelled, or closed as lost."""
        return self.cancelled or (self.lost is not None and self.job.status is JobStatus.LOST)


def workflow_state(workflow: Workflow) -> dict[str, Any]:
    """The workflow as JSON, the shape the tracker stores as a job's last state."""
    return workflow.model_dump(mode="json", by_alias=True, exclude_none=True)


def _stored_status(workflow: Workflow, fallback: JobStatus) -> JobStatus:
    try:
        status = JobStatus((workflow.status or "").lower())
    except ValueError:
        return fallback
    return status if status in ORCHESTRATOR_STATUSES else fallback


class JobCanceller:
    def __init__(
        self,
        *,
        store: Store,
        secretbox: SecretBox,
        orchestrator: OrchestratorClient,
        operator_token: SecretStr | None,
        audit: AuditTrail,
        simulated: bool,
    ) -> None:
        self.simulated = simulated  # the orchestrator's mode: runs of the other one are lost
        self.store = store
        self.secretbox = secretbox
        self.orchestrator = orchestrator
        self.operator_token = operator_token
        self.audit = audit

    async def cancel(self, job: Job, *, actor_id: int) -> Cancellation:
        """Cancel ``job`` (the caller checked that ``actor_id`` may, see ``bot.jobs.access``)."""
        with about_job(job):
            return await self._cancel(job, actor_id)

    async def _cancel(self, job: Job, actor_id: int) -> Cancellation:
        if job.status is JobStatus.DRAFT:
            if not await self.store.jobs.discard_draft(job.id):
                raise CannotCancel("That run was confirmed just now. Run the command again to cancel it.")
            return await self._done(job, actor_id, submitted=False, settlement=None)
        if job.status is JobStatus.SUBMITTING or (job.status.active and not job.workflow_id):
            raise CannotCancel(
                "This run is being submitted to Civitai right now. Try again in a few seconds, once it has started."
            )
        if job.status.finished:
            raise CannotCancel(f"This run has already ended ({job.status.value}); there is nothing to cancel.")
        assert job.workflow_id is not None
        if (mismatch := mode_mismatch(job, simulated=self.simulated)) is not None:
            return await self._close_lost(job, actor_id, mismatch)
        try:
            token = await job_token(self.store, self.secretbox, job, operator_token=self.operator_token)
        except MissingToken:
            return await self._close_lost(job, actor_id, LostReason.TOKEN_REMOVED)
        session = self.orchestrator.session(token)
        try:
            workflow = await session.cancel(job.workflow_id) or await session.get(job.workflow_id)
        except Conflict:
            # It ended on its own between the last update and this click: record how.
            workflow = await session.get(job.workflow_id)
        except NotFound:
            return await self._close_lost(job, actor_id, LostReason.WORKFLOW_GONE)
        status = _stored_status(workflow, JobStatus.CANCELED)
        progress = job.progress if status is not JobStatus.SUCCEEDED else 1.0
        await self.store.jobs.update_state(job.id, status, workflow_state(workflow), progress)
        settlement = await settle_job(self.store, job.id, workflow)
        return await self._done(job, actor_id, submitted=True, settlement=settlement)

    async def _close_lost(self, job: Job, actor_id: int, reason: LostReason) -> Cancellation:
        explanation = await lost_explanation(self.store, job, reason)
        await close_lost(self.store, self.audit, job, reason, explanation, actor_id=actor_id)
        current = await self.store.jobs.get(job.id)
        assert current is not None
        log.info("Job %s: cancel by %s → %s (%s)", job.id, actor_id, current.status.value, reason.value)
        return Cancellation(current, True, None, lost=explanation, lost_reason=reason)

    async def _done(self, job: Job, actor_id: int, *, submitted: bool, settlement: Settlement | None) -> Cancellation:
        current = await self.store.jobs.get(job.id)
        assert current is not None
        result = Cancellation(current, submitted, settlement)
        if result.cancelled and submitted:
            await self.audit.record(
                job.guild_id,
                actor_id,
                "job.cancel",
                {"job": job.id, "name": job.name, "owner": job.user_id},
                subject_id=job.user_id,
            )
        log.info("Job %s: cancel by %s → %s", job.id, actor_id, current.status.value)
        return result
