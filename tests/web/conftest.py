"""A real WebServer on 127.0.0.1:0 with an in-memory HookSink, and an aiohttp client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.hooks import hash_hook_secret, new_hook_secret
from bot.metrics import BotMetrics
from bot.web.protocols import DeliveryOutcome
from bot.web.server import WebServer
from bot.web.sinks import DirectoryDatasetFiles

PUBLIC_URL = "https://bot.example.com"


@dataclass
class MemorySink:
    """HookSink over dicts; ``fail_lookup``/``fail_record`` stand for a store that is down."""

    hashes: dict[str, str] = field(default_factory=dict)
    deliveries: list[tuple[str, str, DeliveryOutcome]] = field(default_factory=list)
    callbacks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_lookup: bool = False
    fail_record: bool = False
    callback_error: Exception | None = None
    release: asyncio.Event | None = None  # when set, on_callback waits for it
    called: asyncio.Event = field(default_factory=asyncio.Event)

    def add_job(self, job_id: str) -> str:
        secret = new_hook_secret()
        self.hashes[job_id] = hash_hook_secret(secret)
        return secret

    async def hook_secret_hash(self, job_id: str) -> str | None:
        if self.fail_lookup:
            raise RuntimeError("database is locked")
        return self.hashes.get(job_id)

    async def record_delivery(self, job_id: str, body_digest: str, outcome: DeliveryOutcome) -> bool:
        if self.fail_record:
            raise RuntimeError("disk I/O error")
        if job_id not in self.hashes:
            return False  # deleted since its hash was read
        self.deliveries.append((job_id, body_digest, outcome))
        return True

    async def on_callback(self, job_id: str, payload: dict[str, Any]) -> None:
        if self.release is not None:
            await self.release.wait()
        self.callbacks.append((job_id, payload))
        self.called.set()
        if self.callback_error is not None:
            raise self.callback_error


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "http_host": "127.0.0.1",
        "http_port": 0,
        "data_dir": tmp_path,
        "secret_key": SecretStr("test-secret-key-0123456789abcdef"),
        "public_url": PUBLIC_URL,
        "discord_token": None,
        "civitai_token": None,
    }
    return Settings(**(values | overrides))


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def metrics() -> BotMetrics:
    return BotMetrics()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def server(settings: Settings, sink: MemorySink, metrics: BotMetrics) -> AsyncIterator[WebServer]:
    web = WebServer(
        settings, hooks=sink, datasets=DirectoryDatasetFiles(settings.data_dir / "datasets"), metrics=metrics
    )
    await web.start()
    try:
        yield web
    finally:
        await web.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session
