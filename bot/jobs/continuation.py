""""Train further": the LoRAs a member already trained, as choices for ``continue_from``.

Every succeeded job keeps its last authoritative workflow state; each available epoch in it
has an AIR (``urn:air:flux1:lora:orchestrator:blob@…``) the orchestrator accepts as
``continueFrom``. Nothing is fetched from Civitai: autocomplete must answer within 3 seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import ValidationError

from bot.civitai import models as m
from storage import Store
from storage.models import Job, JobStatus

log = logging.getLogger(__name__)

# Discord: at most 25 autocomplete choices, names and values of 1–100 characters.
MAX_CHOICES = 25
CHOICE_LIMIT = 100
JOBS_SCANNED = 50


@dataclass(frozen=True)
class LoraChoice:
    label: str
    air: str


def job_epoch_airs(job: Job) -> list[tuple[int, str]]:
    """``(epoch number, AIR)`` of every available epoch of the job's last state, last first."""
    if not job.last_state:
        return []
    try:
        workflow = m.Workflow.model_validate(job.last_state)
    except ValidationError:
        log.warning("job %s has a stored state that no longer parses; skipping it", job.id)
        return []
    return [(e.epoch_number, e.air) for e in reversed(workflow.available_epochs()) if e.air]


async def finished_loras(store: Store, user_id: int, typed: str) -> list[LoraChoice]:
    """The member's trained epochs matching what they typed, newest job and last epoch first.

    A pasted AIR that is not one of them comes back first as its own choice, so it can be picked
    as typed (whether it may be continued is ``TrainingOptions``' call, with the reason).
    """
    typed = typed.strip()
    needle = typed.casefold()
    found: list[LoraChoice] = []
    jobs = await store.jobs.list_for_user(user_id, status=JobStatus.SUCCEEDED, limit=JOBS_SCANNED)
    for job in jobs:
        for number, air in job_epoch_airs(job):
            label = f"{job.name} · epoch {number}/{job.params.get('epochs', number)} · job {job.id}"[:CHOICE_LIMIT]
            if len(air) > CHOICE_LIMIT:
                continue
            if needle and needle not in label.casefold() and needle not in air.casefold():
                continue
            found.append(LoraChoice(label, air))
    pasted = typed.startswith("urn:air:") and len(typed) <= CHOICE_LIMIT and all(c.air != typed for c in found)
    return ([LoraChoice(typed, typed)] if pasted else []) + found[: MAX_CHOICES - (1 if pasted else 0)]
