"""Retry, error mapping and token handling of the client, against httpx.MockTransport.

Only the unit-level HTTP behaviour is mocked here (the outside world); the end-to-end tests run
the client against the orchestrator simulator over real sockets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from bot.civitai import errors as e
from bot.civitai import models as m
from bot.civitai.client import OrchestratorClient, RetryPolicy
from bot.civitai.training import build_training_input, training_workflow

TOKEN = "tok-very-secret-0123456789"
FAST = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.004)
WORKFLOW = {"id": "wf-1", "status": "unassigned", "steps": []}
ZIP = m.ZipTrainingData(source_url="https://bot.example/datasets/x.zip", count=5)


def _client(handler: Callable[[httpx.Request], httpx.Response], **kwargs: object) -> OrchestratorClient:
    return OrchestratorClient(
        "https://orch.example", retry=FAST, transport=httpx.MockTransport(handler), **kwargs  # type: ignore[arg-type]
    )


def _template(external_id: str | None = "job-1") -> m.WorkflowTemplate:
    template = training_workflow(build_training_input(ZIP), external_id="placeholder")
    return template.model_copy(update={"external_id": external_id})


def test_backoff_is_exponential_with_full_jitter_and_a_cap() -> None:
    ceiling = RetryPolicy(base_delay=1, max_delay=30, jitter=lambda high: high)
    assert [ceiling.delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert ceiling.delay(0, retry_after=12) == 12 and ceiling.delay(0, retry_after=99) == 30
    jittered = RetryPolicy(base_delay=1, max_delay=30)
    assert all(0 <= jittered.delay(3) <= 8 for _ in range(200))


async def test_reads_retry_5xx_429_and_network_errors_then_succeed() -> None:
    answers = iter(["connect", 503, 429, 200])
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = next(answers)
        if answer == "connect":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(int(answer), json=WORKFLOW if answer == 200 else {"status": answer})

    async with _client(handler) as client:
        workflow = await client.session(SecretStr(TOKEN)).get("wf/1", wait=30, until_change=True)
    assert workflow.id == "wf-1"
    assert len(seen) == 4
    assert seen[-1].url.raw_path.split(b"?")[0] == b"/v2/consumer/workflows/wf%2F1"
    assert dict(seen[-1].url.params) == {"wait": "30", "until": "change"}


async def test_retries_stop_after_the_policy_and_raise_the_typed_error() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(502, text="bad gateway")

    async with _client(handler) as client:
        with pytest.raises(e.OrchestratorServerError) as caught:
            await client.session(TOKEN).list_by_tag("bot")
    assert calls == FAST.attempts
    assert "Nothing was charged" in caught.value.user_message


@pytest.mark.parametrize(("external_id", "expected_calls"), [("job-1", 2), (None, 1)])
async def test_submit_is_retried_only_with_an_external_id(external_id: str | None, expected_calls: int) -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(500) if len(bodies) == 1 else httpx.Response(202, json=WORKFLOW)

    async with _client(handler) as client:
        session = client.session(TOKEN)
        if external_id is None:
            with pytest.raises(e.OrchestratorServerError):
                await session.submit(_template(None))
        else:
            assert (await session.submit(_template(external_id))).id == "wf-1"
    assert len(bodies) == expected_calls
    assert all(body == bodies[0] for body in bodies), "a retry resends the very same body"


async def test_whatif_is_sent_without_the_external_id() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={**WORKFLOW, "cost": {"base": 2000, "total": 2000}})

    async with _client(handler) as client:
        workflow = await client.session(TOKEN).submit(_template("job-1"), whatif=True)
    assert workflow.cost is not None and workflow.cost.total == 2000
    assert "externalId" not in json.loads(sent[0].content)
    assert sent[0].url.params["whatif"] == "true"


@pytest.mark.parametrize(
    ("response", "error", "check"),
    [
        (httpx.Response(401, json={"title": "Unauthorized"}), e.Unauthorized, "/account token"),
        (httpx.Response(403, text='"Insufficient buzz"'), e.InsufficientBuzz, "2,000 Buzz"),
        (httpx.Response(404, json={"title": "Not Found"}), e.NotFound, "not found"),
        (httpx.Response(409, json={"detail": "already canceled"}), e.Conflict, "already canceled"),
        (
            httpx.Response(400, json={"status": 400, "errors": {"steps[0].input.networkDim": ["out of range"]}}),
            e.OrchestratorValidationError,
            "network_dim: out of range",
        ),
        # A bare detail naming a field is that field's error (troubleshooting table forms).
        (httpx.Response(400, json={"title": "Bad", "detail": "modelVariant required"}), e.OrchestratorValidationError,
         "variant: variant required (choose dev or schnell)"),
        (httpx.Response(400, json={"detail": "trainingData.sourceUrl not reachable"}), e.OrchestratorValidationError,
         "dataset: trainingData.sourceUrl not reachable"),
        (httpx.Response(400, json={"title": "Bad", "detail": "Something else"}), e.OrchestratorRequestError,
         "Something else"),
    ],
)  # fmt: skip
async def test_error_statuses_become_typed_errors_without_the_token(
    response: httpx.Response, error: type[e.OrchestratorError], check: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return response

    with caplog.at_level(logging.DEBUG):
        async with _client(handler) as client:
            with pytest.raises(error) as caught:
                await client.session(TOKEN).submit(_template(), price=2000)
    assert calls == 1, "4xx answers are not retried"
    assert check in caught.value.user_message
    assert TOKEN not in caught.value.user_message
    assert TOKEN not in caplog.text and "Authorization" not in caplog.text


async def test_check_token_cancel_blobs_and_downloads(tmp_path: Path) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        path = request.url.path
        if request.url.host == "storage.example":
            return httpx.Response(200, content=b"x" * 100)
        if path == "/v2/consumer/workflows" and request.method == "GET":
            return httpx.Response(200, json={"next": "c2", "items": [WORKFLOW]})
        if request.method == "PUT":
            canceled = {**WORKFLOW, "status": "canceled"}
            return httpx.Response(204) if "204" in path else httpx.Response(200, json=canceled)
        if path == "/v2/consumer/blobs":
            return httpx.Response(201, json={"type": "image", "id": "b1", "available": True})
        if path.endswith("/refresh"):
            return httpx.Response(200, json={"type": "image", "id": "b1", "available": True, "url": "https://x/y"})
        return httpx.Response(404)

    async with _client(handler) as client:
        session = client.session(TOKEN)
        await session.check_token()
        assert (await session.cancel("wf-204")) is None
        canceled = await session.cancel("wf-200")
        assert canceled is not None and canceled.status == "canceled"
        image = tmp_path / "a.png"
        image.write_bytes(b"\x89PNG...")
        blob = await session.upload_blob(image, filename="a.png", content_type="image/png")
        assert blob.air == "urn:air:other:other:orchestrator:blob@b1"
        assert (await session.refresh_blob("b1")).url == "https://x/y"
        assert await session.download("https://storage.example/s.png?sig=abc") == b"x" * 100
        dest = await session.download("https://storage.example/m.safetensors", dest=tmp_path / "m.safetensors")
        assert dest.read_bytes() == b"x" * 100
        with pytest.raises(e.DownloadTooLarge):
            await session.download("https://storage.example/big", max_bytes=10, dest=tmp_path / "big")
        assert not (tmp_path / "big").exists() and not (tmp_path / "big.part").exists()
        with pytest.raises(ValueError, match="wait"):
            await session.get("wf", wait=int(client.timeout))

    assert requests[0].url.params["take"] == "1"
    assert json.loads(requests[1].content) == {"status": "canceled"}
    assert b'name="file"; filename="a.png"' in requests[3].content
    for request in requests:
        own = request.url.host == "orch.example"
        assert ("Authorization" in request.headers) is own, "the token goes only to the orchestrator"
    assert requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_a_session_never_shows_its_token() -> None:
    async with _client(lambda r: httpx.Response(200)) as client:
        assert TOKEN not in repr(client.session(TOKEN))
