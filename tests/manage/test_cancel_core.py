"""Cancelling through the core, in the states a run can be in when the click arrives."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.app import TrainerBot
from bot.jobs.cancel import CannotCancel
from bot.jobs.explain import LostReason
from storage.models import JobStatus, TokenSource
from tests.manage.helpers import dataset, quote, requester, simulator, start_run
from tests.stage import Stage, StageMember


async def test_cancel_in_every_state(
    stage: Stage, bot_on_stage: TrainerBot, alice: StageMember, tmp_path: Path
) -> None:
    bot = bot_on_stage
    sim = simulator(bot)
    sim.speed = 0
    cancel = bot.services.canceller.cancel
    data = await dataset(bot, tmp_path)

    # A draft is discarded: nothing reached Civitai.
    draft = (await quote(bot, stage, alice, data)).job
    result = await cancel(draft, actor_id=alice.id)
    assert not result.submitted and result.job.status is JobStatus.DISCARDED

    # Training had started: Civitai keeps the Buzz (the simulator refunds only unstarted runs).
    training = await start_run(bot, stage, alice, data)
    while sim._records[training.workflow_id or ""].status != "processing":
        await sim.advance(20)
    result = await cancel(training, actor_id=alice.id)
    assert result.cancelled and result.settlement is not None and result.settlement.credited == 0
    assert await bot.services.store.ledger.spent_for_job(training.id) == training.price_charged

    # It finished before the cancel arrived: recorded as it ended, not as cancelled.
    finished = await start_run(bot, stage, alice, data)
    for _ in range(10):
        await sim.advance(200)
    result = await cancel(finished, actor_id=alice.id)
    assert not result.cancelled and result.job.status is JobStatus.SUCCEEDED and result.job.progress == 1.0
    with pytest.raises(CannotCancel, match="already ended"):
        await cancel(result.job, actor_id=alice.id)

    # Being submitted: come back in a moment.
    submitting = (await quote(bot, stage, alice, data)).job
    await bot.services.store.jobs.claim_for_submit(submitting.id)
    with pytest.raises(CannotCancel, match="being submitted"):
        await cancel(replace(submitting, status=JobStatus.SUBMITTING), actor_id=alice.id)
    await bot.services.store.jobs.release_claim(submitting.id)
    assert (await bot.services.training.confirm(submitting.id, requester(stage, alice))).workflow_id

    # A run the bot can no longer follow (here a real run, while the bot runs its simulator) cannot
    # be stopped at Civitai: it is closed as lost, saying why, and no longer counts as running.
    live = await bot.services.store.jobs.get(submitting.id)
    assert live is not None and live.status.active
    result = await cancel(replace(live, token_source=TokenSource.USER, simulated=False), actor_id=alice.id)
    assert result.closed and not result.cancelled and result.lost is not None
    assert result.lost_reason is LostReason.REAL_IN_SIMULATED_MODE and result.job.status is JobStatus.LOST
    assert "may still be running" in result.lost.detail
    with pytest.raises(CannotCancel, match="already ended"):
        await cancel(result.job, actor_id=alice.id)
