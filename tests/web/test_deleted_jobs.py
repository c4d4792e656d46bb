"""A callback for a job deleted after its secret hash was cached: an unknown job, not a 503."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.config import Settings
from bot.hooks import hash_hook_secret, hook_url, new_hook_secret
from bot.metrics import BotMetrics
from bot.web.server import WebServer
from bot.web.sinks import ComposedHookSink, DirectoryDatasetFiles, LoggingCallbackTarget, StoreHookJobs
from storage import Store
from tests.storage.conftest import USER, new_job

PAYLOAD = {"$type": "workflow", "workflowId": "wf-1", "status": "processing"}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "bot.sqlite3")
    yield opened
    await opened.close()


async def test_a_job_deleted_within_the_cache_time_is_404_without_a_traceback(
    settings: Settings, store: Store, metrics: BotMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    secret = new_hook_secret()
    job = await store.jobs.create(new_job(hook_secret_hash=hash_hook_secret(secret)))
    other_secret = new_hook_secret()
    other = await store.jobs.create(new_job(user_id=USER + 1, hook_secret_hash=hash_hook_secret(other_secret)))
    jobs = StoreHookJobs(store)
    web = WebServer(
        settings,
        hooks=ComposedHookSink(jobs, LoggingCallbackTarget()),
        datasets=DirectoryDatasetFiles(settings.data_dir / "datasets"),
        metrics=metrics,
    )
    await web.start()
    try:
        async with aiohttp.ClientSession() as client:
            async with client.post(hook_url(web.base_url, job.id, secret), json=PAYLOAD) as response:
                assert response.status == 200  # the hash is now cached
            await store.forget_user(USER)  # the member asked to be forgotten: the job row is gone
            caplog.clear()
            async with client.post(hook_url(web.base_url, job.id, secret), json=PAYLOAD) as response:
                assert response.status == 404
            async with client.post(hook_url(web.base_url, other.id, other_secret), json=PAYLOAD) as response:
                assert response.status == 200  # others are unaffected
            async with client.post(hook_url(web.base_url, job.id, secret), json=PAYLOAD) as response:
                assert response.status == 404  # forgotten by the cache too: answered from the store
    finally:
        await web.stop()
        await jobs.batcher.flush()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert metrics.callbacks_rejected.value(reason="unknown_hook") == 2
    assert [d.job_id for d in await store.deliveries.for_job(other.id)] == [other.id]
    assert await store.deliveries.for_job(job.id) == []
