"""Slow, idle and greedy clients over raw sockets: nobody holds the server's connections for long."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.hooks import hook_url
from bot.metrics import BotMetrics
from bot.web.server import WebServer
from bot.web.sinks import DirectoryDatasetFiles
from tests.web.conftest import MemorySink, make_settings

IDLE = 0.5
BODY = 0.5
PER_PEER = 3
# Room for a loaded machine; still far below aiohttp's defaults (1 h idle, no body limit, 10 s lingering).
SLACK = 5.0


@pytest.fixture
async def strict(tmp_path: Path, sink: MemorySink, metrics: BotMetrics) -> AsyncIterator[WebServer]:
    settings = make_settings(
        tmp_path,
        http_idle_timeout_seconds=IDLE,
        http_body_timeout_seconds=BODY,
        http_max_connections_per_peer=PER_PEER,
    )
    web = WebServer(settings, hooks=sink, datasets=DirectoryDatasetFiles(tmp_path), metrics=metrics)
    await web.start()
    try:
        yield web
    finally:
        await web.stop()


async def connect(server: WebServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def seconds_until_closed(reader: asyncio.StreamReader, limit: float = 15.0) -> float:
    """Read (and drop) until the server closes the connection; how long that took."""
    start = time.monotonic()
    async with asyncio.timeout(limit):
        while await reader.read(65536):
            pass
    return time.monotonic() - start


def hook_path(server: WebServer, sink: MemorySink) -> str:
    secret = sink.add_job("42")
    return hook_url("", "42", secret)


async def test_half_sent_headers_are_closed_within_the_idle_timeout(strict: WebServer) -> None:
    reader, writer = await connect(strict)
    writer.write(b"POST /hooks/civitai/42/x HTTP/1.1\r\nHost: bot\r\n")  # and never the rest
    await writer.drain()
    assert await seconds_until_closed(reader) < IDLE + SLACK
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed(strict: WebServer) -> None:
    reader, writer = await connect(strict)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: bot\r\n\r\n")
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    assert await seconds_until_closed(reader) < IDLE + SLACK
    writer.close()


async def test_a_dripping_body_gets_408_and_the_connection_closes(
    strict: WebServer, sink: MemorySink, metrics: BotMetrics
) -> None:
    reader, writer = await connect(strict)
    head = f"POST {hook_path(strict, sink)} HTTP/1.1\r\nHost: bot\r\nContent-Length: 1000\r\n\r\n"
    writer.write(head.encode() + b'{"status": ')
    await writer.drain()

    async def drip() -> None:
        while not writer.is_closing():
            writer.write(b" ")
            await asyncio.sleep(0.05)

    dripping = asyncio.create_task(drip())
    start = time.monotonic()
    status = await asyncio.wait_for(reader.readline(), BODY + SLACK)
    assert status.startswith(b"HTTP/1.1 408"), status
    await seconds_until_closed(reader)
    assert time.monotonic() - start < BODY + SLACK
    dripping.cancel()
    writer.close()
    assert sink.deliveries == [] and sink.callbacks == []
    assert metrics.connections_closed.value(reason="body_timeout") == 1


async def test_after_a_413_the_rest_of_the_body_is_not_read(strict: WebServer, sink: MemorySink) -> None:
    reader, writer = await connect(strict)
    head = f"POST {hook_path(strict, sink)} HTTP/1.1\r\nHost: bot\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n"
    writer.write(head.encode() + b" " * 65536)
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.startswith(b"HTTP/1.1 413"), status
    # The client goes quiet with 100 MiB announced: the server closes now instead of waiting to
    # read and discard it (aiohttp's lingering read, 10 s by default).
    assert await seconds_until_closed(reader) < SLACK
    writer.close()


async def test_one_address_holds_a_bounded_number_of_connections(strict: WebServer, metrics: BotMetrics) -> None:
    held = [await connect(strict) for _ in range(PER_PEER)]
    reader, writer = await connect(strict)
    refused = await asyncio.wait_for(reader.read(), 5)
    assert refused.startswith(b"HTTP/1.1 503"), refused
    writer.close()
    assert metrics.connections_closed.value(reason="peer_limit") == 1

    held[0][1].close()  # a slot frees up: the next connection is served
    await held[0][1].wait_closed()
    await asyncio.sleep(0.05)
    reader, writer = await connect(strict)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: bot\r\nConnection: close\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
    writer.close()
    for _, other in held[1:]:
        other.close()
    assert strict.peers.open.total() <= PER_PEER
