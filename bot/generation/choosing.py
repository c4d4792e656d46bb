"""Choosing an epoch together: one vote per member (changeable) and the owner's pick.

Both live in SQLite, so a restart keeps them; the pick is what the job card, ``/jobs show`` and
the final grid's menus name as the run's chosen epoch.
"""

from __future__ import annotations

from bot.errors import UserFacingError
from bot.jobs.continuation import CHOICE_LIMIT, LoraChoice, job_epoch_airs
from storage import Store
from storage.generations import GenerationRepository
from storage.models import Job


class OnlyTheOwnerPicks(UserFacingError):
    def __init__(self, owner_id: int) -> None:
        super().__init__(
            f"Only <@{owner_id}>, who trained this LoRA, can pick its epoch. Use the **Vote** menu on the "
            "final grid to say which one you like.",
            title="Not your run",
        )


class NoSuchEpoch(UserFacingError):
    def __init__(self, number: int) -> None:
        super().__init__(f"Epoch {number} of this run is not available.", title="Unknown epoch")


def _check_epoch(job: Job, number: int) -> None:
    if number not in {n for n, _ in job_epoch_airs(job)}:
        raise NoSuchEpoch(number)


async def vote(repo: GenerationRepository, job: Job, user_id: int, number: int) -> dict[int, int]:
    """Record (or change) ``user_id``'s vote; the tally after it."""
    _check_epoch(job, number)
    await repo.vote(job.id, user_id, number)
    return await repo.tally(job.id)


async def pick(repo: GenerationRepository, job: Job, user_id: int, number: int) -> int | None:
    """The owner picks epoch ``number``; returns the epoch picked before (None when none)."""
    if user_id != job.user_id:
        raise OnlyTheOwnerPicks(job.user_id)
    _check_epoch(job, number)
    before = await repo.picked(job.id)
    await repo.pick(job.id, number)
    return before


def tally_text(tally: dict[int, int], picked: int | None) -> str:
    lines = [f"Epoch {n}: {'▮' * min(count, 20)} {count} vote{'s' if count != 1 else ''}" for n, count in tally.items()]
    if picked is not None:
        lines.insert(0, f"⭐ Picked by the owner: **epoch {picked}**")
    return "\n".join(lines) or "No votes yet: use the **Vote** menu."


async def picked_first(
    repo: GenerationRepository, store: Store, user_id: int, choices: list[LoraChoice]
) -> list[LoraChoice]:
    """The member's LoRA choices with their runs' picked epochs first and starred: what Train
    further and /generate offer by default."""
    picked: set[str] = set()
    for job_id, number in (await repo.picks_of_owner(user_id)).items():
        job = await store.jobs.get(job_id)
        air = dict(job_epoch_airs(job)).get(number) if job is not None else None
        if air is not None:
            picked.add(air)
    starred = [LoraChoice(f"⭐ {c.label}"[:CHOICE_LIMIT], c.air) if c.air in picked else c for c in choices]
    return sorted(starred, key=lambda c: c.air not in picked)
