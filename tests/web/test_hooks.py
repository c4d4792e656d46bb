"""POST /hooks/civitai/{job}/{secret} over a real socket (DESIGN §5)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.config import Settings
from bot.hooks import hash_hook_secret, hook_url, new_hook_secret, verify_hook_secret
from bot.metrics import BotMetrics
from bot.web.protocols import DeliveryOutcome
from bot.web.server import MAX_HOOK_BODY_BYTES, WebServer
from bot.web.sinks import DirectoryDatasetFiles
from tests.web.conftest import MemorySink

PAYLOAD = {"$type": "workflow", "workflowId": "wf-1", "status": "processing", "timestamp": "2025-01-01T00:00:00Z"}


async def settle() -> None:
    """Let scheduled callback tasks run (they must not have, for the negative cases)."""
    for _ in range(5):
        await asyncio.sleep(0.01)


def url(server: WebServer, job: str, secret: str) -> str:
    return hook_url(server.base_url, job, secret)


def test_secrets_are_long_url_safe_and_verified_by_hash() -> None:
    secret = new_hook_secret()
    assert len(secret) >= 43 and secret.replace("-", "").replace("_", "").isalnum()
    stored = hash_hook_secret(secret)
    assert stored == hashlib.sha256(secret.encode()).hexdigest() and secret not in stored
    assert verify_hook_secret(secret, stored)
    assert not verify_hook_secret(secret + "x", stored)
    assert not verify_hook_secret(secret, "é" * 64)  # a corrupt row is a mismatch, not a crash
    assert new_hook_secret() != secret


async def test_good_secret_records_and_hands_over_the_payload(
    server: WebServer, sink: MemorySink, client: aiohttp.ClientSession, metrics: BotMetrics
) -> None:
    secret = sink.add_job("42")
    body = json.dumps(PAYLOAD).encode()
    async with client.post(url(server, "42", secret), data=body) as response:
        assert response.status == 200
    await asyncio.wait_for(sink.called.wait(), 5)
    assert sink.callbacks == [("42", PAYLOAD)]
    assert sink.deliveries == [("42", hashlib.sha256(body).hexdigest(), DeliveryOutcome.ACCEPTED)]
    assert metrics.callbacks_received.value() == 1


@pytest.mark.parametrize("case", ["wrong secret", "unknown job", "malformed secret", "malformed job"])
async def test_unauthenticated_callbacks_are_404_and_do_nothing(
    server: WebServer, sink: MemorySink, client: aiohttp.ClientSession, metrics: BotMetrics, case: str
) -> None:
    secret = sink.add_job("42")
    job, given = {
        "wrong secret": ("42", new_hook_secret()),
        "unknown job": ("43", secret),
        "malformed secret": ("42", "short"),
        "malformed job": ("4.2", secret),
    }[case]
    async with client.post(url(server, job, given), json=PAYLOAD) as response:
        assert response.status == 404
        assert secret not in await response.text()
    await settle()
    assert sink.callbacks == [] and sink.deliveries == []
    assert metrics.callbacks_rejected.value(reason="unknown_hook") == 1


async def test_oversized_body_is_413(server: WebServer, sink: MemorySink, client: aiohttp.ClientSession) -> None:
    secret = sink.add_job("42")
    big = b"{" + b" " * MAX_HOOK_BODY_BYTES + b"}"
    async with client.post(url(server, "42", secret), data=big) as response:
        assert response.status == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap applies while reading
        for _ in range(8):
            yield b" " * (MAX_HOOK_BODY_BYTES // 4)

    async with client.post(url(server, "42", secret), data=chunks()) as response:
        assert response.status == 413
    await settle()
    assert sink.callbacks == [] and sink.deliveries == []


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        (b"{not json", DeliveryOutcome.BAD_JSON),
        (b"\xff\xfe\x00", DeliveryOutcome.BAD_JSON),
        (b"[1, 2]", DeliveryOutcome.NOT_OBJECT),
        # Deeper than the interpreter's recursion limit: json raises RecursionError, not ValueError.
        (b"[" * 30_000 + b"]" * 30_000, DeliveryOutcome.BAD_JSON),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, DeliveryOutcome.BAD_JSON),
    ],
)
async def test_permanent_problems_are_200_recorded_as_rejected(
    server: WebServer,
    sink: MemorySink,
    client: aiohttp.ClientSession,
    metrics: BotMetrics,
    body: bytes,
    outcome: DeliveryOutcome,
) -> None:
    secret = sink.add_job("42")
    async with client.post(url(server, "42", secret), data=body) as response:
        assert response.status == 200  # no retry storm for something a retry cannot fix
    await settle()
    assert sink.deliveries == [("42", hashlib.sha256(body).hexdigest(), outcome)]
    assert sink.callbacks == []
    assert metrics.callbacks_rejected.value(reason=str(outcome)) == 1


@pytest.mark.parametrize("failure", ["fail_lookup", "fail_record"])
async def test_store_failure_is_503_so_the_orchestrator_retries(
    server: WebServer, sink: MemorySink, client: aiohttp.ClientSession, metrics: BotMetrics, failure: str
) -> None:
    secret = sink.add_job("42")
    setattr(sink, failure, True)
    async with client.post(url(server, "42", secret), json=PAYLOAD) as response:
        assert response.status == 503
    await settle()
    assert sink.callbacks == []
    assert metrics.callbacks_rejected.value(reason="unavailable") == 1


async def test_answers_before_the_refresh_finishes(
    server: WebServer, sink: MemorySink, client: aiohttp.ClientSession
) -> None:
    secret = sink.add_job("42")
    sink.release = asyncio.Event()
    async with client.post(url(server, "42", secret), json=PAYLOAD) as response:
        assert response.status == 200
    assert sink.callbacks == []  # still waiting: the response did not wait for it
    sink.release.set()
    await asyncio.wait_for(sink.called.wait(), 5)
    assert sink.callbacks == [("42", PAYLOAD)]


async def test_a_failing_tracker_does_not_change_the_answer(
    server: WebServer, sink: MemorySink, client: aiohttp.ClientSession
) -> None:
    secret = sink.add_job("42")
    sink.callback_error = RuntimeError("orchestrator down")
    async with client.post(url(server, "42", secret), json=PAYLOAD) as response:
        assert response.status == 200
    await asyncio.wait_for(sink.called.wait(), 5)


async def test_stop_lets_in_flight_callbacks_finish(settings: Settings, sink: MemorySink, metrics: BotMetrics) -> None:
    web = WebServer(settings, hooks=sink, datasets=DirectoryDatasetFiles(settings.data_dir), metrics=metrics)
    await web.start()
    secret = sink.add_job("7")
    sink.release = asyncio.Event()
    async with aiohttp.ClientSession() as client, client.post(url(web, "7", secret), json=PAYLOAD) as response:
        assert response.status == 200
    asyncio.get_running_loop().call_later(0.05, sink.release.set)
    await web.stop()
    assert sink.callbacks == [("7", PAYLOAD)]


async def test_no_secret_in_logs(
    server: WebServer, sink: MemorySink, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = sink.add_job("42")
    wrong = new_hook_secret()
    async with client.post(url(server, "42", secret), json=PAYLOAD) as response:
        assert response.status == 200
    async with client.post(url(server, "42", wrong), json=PAYLOAD) as response:
        assert response.status == 404
    async with client.post(url(server, "42", secret), data=b"{bad") as response:
        assert response.status == 200
    sink.fail_record = True  # makes the server log an exception
    async with client.post(url(server, "42", secret), json=PAYLOAD) as response:
        assert response.status == 503
    await settle()

    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert secret not in text and wrong not in text
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any("/hooks/civitai/42/***" in line for line in access), access  # logged, redacted


async def test_known_hashes_are_reused_and_unknown_jobs_are_asked_again(
    server: WebServer, sink: MemorySink, client: aiohttp.ClientSession
) -> None:
    secret = sink.add_job("42")
    async with client.post(url(server, "42", secret), json=PAYLOAD) as response:
        assert response.status == 200
    sink.fail_lookup = True  # a second burst callback no longer needs the store's read
    async with client.post(url(server, "42", secret), json=PAYLOAD) as response:
        assert response.status == 200
    sink.fail_lookup = False
    async with client.post(url(server, "43", secret), json=PAYLOAD) as response:
        assert response.status == 404
    late = sink.add_job("43")  # a job created after a miss is found: misses are not remembered
    async with client.post(url(server, "43", late), json=PAYLOAD) as response:
        assert response.status == 200
