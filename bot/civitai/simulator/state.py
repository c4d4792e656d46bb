"""The simulator's records (accounts, workflows, epochs) and their JSON as the orchestrator sends it."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.civitai.simulator.validation import TrainingPlan

TERMINAL = frozenset({"succeeded", "failed", "expired", "canceled"})
# Renders a blob's signed URL: blob id -> (url, expires at).
UrlSigner = Callable[[str], tuple[str, datetime]]


class InsufficientBuzz(Exception):
    """A real submit the account cannot pay for (answered 403 with a plain-string body)."""


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


def utcnow() -> datetime:
    return datetime.now(UTC)


def owner_key(token: str) -> str:
    """Who a bearer token is, as stored: a digest, so the simulator's file never holds a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_id(prefix: str = "") -> str:
    """Opaque ids in the style of the orchestrator's (clients must not parse them)."""
    return prefix + secrets.token_hex(12)


@dataclass
class Account:
    number: int
    balance: int
    transactions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Epoch:
    number: int
    model_blob_id: str
    sample_blob_ids: list[str] = field(default_factory=list)
    sample_sizes: list[tuple[int, int]] = field(default_factory=list)
    available: bool = False


@dataclass
class RunFaults:
    """What goes wrong with one run; read by the lifecycle as it reaches each point."""

    moderation: str | None = None  # "rejected" or "underReview"
    fail_at_epoch: int | None = None
    fail_reason: str = "timeout"
    expire: bool = False


@dataclass
class WorkflowRecord:
    id: str | None  # None for a whatif estimate
    owner: str  # owner_key of the token that submitted it
    owner_number: int
    template: dict[str, Any]
    plan: TrainingPlan
    external_id: str | None
    tags: list[str] = field(default_factory=list)  # PUT may replace tags and metadata
    metadata: dict[str, Any] = field(default_factory=dict)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    insufficient_buzz: bool | None = None
    status: str = "unassigned"
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    progress: float | None = None
    moderation: str = "evaluating"
    preceding_jobs: int | None = None
    eta_start: datetime | None = None
    eta_complete: datetime | None = None
    failure_reason: str | None = None
    epochs: list[Epoch] = field(default_factory=list)
    faults: RunFaults = field(default_factory=RunFaults)
    job_id: str = field(default_factory=lambda: new_id("job-"))
    thumb_blob_ids: list[str] | None = None  # the dataset's thumbnails, once fetched (samples use them)
    deleted: bool = False
    # Simulated seconds (SimClock) when the current status began, when preparing may end, when it ended.
    since: float = 0.0
    ready_at: float | None = None
    ended: float | None = None
    review: asyncio.Future[bool] | None = None
    version: int = 0
    # Told of every visible change (persistence); not part of the record.
    on_change: Callable[[WorkflowRecord], None] | None = field(default=None, repr=False, compare=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def step(self) -> dict[str, Any]:
        step: dict[str, Any] = self.template["steps"][0]
        return step

    @property
    def step_name(self) -> str:
        return str(self.step.get("name") or "0")

    def touch(self) -> None:
        """Something visible changed: wake long-polls waiting for a change."""
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()
        if self.on_change is not None:
            self.on_change(self)

    async def wait_change(self, since: int, seconds: float) -> bool:
        """True when ``version`` moved past ``since`` within ``seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self.version == since:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return False
        return True


def blob_json(kind: str, blob_id: str, available: bool, sign: UrlSigner, size: tuple[int, int] | None = None,
              job_id: str | None = None) -> dict[str, Any]:
    blob: dict[str, Any] = {"type": kind, "id": blob_id, "available": available}
    if available:
        url, expires = sign(blob_id)
        blob.update(url=url, urlExpiresAt=iso(expires))
    if size:
        blob.update(width=size[0], height=size[1])
    if job_id:
        blob["jobId"] = job_id
    return blob


def _epoch_json(rec: WorkflowRecord, epoch: Epoch, sign: UrlSigner) -> dict[str, Any]:
    samples = [
        blob_json("image", bid, True, sign, size, rec.job_id)
        for bid, size in zip(epoch.sample_blob_ids, epoch.sample_sizes, strict=True)
    ] if epoch.available else []
    return {
        "epochNumber": epoch.number,
        "model": blob_json("model", epoch.model_blob_id, epoch.available, sign, job_id=rec.job_id),
        "samples": samples,
    }


def _step_json(rec: WorkflowRecord, sign: UrlSigner) -> dict[str, Any]:
    step = rec.step
    out: dict[str, Any] = {
        "$type": "training",
        "name": rec.step_name,
        "priority": step.get("priority") or "normal",
        "timeout": step.get("timeout"),
        "retries": step.get("retries"),
        "status": rec.status,
        "startedAt": iso(rec.started_at),
        "completedAt": iso(rec.completed_at),
        "metadata": step.get("metadata") or {},
        "estimatedProgressRate": None if rec.terminal else rec.progress,
        "input": rec.plan.input,
        "output": {
            "moderationStatus": rec.moderation,
            "epochs": [_epoch_json(rec, epoch, sign) for epoch in rec.epochs],
        },
    }
    if not rec.terminal:
        out["queuePosition"] = {
            "support": "available",
            "precedingJobs": rec.preceding_jobs,
            "estimatedStartAt": iso(rec.eta_start),
            "estimatedCompleteAt": iso(rec.eta_complete),
        }
    return out


def workflow_json(rec: WorkflowRecord, sign: UrlSigner) -> dict[str, Any]:
    """The workflow as ``GET /v2/consumer/workflows/{id}`` returns it (valid against ``Workflow``)."""
    template = rec.template
    cost: dict[str, Any] = {"base": rec.plan.base, "tips": {"civitai": 0, "creators": 0}, "total": rec.plan.total}
    if rec.plan.samples_buzz:
        cost["fixed"] = {"samples": rec.plan.samples_buzz}
    transactions: dict[str, Any] = {"list": rec.transactions}
    if rec.insufficient_buzz is not None:
        transactions["insufficientBuzz"] = rec.insufficient_buzz
    return {
        "id": rec.id,
        "createdAt": iso(rec.created_at),
        "transactions": transactions,
        "metadata": rec.metadata,
        "status": rec.status,
        "startedAt": iso(rec.started_at),
        "completedAt": iso(rec.completed_at),
        "tags": rec.tags,
        "arguments": template.get("arguments") or {},
        "steps": [_step_json(rec, sign)],
        "callbacks": template.get("callbacks") or [],
        "tips": {"civitai": 0, "creators": 0},
        "cost": cost,
        "upgradeMode": template.get("upgradeMode") or "manual",
        "currencies": template.get("currencies") or ["yellow"],
        "forceRefunded": False,
        "allowMatureContent": template.get("allowMatureContent"),
        # Stored as "{userId}-{clientValue}" (the published schema says so): compare by suffix.
        "externalId": f"{rec.owner_number}-{rec.external_id}" if rec.external_id else None,
    }
