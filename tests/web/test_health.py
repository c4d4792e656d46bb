"""/healthz, the bound port, and the server's place in Services."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest

from bot.hooks import hash_hook_secret, hook_url, new_hook_secret
from bot.metrics import BotMetrics
from bot.services import Services
from bot.web.server import WebServer
from bot.web.sinks import DirectoryDatasetFiles
from bot.web.wiring import WebServerBindError
from storage.models import NewJob, Payer, TokenSource, Variant
from tests.web.conftest import MemorySink, make_settings
from tests.web.promtext import parse, sample


async def test_healthz_ok(server: WebServer, client: aiohttp.ClientSession) -> None:
    assert server.port > 0 and server.base_url == f"http://127.0.0.1:{server.port}"
    async with client.get(f"{server.base_url}/healthz") as response:
        assert response.status == 200
        body = await response.json()
    assert body["status"] == "ok" and isinstance(body["uptime_seconds"], int)


@pytest.mark.parametrize("readiness", ["false", "raises"])
async def test_healthz_reports_not_ready(tmp_path: Path, client: aiohttp.ClientSession, readiness: str) -> None:
    async def check() -> bool:
        if readiness == "raises":
            raise RuntimeError("database is closed")
        return False

    settings = make_settings(tmp_path)
    web = WebServer(
        settings, hooks=MemorySink(), datasets=DirectoryDatasetFiles(tmp_path), metrics=BotMetrics(), readiness=check
    )
    await web.start()
    try:
        async with client.get(f"{web.base_url}/healthz") as response:
            assert response.status == 503
            assert (await response.json())["status"] == "unavailable"
    finally:
        await web.stop()


async def test_services_start_and_stop_the_server(tmp_path: Path, client: aiohttp.ClientSession) -> None:
    services = await Services.start(make_settings(tmp_path))
    assert services.web is not None
    base = services.web.base_url
    try:
        async with client.get(f"{base}/healthz") as response:
            assert response.status == 200
        # No tracker yet: every callback is for an unknown job.
        async with client.post(f"{base}/hooks/civitai/1/{'s' * 43}", json={}) as response:
            assert response.status == 404
    finally:
        await services.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with client.get(f"{base}/healthz"):
            pass


async def test_services_route_callbacks_to_store_jobs(tmp_path: Path, client: aiohttp.ClientSession) -> None:
    services = await Services.start(make_settings(tmp_path))
    assert services.web is not None
    try:
        secret = new_hook_secret()
        job = await services.store.jobs.create(
            NewJob(
                guild_id=1,
                channel_id=2,
                user_id=3,
                name="style",
                variant=Variant.DEV,
                params={"steps": 2000},
                dataset_digest="ab" * 32,
                image_count=12,
                payer=Payer.OPERATOR,
                token_source=TokenSource.NONE,
                hook_secret_hash=hash_hook_secret(secret),
            )
        )
        async with client.post(hook_url(services.web.base_url, job.id, secret), json={"status": "processing"}) as r:
            assert r.status == 200
        async with client.post(hook_url(services.web.base_url, job.id, new_hook_secret()), json={}) as r:
            assert r.status == 404
        deliveries = await services.store.deliveries.for_job(job.id)
        assert [d.outcome for d in deliveries] == ["accepted"]
        async with client.get(f"{services.web.base_url}/metrics") as response:
            families = parse(await response.text())
        assert sample(families, "lorabot_jobs", status="draft") == 1
        assert sample(families, "lorabot_jobs", status="succeeded") == 0
    finally:
        await services.close()


async def test_busy_port_is_a_warning_without_public_url_and_fatal_with_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        services = await Services.start(make_settings(tmp_path / "a", http_port=port, public_url=None))
        try:
            assert services.web is None
        finally:
            await services.close()
        with pytest.raises(WebServerBindError, match="HTTP_PORT"):
            await Services.start(make_settings(tmp_path / "b", http_port=port))
