"""Train further from an epoch: a new run that continues from that epoch's LoRA.

It reuses the finished run's settings and its stored, normalised dataset (kept for the
retention period), checked again as any dataset is, and goes through the same quote as
``/train``: policy checks, whatif price, a draft job to Confirm.
"""

from __future__ import annotations

import asyncio
import logging

from bot.civitai.training import TrainingOptions
from bot.dataset.check import check_zip
from bot.errors import UserFacingError
from bot.jobs.continuation import job_epoch_airs
from bot.jobs.submission import Quote, Requester, TrainingService
from storage.models import Job

log = logging.getLogger(__name__)

NAME_LIMIT = 100


class OnlyTheOwnerTrainsFurther(UserFacingError):
    def __init__(self, owner_id: int) -> None:
        super().__init__(
            f"Only <@{owner_id}> can train further from their run (it reuses their images). "
            "To build on this LoRA with your own images, copy its AIR from the epoch message and run "
            "`/train flux1 continue_from:<AIR>`.",
            title="Not your run",
        )


class EpochNotReady(UserFacingError):
    def __init__(self, number: int) -> None:
        super().__init__(
            f"Epoch {number} of this run is not available to continue from (yet). Try again in a moment.",
            title="Epoch not available",
        )


class DatasetGone(UserFacingError):
    def __init__(self, air: str, retention_days: int) -> None:
        super().__init__(
            f"The images of this run are no longer stored (datasets are kept {retention_days} days), so I "
            f"can't reuse them. Run `/train flux1 continue_from:{air}` with your zip to continue from this epoch.",
            title="Dataset no longer stored",
        )


def epoch_air(job: Job, number: int) -> str:
    """The AIR of a finished epoch of ``job``, from its last authoritative state."""
    air = dict(job_epoch_airs(job)).get(number)
    if air is None:
        raise EpochNotReady(number)
    return air


async def quote_train_further(training: TrainingService, job: Job, number: int, requester: Requester) -> Quote:
    """A priced draft that continues ``job`` from epoch ``number`` on the same images."""
    if requester.member.user_id != job.user_id:
        raise OnlyTheOwnerTrainsFurther(job.user_id)
    air = epoch_air(job, number)
    path = training.datasets.path_for(job.dataset_digest)
    if path is None:
        raise DatasetGone(air, training.settings.dataset_retention_days)
    trigger_word = job.params.get("trigger_word")
    dataset = await asyncio.to_thread(
        check_zip,
        path,
        training.settings,
        trigger_word=trigger_word if isinstance(trigger_word, str) else None,
        store=training.datasets,
    )
    if not dataset.accepted:  # it was accepted once; a changed rule could refuse it now
        raise DatasetGone(air, training.settings.dataset_retention_days)
    options = TrainingOptions.from_user(**{**job.params, "continue_from": air})
    name = f"{job.name} from epoch {number}"[:NAME_LIMIT]
    return await training.quote(requester, options, dataset, name=name)
