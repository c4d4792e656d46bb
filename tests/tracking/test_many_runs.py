"""Following many runs by polling: long-polls are capped below the client's connection pool, so
refreshes always find a connection and the pool never queues hundreds of waiting requests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.civitai.client import OrchestratorSession
from bot.jobs import tracker as tracker_module
from bot.jobs.tracker import PollSchedule
from bot.services import Services
from tests.tracking.helpers import eventually, submit
from tests.tracking.test_tracker_core import CHANNEL, GUILD, RecordingSink, services, started

__all__ = ["services"]  # the fixture, shared with the tracker core tests


async def test_long_polls_are_capped_and_the_other_pollers_sleep(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracker_module, "LONG_POLLS_AT_ONCE", 2, raising=False)
    waiting, most = 0, 0
    original = OrchestratorSession.get

    async def counted(self: OrchestratorSession, workflow_id: str, **kwargs: Any) -> Any:
        nonlocal waiting, most
        if not kwargs.get("wait"):
            return await original(self, workflow_id, **kwargs)
        waiting += 1
        most = max(most, waiting)
        try:
            return await original(self, workflow_id, **kwargs)
        finally:
            waiting -= 1

    monkeypatch.setattr(OrchestratorSession, "get", counted)
    tracker = await started(services, RecordingSink())
    tracker.schedule = PollSchedule(delays=(3.0,), interval=3.0)  # long-polls of 3 s (time is stopped)
    jobs = [
        await submit(services, tmp_path, guild_id=GUILD, user_id=100 + n, channel_id=CHANNEL, name=f"run{n}")
        for n in range(5)
    ]
    for job in jobs:
        await services.store.events.mark_handled(job.id, "thread:opened")  # what open_job_thread does
        tracker.follow(job.id)
    await eventually(lambda: tracker.refreshes >= len(jobs), "every job's first refresh")
    await asyncio.sleep(0.5)  # every poller is now waiting: two in long-polls, three asleep
    assert most == 2
