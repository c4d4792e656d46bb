"""Card edits: at most one per interval per job, the latest state always shown, the final at once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

from bot.jobs.card_throttle import CardThrottle
from storage.models import Job, JobStatus, Payer, TokenSource, Variant

NOW = datetime(2025, 1, 1, tzinfo=UTC)
JOB = Job(
    id="job1", guild_id=1, channel_id=2, user_id=3, name="dog", variant=Variant.DEV, params={}, dataset_digest="d",
    image_count=1, payer=Payer.OPERATOR, token_source=TokenSource.NONE, external_id="ext", hook_secret_hash=None,
    workflow_id="wf", status=JobStatus.PROCESSING, price_estimate=None, price_quoted=None, price_charged=None,
    final_cost=None, last_state=None, last_state_at=None, progress=0.0, card_channel_id=1, card_message_id=2,
    thread_id=None, simulated=True, created_at=NOW, updated_at=NOW, submitted_at=NOW, finished_at=None,
)  # fmt: skip


async def test_a_burst_of_changes_gives_one_edit_now_and_one_with_the_latest_state_later() -> None:
    shown: list[tuple[float, float | None]] = []
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def show(job: Job, epochs_done: int) -> None:
        shown.append((loop.time() - start, job.progress))

    throttle = CardThrottle(0.3, show)
    for step in range(1, 6):
        throttle.request(replace(JOB, progress=step / 10), step)
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    assert [progress for _, progress in shown] == [0.1, 0.5]
    assert shown[1][0] - shown[0][0] >= 0.29
    await throttle.close()


async def test_the_final_state_is_shown_at_once_and_replaces_a_waiting_edit() -> None:
    shown: list[JobStatus] = []

    async def show(job: Job, epochs_done: int) -> None:
        shown.append(job.status)

    throttle = CardThrottle(10, show)
    throttle.request(JOB, 1)
    await asyncio.sleep(0.01)
    throttle.request(replace(JOB, progress=0.9), 2)  # would wait 10 s
    await throttle.final(replace(JOB, status=JobStatus.SUCCEEDED), 3)
    await asyncio.sleep(0.05)
    assert shown == [JobStatus.PROCESSING, JobStatus.SUCCEEDED]
    await throttle.close()
