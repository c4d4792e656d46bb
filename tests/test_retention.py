"""Retention: what expired goes, what is still promised stays; the task runs with Services."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import Clock
from bot.config import CivitaiMode, Settings
from bot.dataset.store import DatasetStore
from bot.metrics import BotMetrics
from bot.retention import Retention, RetentionReport
from bot.services import Services
from storage import Store
from storage.models import JobStatus
from tests.storage.conftest import new_job

DAY = 86400.0


def settings_for(data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        civitai_mode=CivitaiMode.SIMULATE,
        http_host="127.0.0.1",
        http_port=0,
    )


def aged(path: Path, seconds: float) -> Path:
    """Set ``path``'s modification time ``seconds`` in the past."""
    moment = time.time() - seconds
    os.utime(path, (moment, moment))
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(database_url: str, clock: Clock) -> AsyncIterator[Store]:
    opened = await Store.open(database_url, clock=clock.now)
    yield opened
    await opened.close()


def stored_dataset(datasets: DatasetStore, tmp_path: Path, content: bytes) -> Path:
    source = tmp_path / "incoming.zip"
    source.write_bytes(content)
    path = datasets.path_for(datasets.put(source))
    assert path is not None
    return path


async def test_each_kind_is_removed_once_past_its_retention(tmp_path: Path, store: Store, clock: Clock) -> None:
    settings = settings_for(tmp_path / "data")
    datasets = DatasetStore.from_settings(settings)
    metrics = BotMetrics()
    retention = Retention(settings, store, datasets, clock, metrics=metrics)

    # Stored first, aged after: storing a dataset purges expired ones on the way.
    stale_dataset = stored_dataset(datasets, tmp_path, b"old zip")
    fresh_dataset = stored_dataset(datasets, tmp_path, b"new zip")
    aged(stale_dataset, 31 * DAY)
    aged(fresh_dataset, 29 * DAY)
    draft = await store.jobs.create(new_job())
    submitted = await store.jobs.create(new_job())
    assert await store.jobs.claim_for_submit(submitted.id)
    await store.deliveries.record(submitted.id, "digest", "accepted")
    temp = settings.data_dir / "tmp"
    (temp / "intake-dead").mkdir(parents=True)
    (temp / "intake-dead" / "part.zip").write_bytes(b"x")
    aged(temp / "intake-dead", 2 * DAY)
    (temp / "stray.bin").write_bytes(b"y")
    aged(temp / "stray.bin", 2 * DAY)
    (temp / "intake-live").mkdir()

    # Nothing is old enough yet except the dataset and the temp files.
    first = await retention.run_once()
    assert first == RetentionReport(datasets=1, deliveries=0, drafts=0, temp_files=2)
    assert not stale_dataset.exists() and fresh_dataset.exists()
    assert sorted(p.name for p in temp.iterdir()) == ["intake-live"]

    clock.advance(minutes=16)  # the confirmation has expired: the draft is discarded, nothing else
    assert await retention.run_once() == RetentionReport(drafts=1)
    assert (await store.jobs.get(draft.id)).status is JobStatus.DISCARDED  # type: ignore[union-attr]
    assert (await store.jobs.get(submitted.id)).status is JobStatus.SUBMITTING  # type: ignore[union-attr]
    assert len(await store.deliveries.for_job(submitted.id)) == 1

    clock.advance(days=settings.callback_retention_days)
    # Deliveries expire; the clock also moves the files' expiry: the 29-day-old dataset is now
    # past 30 days, and the intake folder that was live is now a day old.
    assert await retention.run_once() == RetentionReport(deliveries=1, datasets=1, temp_files=1)
    assert await store.deliveries.for_job(submitted.id) == []
    assert not fresh_dataset.exists() and list(temp.iterdir()) == []

    assert metrics.retention_removed.value(kind="drafts") == 1
    assert metrics.retention_removed.value(kind="temp_files") == 3
    assert await retention.run_once() == RetentionReport()  # idempotent


async def test_a_failing_kind_does_not_stop_the_others(tmp_path: Path, store: Store, clock: Clock) -> None:
    settings = settings_for(tmp_path / "data")
    retention = Retention(settings, store, DatasetStore.from_settings(settings), clock)
    (settings.data_dir / "tmp").parent.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "tmp").write_bytes(b"a file where a folder should be")
    await store.jobs.create(new_job())
    clock.advance(minutes=16)
    report = await retention.run_once()
    assert report.drafts == 1 and report.temp_files == 0


async def test_services_run_a_pass_at_start_and_stop_it_promptly(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data")
    leftover = settings.data_dir / "tmp" / "intake-crashed"
    leftover.mkdir(parents=True)
    aged(leftover, 2 * DAY)

    services = await Services.start(settings)
    try:
        for _ in range(100):
            if not leftover.exists():
                break
            await asyncio.sleep(0.02)
        assert not leftover.exists()
    finally:
        started = time.monotonic()
        await services.close()
    assert time.monotonic() - started < 3
    assert services.retention._task is None
