"""The client end to end against the in-process orchestrator simulator, over real sockets.

Every request body the client sends is checked against the published OpenAPI document (when
``../shared/specs`` is present) by an httpx event hook; callbacks go to a local aiohttp receiver.
Simulated time is moved by hand (``speed=0``) where the order of events matters.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from PIL import Image

from bot.civitai import errors as e
from bot.civitai import models as m
from bot.civitai.client import OrchestratorClient, OrchestratorSession, RetryPolicy
from bot.civitai.errors import TrainingInputError
from bot.civitai.pricing import estimate_price
from bot.civitai.simulator import Simulator
from bot.civitai.training import TrainingOptions, build_training_input, training_workflow
from tests.civitai_spec import SPEC_NAME, validate_request
from tests.shared_specs import require_spec, spec_path

TOKEN = "e2e-token-0123456789"
DATA_HOST = "datasets.test"  # routed to the local site: a sourceUrl without a port, as the AIR pattern wants
PROMPTS = "a photo of sks|sks on a beach"
IMAGES = 4
FAST_RETRY = RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.05)
WORKFLOW_PATH = "/v2/consumer/workflows"


@dataclass
class Site:
    """Serves the dataset zip and records callback payloads in arrival order."""

    zip_bytes: bytes
    base_url: str = ""
    events: list[m.CallbackEvent] = field(default_factory=list)

    async def serve_zip(self, request: web.Request) -> web.Response:
        return web.Response(body=self.zip_bytes, content_type="application/zip")

    async def hook(self, request: web.Request) -> web.Response:
        self.events.append(m.CallbackEvent.model_validate(await request.json()))
        return web.Response(text="ok")

    def hook_url(self, job: str) -> str:
        return f"{self.base_url}/hooks/civitai/{job}/s3cr3t"

    def workflow_statuses(self) -> list[str | None]:
        return [event.status for event in self.events if event.scope == "workflow"]


@dataclass
class SentBodies:
    """JSON bodies the client sent to the workflow endpoints, with their spec problems."""

    submits: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    async def hook(self, request: httpx.Request) -> None:
        if not request.url.path.startswith(WORKFLOW_PATH) or not request.content:
            return
        body = json.loads(request.content)
        schema = "WorkflowTemplate" if request.method == "POST" else "UpdateWorkflowRequest"
        if schema == "WorkflowTemplate":
            self.submits.append(body)
        if spec_path(SPEC_NAME) is not None:
            self.problems += [f"{schema}: {p}" for p in validate_request(schema, body)]


def make_zip(images: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(images):
            image = io.BytesIO()
            Image.new("RGB", (96, 64), (i * 50 % 256, 120, 200)).save(image, "PNG")
            archive.writestr(f"img_{i}.png", image.getvalue())
            archive.writestr(f"img_{i}.txt", "a photo of sks")
    return out.getvalue()


def parse_safetensors(data: bytes) -> dict[str, Any]:
    """The header of a safetensors file, after checking every tensor lies within the payload."""
    (length,) = struct.unpack("<Q", data[:8])
    header: dict[str, Any] = json.loads(data[8 : 8 + length])
    payload = len(data) - 8 - length
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    assert tensors, "a LoRA file holds tensors"
    for name, tensor in tensors.items():
        start, end = tensor["data_offsets"]
        assert 0 <= start <= end <= payload, name
    return header


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    local = Site(make_zip(IMAGES))
    app = web.Application()
    app.router.add_get("/files/dataset.zip", local.serve_zip)
    app.router.add_post("/hooks/civitai/{job}/{secret}", local.hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    local.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield local
    await runner.cleanup()


@pytest.fixture
async def sim(site: Site) -> AsyncIterator[Simulator]:
    simulator = Simulator(speed=0, callback_backoff=0.01, callback_timeout=2.0)
    simulator.add_account(TOKEN, 100_000)
    simulator.route_host(DATA_HOST, site.base_url)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
def sent() -> SentBodies:
    return SentBodies()


@pytest.fixture
async def client(sim: Simulator, sent: SentBodies) -> AsyncIterator[OrchestratorClient]:
    assert sim.base_url
    async with OrchestratorClient(
        sim.base_url, timeout=30, retry=FAST_RETRY, event_hooks={"request": [sent.hook]}
    ) as orchestrator:
        yield orchestrator
    assert sent.problems == [], "every body the client sent must match the published spec"


@pytest.fixture
def session(client: OrchestratorClient) -> OrchestratorSession:
    return client.session(TOKEN)


def zip_data() -> m.ZipTrainingData:
    return m.ZipTrainingData(source_url=f"https://{DATA_HOST}/files/dataset.zip", count=IMAGES)


def template(job: str, site: Site | None = None, **options: Any) -> m.WorkflowTemplate:
    return training_workflow(
        build_training_input(zip_data(), **options),
        external_id=job,
        callback_url=site.hook_url(job) if site else None,
        tags=["lora-trainer-bot"],
    )


async def advance_to_processing(sim: Simulator) -> None:
    timings = sim.timings
    for seconds in (timings.unassigned, timings.preparing, timings.scheduled):
        await sim.advance(seconds)


def seconds_per_epoch(sim: Simulator, options: TrainingOptions) -> float:
    return sim.timings.training(options.steps, options.epochs, len(options.sample_prompts)) / options.epochs


@pytest.mark.parametrize("variant", ["dev", "schnell"])
async def test_a_default_run_end_to_end(variant: str, sim: Simulator, site: Site, session: OrchestratorSession) -> None:
    options = TrainingOptions.from_user(variant=variant, sample_prompts=PROMPTS)
    submitted = await session.submit(template(f"run-{variant}", site, variant=variant, sample_prompts=PROMPTS))
    assert submitted.id and submitted.status == "unassigned"
    await advance_to_processing(sim)
    assert (await session.get(submitted.id)).status == "processing"

    seen: list[int] = []
    for expected in range(1, options.epochs + 1):
        await sim.advance(seconds_per_epoch(sim, options))
        workflow = await session.get(submitted.id)
        seen = [epoch.epoch_number for epoch in workflow.available_epochs()]
        assert seen == list(range(1, expected + 1)), "epochs become available one by one, in order"
    assert workflow.status == "succeeded" and workflow.terminal

    output = workflow.training_output()
    assert output is not None and output.moderation_is("approved")
    for epoch in workflow.available_epochs():
        assert epoch.model is not None and epoch.model.url
        header = parse_safetensors(await session.download(epoch.model.url))
        assert header["__metadata__"]["ss_base_model_version"] == f"flux1_{variant}"
        assert epoch.air == f"urn:air:flux1:lora:orchestrator:blob@{epoch.model.id}"
        assert len(epoch.samples) == 2
        for sample in epoch.samples:
            assert sample.url
            with Image.open(io.BytesIO(await session.download(sample.url))) as image:
                image.verify()

    statuses = site.workflow_statuses()
    assert statuses == ["unassigned", "preparing", "scheduled", "processing", "succeeded"], statuses
    progress = [event.progress for event in site.events if event.scope == "job" and event.progress is not None]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert [t["type"] for t in sim.charges(TOKEN)] == ["debit"]


async def test_cancel_mid_run_stops_before_the_next_epoch(
    sim: Simulator, site: Site, session: OrchestratorSession
) -> None:
    options = TrainingOptions.from_user(sample_prompts=PROMPTS)
    workflow = await session.submit(template("cancel-me", site, sample_prompts=PROMPTS))
    assert workflow.id
    await advance_to_processing(sim)
    await sim.advance(seconds_per_epoch(sim, options) * 3)
    assert len((await session.get(workflow.id)).available_epochs()) == 3

    answer = await session.cancel(workflow.id)
    assert answer is None or answer.status == "canceled"
    await sim.advance(seconds_per_epoch(sim, options) * 10)
    after = await session.get(workflow.id)
    assert after.status == "canceled"
    assert [epoch.epoch_number for epoch in after.available_epochs()] == [1, 2, 3], "no epoch after the cancel"
    assert site.workflow_statuses()[-1] == "canceled"
    again = await session.cancel(workflow.id)  # a repeated cancel (a double click) is harmless
    assert again is None or again.status == "canceled"


async def test_a_5xx_on_submit_is_retried_with_the_same_external_id_and_charged_once(
    sim: Simulator, session: OrchestratorSession, sent: SentBodies
) -> None:
    sim.faults.fail_next(2, 503, route="submit")
    workflow = await session.submit(template("retry-me"))
    assert len(sent.submits) == 3
    assert {body["externalId"] for body in sent.submits} == {"retry-me"}
    assert [r.id for r in sim.records()] == [workflow.id]
    assert [t["type"] for t in sim.charges(TOKEN)] == ["debit"]


async def test_an_answer_lost_after_the_orchestrator_acted_is_not_charged_twice(
    sim: Simulator, sent: SentBodies
) -> None:
    # The first submit is handled after the client gave up on it; the retry must not make a second run.
    assert sim.base_url
    sim.faults.slow_next(1, delay=0.6, route="submit")
    async with OrchestratorClient(
        sim.base_url, timeout=0.3, retry=FAST_RETRY, event_hooks={"request": [sent.hook]}
    ) as impatient:
        first = await impatient.session(TOKEN).submit(template("lost-answer"))
        await asyncio.sleep(0.5)  # let the slow first request finish on the server
        again = await impatient.session(TOKEN).submit(template("lost-answer"))
    assert len(sent.submits) >= 3, "the first submit timed out and was retried"
    assert first.id == again.id
    assert len(sim.records()) == 1
    assert [t["type"] for t in sim.charges(TOKEN)] == ["debit"]


# (option as the member types it, out-of-range value, API field to corrupt)
RAW_OUT_OF_RANGE = [
    ("steps", 20000, "steps"),
    ("epochs", 21, "epochs"),
    ("lr", 2.0, "lr"),
    ("network_dim", 300, "network_dim"),
    ("network_alpha", 0, "network_alpha"),
    ("noise_offset", 1.5, "noise_offset"),
    ("keep_tokens", 11, "keep_tokens"),
    ("lr_scheduler", "cyclic", "lr_scheduler"),
    ("optimizer", "sgd", "optimizer_type"),
]


async def test_the_orchestrator_refuses_what_local_checks_refuse_with_the_same_fields(
    sim: Simulator, session: OrchestratorSession, sent: SentBodies
) -> None:
    for option, value, attribute in RAW_OUT_OF_RANGE:
        with pytest.raises(TrainingInputError) as local:
            TrainingOptions.from_user(**{option: value})
        raw = template(f"raw-{option}")
        setattr(raw.steps[0].input, attribute, value)  # bypass local validation: no validate_assignment
        with pytest.raises(e.OrchestratorValidationError) as remote:
            await session.submit(raw)
        assert list(remote.value.field_errors) == list(local.value.field_errors) == [option]
        assert option in remote.value.field_errors[option][0], remote.value.field_errors
        assert f"• {option}:" in remote.value.user_message
    if spec_path(SPEC_NAME) is not None:
        # Every corrupted body but epochs=21, which the schema allows (up to 200; the docs say 20).
        assert len(sent.problems) == len(RAW_OUT_OF_RANGE) - 1, sent.problems
    sent.problems.clear()  # those bodies were wrong on purpose
    assert sim.records() == [] and sim.charges(TOKEN) == []


async def test_blobs_whatif_token_check_and_expired_links(
    sim: Simulator, site: Site, client: OrchestratorClient, session: OrchestratorSession, sent: SentBodies
) -> None:
    with pytest.raises(e.Unauthorized):
        await client.session("not-a-known-token").check_token()
    await session.check_token()

    items = []
    for i in range(3):
        png = io.BytesIO()
        Image.new("RGB", (64, 64), (i * 80, 10, 10)).save(png, "PNG")
        blob = await session.upload_blob(png.getvalue(), filename=f"{i}.png", content_type="image/png")
        items.append(m.BlobTrainingItem(air=blob.air, caption=f"sks photo {i}"))
    data = m.BlobsTrainingData(items=items)
    options = TrainingOptions.from_user(variant="schnell", steps=300, epochs=2, sample_prompts="sks")
    job = training_workflow(options.to_training_input(data), external_id="blobs-run", callback_url=site.hook_url("b"))

    priced = await session.submit(job, whatif=True)
    assert priced.cost is not None and priced.cost.total == estimate_price(300, 2, 1).total
    assert "externalId" not in sent.submits[-1], "a whatif must not reserve the real submit's id"
    workflow = await session.submit(job)
    assert workflow.id
    await advance_to_processing(sim)
    await sim.advance(seconds_per_epoch(sim, options) * 2)
    finished = await session.get(workflow.id)
    assert finished.status == "succeeded" and len(finished.available_epochs()) == 2

    sample = finished.available_epochs()[0].samples[0]
    sim.faults.blob_url_ttl(0.0)
    stale = (await session.refresh_blob(sample.id)).url
    assert stale
    await asyncio.sleep(0.01)
    with pytest.raises(e.DownloadLinkExpired):
        await session.download(stale)
    sim.faults.blob_url_ttl(3600)
    fresh = await session.refresh_blob(sample.id)
    assert fresh.url and fresh.url != stale
    with Image.open(io.BytesIO(await session.download(fresh.url))) as image:
        image.verify()
    page = await session.list_by_tag("lora-trainer-bot", take=5)
    assert page.items == []  # this run carried no tag


def test_request_bodies_are_checked_against_the_published_spec(sent: SentBodies) -> None:
    require_spec(SPEC_NAME)
    body = template("spec-check").to_json()
    assert validate_request("WorkflowTemplate", body) == []
    body["steps"][0]["input"]["resolution"] = 512
    assert validate_request("WorkflowTemplate", body) != [], "the validator can fail"


async def _one_epoch_run(sim: Simulator, session: OrchestratorSession, job: str) -> m.Workflow:
    options = TrainingOptions.from_user(variant="dev", steps=100, epochs=1, sample_prompts="sks")
    submitted = await session.submit(training_workflow(options.to_training_input(zip_data()), external_id=job))
    assert submitted.id
    await advance_to_processing(sim)
    await sim.advance(seconds_per_epoch(sim, options))
    return await session.get(submitted.id)


async def test_blob_downloads_follow_the_documented_redirect_and_sizes_need_no_head(
    sim: Simulator, session: OrchestratorSession
) -> None:
    finished = await _one_epoch_run(sim, session, "redirect")
    epoch = finished.available_epochs()[0]
    assert epoch.model is not None and epoch.model.url
    # GET /v2/consumer/blobs/{id} answers 308 to the signed content URL (the document says so).
    assert sim.base_url
    via_redirect = await session.download(f"{sim.base_url}/v2/consumer/blobs/{epoch.model.id}")
    assert via_redirect == await session.download(epoch.model.url)
    async with httpx.AsyncClient() as anonymous:  # the signed URL is for GET only
        assert (await anonymous.head(epoch.model.url)).status_code == 403
    assert await session.content_length(epoch.model.url) == len(via_redirect)


def _redirecting(location: str, hops: int = 1) -> httpx.MockTransport:
    seen = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["n"] += 1
        if seen["n"] <= hops:
            return httpx.Response(308, headers={"Location": location})
        return httpx.Response(200, content=b"data")

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("location", "hops", "outcome"),
    [
        ("https://storage.example/blob", 1, b"data"),
        ("/v2/consumer/blobs/content/x", 1, b"data"),  # the orchestrator's own origin
        ("http://storage.example/blob", 1, e.UnsafeRedirect),  # not https
        ("https://storage.example/blob", 6, e.UnsafeRedirect),  # more than five hops
    ],
)
async def test_redirects_are_followed_only_to_https_and_a_few_times(
    location: str, hops: int, outcome: bytes | type[Exception]
) -> None:
    async with OrchestratorClient("http://orchestrator.test", transport=_redirecting(location, hops),
                                  retry=FAST_RETRY) as client:
        session = client.session(TOKEN)
        if isinstance(outcome, bytes):
            assert await session.download("http://orchestrator.test/v2/consumer/blobs/b1") == outcome
        else:
            with pytest.raises(outcome):
                await session.download("http://orchestrator.test/v2/consumer/blobs/b1")


async def test_the_token_never_follows_a_redirect_to_storage() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "orchestrator.test":
            return httpx.Response(308, headers={"Location": "https://storage.example/signed"})
        return httpx.Response(200, content=b"ok")

    async with OrchestratorClient("http://orchestrator.test", transport=httpx.MockTransport(handler)) as client:
        assert await client.session(TOKEN).download("http://orchestrator.test/v2/consumer/blobs/b1") == b"ok"
    assert "Authorization" in seen[0].headers and "Authorization" not in seen[1].headers


async def test_a_deleted_or_aged_out_workflow_answers_404(sim: Simulator, session: OrchestratorSession) -> None:
    first = await _one_epoch_run(sim, session, "kept")
    assert first.id and first.status == "succeeded"
    second = (await session.submit(template("deleted"))).id
    assert second
    sim.delete(second)
    with pytest.raises(e.NotFound):
        await session.get(second)
    await sim.advance(29 * 24 * 3600)
    assert (await session.get(first.id)).status == "succeeded"  # kept 30 days after it ended
    await sim.advance(2 * 24 * 3600)
    with pytest.raises(e.NotFound):
        await session.get(first.id)
    assert (await session.list_by_tag("lora-trainer-bot")).items == []


class RecordingRetry(RetryPolicy):
    """Retries at once, remembering the Retry-After each retry was told."""

    def __init__(self) -> None:
        super().__init__(attempts=3, base_delay=0.0, max_delay=0.0)
        object.__setattr__(self, "told", [])

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        self.told.append(retry_after)  # type: ignore[attr-defined]
        return 0.0


@pytest.mark.parametrize("route", ["submit", "get", "list", "update", "upload_blob", "refresh_blob", "get_blob",
                                   "blob_content"])
async def test_a_429_with_retry_after_on_any_endpoint_is_waited_out(
    sim: Simulator, client: OrchestratorClient, session: OrchestratorSession, route: str
) -> None:
    finished = await _one_epoch_run(sim, session, "rate-limited")
    assert finished.id
    epoch = finished.available_epochs()[0]
    assert epoch.model is not None and epoch.model.url and sim.base_url
    png = io.BytesIO()
    Image.new("RGB", (32, 32)).save(png, "PNG")
    calls = {
        "submit": lambda: session.submit(template("rate-limited")),
        "get": lambda: session.get(finished.id or ""),
        "list": lambda: session.list_by_tag("lora-trainer-bot"),
        "update": lambda: session.cancel(finished.id or ""),
        "upload_blob": lambda: session.upload_blob(png.getvalue(), filename="a.png", content_type="image/png"),
        "refresh_blob": lambda: session.refresh_blob(epoch.model.id),  # type: ignore[union-attr]
        "get_blob": lambda: session.download(f"{sim.base_url}/v2/consumer/blobs/{epoch.model.id}"),  # type: ignore[union-attr]
        "blob_content": lambda: session.download(epoch.model.url or ""),  # type: ignore[union-attr]
    }
    client.retry = RecordingRetry()
    sim.faults.fail_next(1, 429, route=route, retry_after=7)
    if route == "update":  # a finished run cannot be cancelled: 409 after the wait, never a 429
        with pytest.raises(e.Conflict):
            await calls[route]()
    else:
        await calls[route]()
    assert client.retry.told == [7.0]  # type: ignore[attr-defined]


async def test_a_submit_whose_answer_is_lost_after_the_workflow_was_made_is_charged_once(
    sim: Simulator, session: OrchestratorSession
) -> None:
    sim.faults.lose_next_answer(1, 502, route="submit")
    workflow = await session.submit(template("lost-answer"))
    assert workflow.id and list(sim.workflows) == [workflow.id]
    assert [c["type"] for c in sim.charges(TOKEN)] == ["debit"]
