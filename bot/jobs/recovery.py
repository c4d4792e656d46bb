"""Submits whose outcome is unknown: find out from the orchestrator before anything else.

A submit can end without a usable answer: every retry timed out, the connection dropped after
the request was sent, a 5xx came after the workflow was created, or the process died mid-way.
The job then stays ``submitting`` with its price reserved, and nobody is told "nothing was
charged". Whoever resolves it first asks the orchestrator for a workflow carrying the job's
tag and ``externalId``:

- found: the job adopts it (``mark_submitted``), the charge becomes its price;
- not found, and nothing can still be on its way (every attempt was answered, or the lease of
  the submitting task ran out): the reservation is dropped and the member told it is known;
- otherwise the answer waits for the lease to run out (``Tracker`` checks again then).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Protocol

from bot.civitai.client import OrchestratorSession
from bot.civitai.errors import OrchestratorError, RateLimited, UnexpectedResponse
from bot.civitai.models import Workflow
from bot.civitai.pricing import price_from_workflow
from storage import Store
from storage.models import Job

log = logging.getLogger(__name__)

# A submitting task renews its lease this often, for this long; recovery takes over a job only
# once its lease ran out, so a slow upload of many images is never "recovered" while it runs.
SUBMIT_LEASE = timedelta(seconds=60)
LEASE_RENEW_EVERY = timedelta(seconds=15)
# After a submit whose answer was lost, the request may still be at work at Civitai: recovery
# looks again once this has passed with nothing on its way.
UNKNOWN_OUTCOME_GRACE = timedelta(seconds=30)


def workflow_tag(job_id: str) -> str:
    """The tag every submit of a job carries, so the job's workflow can be found without its id."""
    return f"job-{job_id}"


class Submittable(Protocol):
    """What a lookup needs of a job or a caption run: its id (in its tag) and its externalId."""

    @property
    def id(self) -> str: ...

    @property
    def external_id(self) -> str: ...


def surely_refused(exc: Exception) -> bool:
    """Civitai answered the submit with a refusal, and no earlier attempt's answer was lost:
    nothing was created."""
    if not isinstance(exc, OrchestratorError) or exc.unanswered_attempts:
        return False
    if isinstance(exc, RateLimited):
        return True
    return not exc.retryable and not isinstance(exc, UnexpectedResponse)


async def find_workflow(session: OrchestratorSession, job: Submittable) -> Workflow | None:
    """The workflow a submit of ``job`` (or caption run) created, if any (by tag, confirmed by
    externalId; the orchestrator answers the id prefixed with the account's number)."""
    page = await session.list_by_tag(workflow_tag(job.id), take=10)
    return next((w for w in page.items if w.id and (w.external_id or "").endswith(job.external_id)), None)


async def adopt(store: Store, job: Job, workflow: Workflow) -> Job | None:
    """Record ``workflow`` as the job's: it is submitted, charged at the workflow's price."""
    assert workflow.id
    price = price_from_workflow(workflow) or job.price_quoted or job.price_estimate
    return await store.jobs.mark_submitted(job.id, workflow.id, price)
