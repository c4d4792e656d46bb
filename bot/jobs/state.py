"""Reading an authoritative workflow as the job's state: status, progress, what the card shows.

The state kept in ``jobs.last_state`` is the workflow's JSON without what would only bloat or
leak: the training input (up to a thousand dataset references) and signed URLs (they expire,
and each one is a download credential while it lives).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bot.civitai.models import Workflow, WorkflowStatus
from storage.models import JobStatus

log = logging.getLogger(__name__)

_DROPPED_KEYS = frozenset({"url", "urlExpiresAt", "input"})


def job_status(workflow: Workflow, current: JobStatus) -> JobStatus:
    """The job status the workflow's status stands for (unknown values keep ``current``)."""
    status = (workflow.status or "").lower()
    if status in WorkflowStatus.KNOWN:
        return JobStatus(status)
    return current


def progress(workflow: Workflow, status: JobStatus) -> float | None:
    if status is JobStatus.SUCCEEDED:
        return 1.0
    step = workflow.training_step()
    rate = step.estimated_progress_rate if step is not None else None
    if rate is None:
        return None
    return min(1.0, max(0.0, rate))


def stored_state(workflow: Workflow) -> dict[str, Any]:
    """The workflow as stored for the job (camelCase, like the API), minus inputs and URLs."""
    raw = workflow.model_dump(mode="json", by_alias=True, exclude_none=True)
    return _strip(raw)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _DROPPED_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def available_epoch_numbers(state: Mapping[str, Any] | None) -> list[int]:
    """Epochs whose model is available in a stored state."""
    numbers = []
    for step in (state or {}).get("steps") or []:
        output = step.get("output") if isinstance(step, dict) else None
        for epoch in (output or {}).get("epochs") or []:
            model = epoch.get("model") if isinstance(epoch, dict) else None
            if isinstance(model, dict) and model.get("available") and isinstance(epoch.get("epochNumber"), int):
                numbers.append(epoch["epochNumber"])
    return sorted(numbers)


def card_fingerprint(
    status: JobStatus, progress_value: float | None, state: Mapping[str, Any] | None
) -> tuple[Any, ...]:
    """What the job card shows, reduced to the values whose change is worth an edit."""
    steps = (state or {}).get("steps") or []
    step = steps[0] if steps and isinstance(steps[0], dict) else {}
    queue = step.get("queuePosition") or {}
    percent = None if progress_value is None else round(progress_value * 100)
    eta = queue.get("estimatedCompleteAt") or queue.get("estimatedStartAt")
    eta_minute = eta[:16] if isinstance(eta, str) else None  # the card shows minutes, not seconds
    return status, percent, queue.get("precedingJobs"), eta_minute, len(available_epoch_numbers(state))
