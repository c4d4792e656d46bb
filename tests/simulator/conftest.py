"""Fixtures for simulator tests: the simulator on a loopback port, a local site serving dataset
zips and receiving callbacks, an httpx client, and helpers that check bodies against the spec."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from PIL import Image

from bot.civitai.simulator import Simulator
from tests.civitai_spec import validate_request, validate_response

TOKEN = "sim-test-token"
DATA_HOST = "datasets.test"  # routed to the local site: no port in sourceUrl, as the AIR pattern requires
FAST = 50_000.0  # a default 2000-step run lasts ~0.07 s


@dataclass
class LocalSite:
    """Serves ``files`` at ``/files/{name}``; records POSTs to ``/hook/{name}``, failing the first
    ``hook_failures`` of them with 500."""

    files: dict[str, bytes] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    hook_attempts: int = 0
    hook_failures: int = 0
    base_url: str = ""

    async def serve_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.fetched.append(name)
        return web.Response(body=self.files[name]) if name in self.files else web.Response(status=404)

    async def receive_hook(self, request: web.Request) -> web.Response:
        self.hook_attempts += 1
        if self.hook_attempts <= self.hook_failures:
            return web.Response(status=500)
        self.hooks.append(await request.json())
        return web.Response(text="ok")

    def hook_url(self, name: str = "job") -> str:
        return f"{self.base_url}/hook/{name}"


def make_image(index: int, size: tuple[int, int] = (160, 120)) -> bytes:
    image = Image.new("RGB", size, ((index * 67) % 256, 90, (255 - index * 31) % 256))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def make_zip(images: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(images):
            archive.writestr(f"img_{i:02d}.png", make_image(i))
            archive.writestr(f"img_{i:02d}.txt", "a photo of sks")
        archive.writestr("__MACOSX/._img_00.png", b"junk")
    return out.getvalue()


def training_body(
    *,
    variant: str = "dev",
    data: dict[str, Any] | None = None,
    callbacks: list[dict[str, Any]] | None = None,
    external_id: str | None = None,
    tags: list[str] | None = None,
    **input_fields: Any,
) -> dict[str, Any]:
    """A training submit built by hand from civitai-api.md (no client code involved)."""
    step_input: dict[str, Any] = {
        "engine": "ai-toolkit", "ecosystem": "flux1", "modelVariant": variant,
        "trainingData": data or {"type": "zip", "sourceUrl": f"https://{DATA_HOST}/files/dataset.zip", "count": 4},
        "steps": 2000, "epochs": 10, "samples": {"prompts": ["a photo of sks", "sks on a beach"]},
    }
    step_input.update(input_fields)
    body: dict[str, Any] = {"steps": [{"$type": "training", "priority": "normal", "retries": 2, "input": step_input}]}
    if callbacks is not None:
        body["callbacks"] = callbacks
    if external_id is not None:
        body["externalId"] = external_id
    if tags is not None:
        body["tags"] = tags
    return body


def assert_valid(kind: str, schema: str, body: Any) -> None:
    """Every request sent and workflow received is checked against the published spec."""
    check: Callable[[str, Any], list[str]] = validate_request if kind == "request" else validate_response
    errors = check(schema, body)
    assert errors == [], f"{schema} {kind} does not match the spec: {errors}"


def parse_safetensors(data: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    payload = data[8 + length :]
    for name, tensor in header.items():
        if name != "__metadata__":
            start, end = tensor["data_offsets"]
            count = 1
            for dim in tensor["shape"]:
                count *= dim
            assert tensor["dtype"] == "F32" and end - start == 4 * count and end <= len(payload), name
    return header, payload


class Api:
    """httpx against the simulator, checking bodies with the spec on the way."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def submit(self, body: dict[str, Any], **params: Any) -> httpx.Response:
        assert_valid("request", "WorkflowTemplate", body)
        response = await self.client.post("/v2/consumer/workflows", json=body, params=params)
        if response.status_code in (200, 202):
            assert_valid("response", "Workflow", response.json())
        return response

    async def get(self, workflow_id: str, **params: Any) -> dict[str, Any]:
        response = await self.client.get(f"/v2/consumer/workflows/{workflow_id}", params=params)
        assert response.status_code in (200, 202), response.text
        workflow: dict[str, Any] = response.json()
        assert_valid("response", "Workflow", workflow)
        return workflow

    async def finished(self, workflow_id: str) -> dict[str, Any]:
        workflow = await self.get(workflow_id, wait=20)
        assert workflow["status"] in ("succeeded", "failed", "expired", "canceled"), workflow["status"]
        return workflow

    async def cancel(self, workflow_id: str) -> httpx.Response:
        return await self.client.put(f"/v2/consumer/workflows/{workflow_id}", json={"status": "canceled"})


def epochs_of(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    epochs: list[dict[str, Any]] = workflow["steps"][0]["output"]["epochs"]
    return epochs


def available(workflow: dict[str, Any]) -> list[int]:
    return [e["epochNumber"] for e in epochs_of(workflow) if e["model"]["available"]]


async def eventually(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def site() -> AsyncIterator[LocalSite]:
    local = LocalSite(files={"dataset.zip": make_zip(4)})
    app = web.Application()
    app.router.add_get("/files/{name}", local.serve_file)
    app.router.add_post("/hook/{name}", local.receive_hook)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    local.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield local
    await runner.cleanup()


@pytest.fixture
async def sim(site: LocalSite) -> AsyncIterator[Simulator]:
    simulator = Simulator(speed=FAST, callback_backoff=0.01, callback_timeout=2.0)
    simulator.add_account(TOKEN, 100_000)
    simulator.route_host(DATA_HOST, site.base_url)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def api(sim: Simulator) -> AsyncIterator[Api]:
    assert sim.base_url
    async with httpx.AsyncClient(base_url=sim.base_url, headers={"Authorization": f"Bearer {TOKEN}"},
                                 timeout=30) as client:
        yield Api(client)
