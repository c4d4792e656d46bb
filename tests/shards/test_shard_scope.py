"""A process that runs some of the shards follows only its own servers' jobs (issue 17): the
tracker (refresh, reconcile, a crashed submit's recovery) and retention leave the other shards'
jobs to the process that owns them. Real store (the suite's backend), simulator, recording sink."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.civitai.training import TrainingOptions
from bot.jobs.policy import Member
from bot.jobs.submission import Requester
from bot.jobs.tracker import Outcome
from bot.services import Services
from storage.models import JobStatus
from storage.shards import ShardScope, shard_of
from tests.tracking.helpers import PROMPTS, advance, checked_dataset, submit
from tests.tracking.test_tracker_core import (
    RecordingSink,
    core_settings,
    crashed_submit,
    sim,
    started,
    stopped_time_services,
    until_epoch,
)

# Snowflake-sized server ids, one on each of two shards.
OURS, THEIRS = (1_234_567 << 22) | 77, (1_234_568 << 22) | 77
USER, CHANNEL = 10, 100


def test_servers_fall_on_the_shards_discord_gives_them() -> None:
    assert {shard_of(OURS, 2), shard_of(THEIRS, 2)} == {0, 1}
    assert shard_of(81384788765712384, 4) == (81384788765712384 >> 22) % 4  # discord-facts' formula
    scope = ShardScope(2, frozenset({shard_of(OURS, 2)}))
    assert scope.owns(OURS) and not scope.owns(THEIRS)


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    settings = core_settings(tmp_path, shard_count=2, shard_ids=(shard_of(OURS, 2),))
    async for started_services in stopped_time_services(settings):
        yield started_services


async def _opened(services: Services, tmp_path: Path, guild_id: int, name: str):  # type: ignore[no-untyped-def]
    job = await submit(services, tmp_path, guild_id=guild_id, user_id=USER, channel_id=CHANNEL, name=name)
    await services.store.events.mark_handled(job.id, "thread:opened")
    return job


async def test_a_process_follows_and_reconciles_only_its_own_shards_jobs(services: Services, tmp_path: Path) -> None:
    sink = RecordingSink()
    tracker = await started(services, sink)
    ours = await _opened(services, tmp_path, OURS, "ours")
    theirs = await _opened(services, tmp_path, THEIRS, "theirs")
    await advance(sim(services), until_epoch(2))

    assert [job.id for job in await services.store.jobs.list_unfinished(tracker.shards)] == [ours.id]
    assert await tracker.reconcile() == 1
    before = tracker.refreshes
    assert (await tracker.refresh(theirs.id)).outcome is Outcome.GONE
    assert tracker.refreshes == before  # the workflow was not even read
    assert (await tracker.refresh(ours.id)).outcome is Outcome.RUNNING
    assert [(event.job.id, event.number) for event in sink.epochs] == [(ours.id, 1), (ours.id, 2)]
    stored = await services.store.jobs.get(theirs.id)
    assert stored is not None and stored.status is JobStatus.SUBMITTED  # untouched


async def test_a_crashed_submit_of_another_shard_is_not_taken_over(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = RecordingSink()
    tracker = await started(services, sink)
    job = await crashed_submit(services, tmp_path, monkeypatch, THEIRS)
    services.clock.advance(seconds=61)  # its lease ran out: recoverable, but not by us

    assert await tracker.reconcile() == 0
    assert (await tracker.refresh(job.id)).outcome is Outcome.GONE
    stored = await services.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.SUBMITTING and sink.reopened == []


async def test_retention_discards_only_its_own_shards_stale_drafts(services: Services, tmp_path: Path) -> None:
    dataset = await checked_dataset(services, tmp_path)
    options = TrainingOptions.from_user(steps=200, epochs=2, trigger_word="sks", sample_prompts=list(PROMPTS))
    drafts = {}
    for guild in (OURS, THEIRS):
        requester = Requester(guild, Member(user_id=USER, role_ids=frozenset(), channel_id=CHANNEL))
        drafts[guild] = (await services.training.quote(requester, options, dataset, name="draft")).job.id
    services.clock.advance(minutes=16)

    report = await services.retention.run_once()

    assert report.drafts == 1
    ours, theirs = (await services.store.jobs.get(drafts[OURS])), (await services.store.jobs.get(drafts[THEIRS]))
    assert ours is not None and ours.status is JobStatus.DISCARDED
    assert theirs is not None and theirs.status is JobStatus.DRAFT
