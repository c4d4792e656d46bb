"""Slow clients against the web server: does a normal client still get quick answers, and does
every slow connection get closed in time?

    PYTHONPATH=. python benchmarks/web_slowloris.py [--slow 300] [--requests 1500]
        [--idle-timeout 15] [--body-timeout 10] [--per-peer 64] [--slow-addresses 4]

The server (our WebServer, in-memory hook sink, the settings' defaults unless given) runs alone
in a child process on 127.0.0.1. A normal client posts callbacks one after another from
127.0.0.1 and its latencies are measured three times: before, while and after ``--slow``
slow clients hold connections. The slow clients come from 127.0.0.2… (``--slow-addresses`` of
them, so the per-peer cap shows) and are of two kinds, half each: half-sent headers dripping a
header line now and then, and complete heads whose body drips a byte at a time. Each records
when the server closed it. Prints the normal client's p99 without and with the slow clients
(target: ratio ≤ 2) and the slowest close against the configured timeouts. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.hooks import hook_url, new_hook_secret  # noqa: E402
from bot.metrics import BotMetrics  # noqa: E402
from bot.web.server import WebServer  # noqa: E402
from bot.web.sinks import DirectoryDatasetFiles  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hooks_bench import PAYLOAD, MemoryHookSink  # noqa: E402

DRIP_SECONDS = 0.5
# Scheduling slack allowed on top of a configured timeout before a close counts as late.
GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class Limits:
    idle: float
    body: float
    per_peer: int


async def _serve(limits: Limits, secret: str, workdir: Path, conn: Connection) -> None:
    settings = Settings(
        http_host="127.0.0.1",
        http_port=0,
        data_dir=workdir,
        secret_key="bench-key-0123456789abc",
        http_idle_timeout_seconds=limits.idle,
        http_body_timeout_seconds=limits.body,
        http_max_connections_per_peer=limits.per_peer,
    )
    sink = MemoryHookSink([("42", secret)])
    metrics = BotMetrics()
    server = WebServer(settings, hooks=sink, datasets=DirectoryDatasetFiles(workdir), metrics=metrics)
    await server.start()
    conn.send(server.port)
    await asyncio.to_thread(conn.recv)
    await server.stop()
    conn.send({"refused": metrics.connections_closed.value(reason="peer_limit")})


def _serve_process(limits: Limits, secret: str, workdir: str, conn: Connection) -> None:
    asyncio.run(_serve(limits, secret, Path(workdir), conn))


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


async def normal_client(url: str, requests: int) -> list[float]:
    """Sequential callbacks on one keep-alive connection from 127.0.0.1; each latency."""
    body = json.dumps(PAYLOAD).encode()
    connector = aiohttp.TCPConnector(limit=1, local_addr=("127.0.0.1", 0))
    latencies = []
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        for _ in range(requests):
            start = time.perf_counter()
            async with session.post(url, data=body) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"the normal client got {response.status}")
            latencies.append(time.perf_counter() - start)
    return latencies


@dataclass
class SlowResult:
    kind: str
    admitted: bool
    seconds_open: float


async def slow_client(port: int, address: str, kind: str, path: str, limit: float) -> SlowResult:
    """Hold a connection the slow way until the server closes it; how long it stayed open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    start = time.monotonic()
    if kind == "headers":
        writer.write(f"POST {path} HTTP/1.1\r\nHost: bot\r\n".encode())
    else:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: bot\r\nContent-Length: 60000\r\n\r\n{{".encode())
    first = b""

    async def drip() -> None:
        for n in range(10_000):
            await asyncio.sleep(DRIP_SECONDS)
            writer.write(f"X-Drip-{n}: 1\r\n".encode() if kind == "headers" else b" ")
            await writer.drain()

    dripping = asyncio.create_task(drip())
    try:
        async with asyncio.timeout(limit):
            while chunk := await reader.read(4096):
                first = first or chunk
    except (ConnectionError, TimeoutError):
        pass
    finally:
        dripping.cancel()
        await asyncio.gather(dripping, return_exceptions=True)
        writer.close()
    return SlowResult(kind, not first.startswith(b"HTTP/1.1 503"), time.monotonic() - start)


async def run(port: int, secret: str, args: argparse.Namespace) -> tuple[list[float], list[float], list[SlowResult]]:
    url = hook_url(f"http://127.0.0.1:{port}", "42", secret)
    path = hook_url("", "42", secret)
    await normal_client(url, 50)  # warm-up
    quiet = await normal_client(url, args.requests)
    limit = max(args.idle_timeout, args.body_timeout) * 3 + 10
    slow = [
        asyncio.create_task(
            slow_client(port, f"127.0.0.{2 + i % args.slow_addresses}", ("headers", "body")[i % 2], path, limit)
        )
        for i in range(args.slow)
    ]
    await asyncio.sleep(0.5)  # every slow connection is open and dripping
    loaded = await normal_client(url, args.requests)
    results = await asyncio.gather(*slow)
    quiet += await normal_client(url, args.requests)
    return quiet, loaded, results


def main(argv: list[str] | None = None) -> int:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=300, help="slow connections held at once")
    parser.add_argument("--requests", type=int, default=1500, help="normal callbacks per phase")
    parser.add_argument("--idle-timeout", type=float, default=defaults.http_idle_timeout_seconds)
    parser.add_argument("--body-timeout", type=float, default=defaults.http_body_timeout_seconds)
    parser.add_argument("--per-peer", type=int, default=defaults.http_max_connections_per_peer)
    parser.add_argument("--slow-addresses", type=int, default=4, help="loopback addresses the slow clients use")
    args = parser.parse_args(argv)
    limits = Limits(args.idle_timeout, args.body_timeout, args.per_peer)
    secret = new_hook_secret()
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="slowloris-") as tmp:
        parent, child = context.Pipe()
        process = context.Process(target=_serve_process, args=(limits, secret, tmp, child), daemon=True)
        process.start()
        try:
            if not parent.poll(60):
                raise RuntimeError("the server did not start")
            quiet, loaded, results = asyncio.run(run(parent.recv(), secret, args))
            parent.send("stop")
            report = parent.recv() if parent.poll(30) else {}
        finally:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()

    ratio = p99(loaded) / p99(quiet)
    admitted = [r for r in results if r.admitted]
    print(f"normal client, {args.requests} sequential callbacks per phase, from 127.0.0.1:")
    for label, latencies in (("without slow clients ", quiet), (f"with {args.slow:4d} slow clients", loaded)):
        print(f"  p99 {label}: {p99(latencies) * 1000:7.2f} ms  (median {statistics.median(latencies) * 1000:.2f} ms)")
    print(f"  ratio                    : {ratio:7.2f}  (target <= 2: {'met' if ratio <= 2 else 'NOT met'})")
    print(
        f"slow clients: {len(admitted)} admitted, {len(results) - len(admitted)} refused at once "
        f"(cap {args.per_peer} per address, {args.slow_addresses} addresses; server counted {report.get('refused')})"
    )
    late = False
    for kind, configured in (("headers", args.idle_timeout), ("body", args.body_timeout)):
        times = [r.seconds_open for r in admitted if r.kind == kind]
        if not times:
            continue
        slowest, bound = max(times), configured + GRACE_SECONDS
        late |= slowest > bound
        print(
            f"  slow {kind:7s}: {len(times)} closed by the server, slowest after {slowest:.2f} s "
            f"(configured {configured:g} s; within {bound:g} s: {'yes' if slowest <= bound else 'NO'})"
        )
    return 0 if ratio <= 2 and not late else 1


if __name__ == "__main__":
    sys.exit(main())
