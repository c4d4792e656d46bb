"""/metrics counts orchestrator calls and failures as the core works (simulated mode, real sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.civitai import errors as e
from bot.civitai.client import OrchestratorClient
from bot.civitai.training import TrainingOptions
from bot.config import CivitaiMode, Settings
from bot.services import Services
from tests.jobs.test_submission import ALICE, dataset
from tests.web.promtext import Family, parse, sample


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        civitai_mode=CivitaiMode.SIMULATE,
        http_port=0,
        http_host="127.0.0.1",
        simulator_speed=50_000,
    )
    services = await Services.start(settings)
    yield services
    await services.close()


async def scrape(services: Services) -> dict[str, Family]:
    assert services.web is not None
    async with aiohttp.ClientSession() as http, http.get(services.web.base_url + "/metrics") as response:
        assert response.status == 200
        return parse(await response.text())


def calls(families: dict[str, Family], operation: str) -> float:
    try:
        return sample(families, "lorabot_orchestrator_calls_total", operation=operation)
    except (KeyError, AssertionError):
        return 0.0


async def test_a_quote_and_a_submit_are_counted_by_operation(services: Services, tmp_path: Path) -> None:
    before = await scrape(services)
    assert calls(before, "submit") == 0

    result = await dataset(services, tmp_path, count=3)
    quote = await services.training.quote(ALICE, TrainingOptions.from_user(steps=1000, epochs=2), result, name="d")
    await services.training.confirm(quote.job.id, ALICE)

    after = await scrape(services)
    assert calls(after, "whatif") == 1
    assert calls(after, "submit") == 1
    assert calls(after, "upload_blob") == result.image_count == 3


async def test_failures_are_counted_by_kind(services: Services) -> None:
    sim = services.orchestrator.simulator
    assert sim is not None
    session = services.orchestrator.client.session("any-token")
    sim.faults.fail_next(1, 401, route="list")
    with pytest.raises(e.Unauthorized):
        await session.check_token()
    with pytest.raises(e.NotFound):
        await session.get("no-such-workflow")

    families = await scrape(services)
    assert calls(families, "list") == 1 and calls(families, "get") == 1
    assert sample(families, "lorabot_orchestrator_errors_total", kind="unauthorized") == 1
    assert sample(families, "lorabot_orchestrator_errors_total", kind="not_found") == 1


async def test_operations_are_named_from_the_request() -> None:
    async with OrchestratorClient("https://orch.example/base") as client:
        def op(method: str, url: str, **params: str) -> str:
            return client.operation(client.build_request(method, url, params=params))

        assert op("POST", "/v2/consumer/workflows", whatif="true") == "whatif"
        assert op("POST", "/v2/consumer/workflows", whatif="false") == "submit"
        assert op("GET", "/v2/consumer/workflows") == "list"
        assert op("GET", "/v2/consumer/workflows/wf1") == "get"
        assert op("PUT", "/v2/consumer/workflows/wf1") == "cancel"
        assert op("POST", "/v2/consumer/blobs") == "upload_blob"
        assert op("POST", "/v2/consumer/blobs/b1/refresh") == "refresh_blob"
        assert op("GET", "https://storage.example/signed/epoch.safetensors") == "download"
