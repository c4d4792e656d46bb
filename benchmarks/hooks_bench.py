"""Callback throughput: our hook endpoint against a bare aiohttp handler returning 200.

    PYTHONPATH=. python benchmarks/hooks_bench.py [--requests 6000] [--rounds 5] [--concurrency 32]
        [--sink store|batched|memory]

Each server runs alone in a child process on 127.0.0.1 (port 0); this process is the load
generator, a pool of concurrent aiohttp clients. Ours does the real work per callback: look up
the job's secret hash (the server keeps known hashes 60 s), compare in constant time, parse the
JSON, record the delivery before answering, schedule the tracker. Sinks: ``store`` is
production (the real Store on a temporary file: delivery records group-committed);
``batched`` shows what a batch insert in storage would give (group commit, DeliveryBatcher);
``memory`` measures the server alone. Both servers log each request at INFO to a file, as in
production. Prints requests/s for both and the ratio (target: at least 0.5).
The two servers get alternating bursts so that other load on the machine hits both alike; the
median burst of each is compared. Loopback only; bounded in requests and time (--max-seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.hooks import hash_hook_secret, hook_url, new_hook_secret  # noqa: E402
from bot.logging_setup import RedactingFilter  # noqa: E402
from bot.metrics import BotMetrics  # noqa: E402
from bot.web.batching import Delivery, DeliveryBatcher  # noqa: E402
from bot.web.protocols import DeliveryOutcome  # noqa: E402
from bot.web.server import WebServer  # noqa: E402
from bot.web.sinks import DirectoryDatasetFiles, StoreHookJobs  # noqa: E402
from storage import Store  # noqa: E402
from storage.models import NewJob, Payer, TokenSource, Variant  # noqa: E402

SINKS = {
    "store": "the real store: job read (kept 60 s by the server) + group-committed delivery records",
    "batched": "SQLite job read (kept 60 s) + group-committed INSERT",
    "memory": "in-memory sink",
}
PAYLOAD = {"$type": "workflow", "workflowId": "wf", "status": "processing", "timestamp": "2025-01-01T00:00:00Z"}
SCHEMA = """
CREATE TABLE jobs (id TEXT PRIMARY KEY, hook_secret_hash TEXT NOT NULL);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs(id), body_sha256 TEXT NOT NULL,
    outcome TEXT NOT NULL, received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
"""


class StoreSink:
    """Production: the real store (``StoreHookJobs``): jobs.get, then delivery records, group-committed."""

    def __init__(self, store: Store, job_ids: list[str]) -> None:
        self.store = store
        self.jobs = StoreHookJobs(store)
        self.job_ids = job_ids
        self.callbacks = 0

    @classmethod
    async def create(cls, path: Path, secrets: list[str]) -> tuple[StoreSink, list[tuple[str, str]]]:
        store = await Store.open(path)
        jobs = []
        for secret in secrets:
            job = await store.jobs.create(
                NewJob(
                    guild_id=1,
                    channel_id=2,
                    user_id=3,
                    name="bench",
                    variant=Variant.DEV,
                    params={"steps": 2000},
                    dataset_digest="ab" * 32,
                    image_count=10,
                    payer=Payer.OPERATOR,
                    token_source=TokenSource.NONE,
                    hook_secret_hash=hash_hook_secret(secret),
                )
            )
            jobs.append((job.id, secret))
        return cls(store, [job_id for job_id, _ in jobs]), jobs

    async def hook_secret_hash(self, job_id: str) -> str | None:
        return await self.jobs.hook_secret_hash(job_id)

    async def record_delivery(self, job_id: str, body_digest: str, outcome: DeliveryOutcome) -> bool:
        return await self.jobs.record_delivery(job_id, body_digest, outcome)

    async def on_callback(self, job_id: str, payload: dict[str, Any]) -> None:
        self.callbacks += 1

    async def delivery_count(self) -> int:
        return sum([len(await self.store.deliveries.for_job(job_id, limit=1_000_000)) for job_id in self.job_ids])

    async def close(self) -> None:
        await self.store.close()


class SqliteHookSink:
    """What the store could do with a batch insert: group commit on a temporary SQLite file.

    (SQL outside storage/, for this measurement only: storage has no batch insert yet.)
    """

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self.callbacks = 0
        # Concurrent callbacks share one transaction (group commit), each still awaiting its write.
        self._batcher = DeliveryBatcher(self._write_deliveries)

    @classmethod
    async def create(cls, path: Path, jobs: list[tuple[str, str]]) -> SqliteHookSink:
        db = await aiosqlite.connect(path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA foreign_keys=ON")  # the same pragmas as storage/store.py
        await db.execute("PRAGMA busy_timeout=5000")
        await db.executescript(SCHEMA)
        await db.executemany("INSERT INTO jobs VALUES (?, ?)", [(job, hash_hook_secret(s)) for job, s in jobs])
        await db.commit()
        return cls(db)

    async def hook_secret_hash(self, job_id: str) -> str | None:
        # One round trip to aiosqlite's thread (execute + fetchone + close would be three).
        rows = list(await self.db.execute_fetchall("SELECT hook_secret_hash FROM jobs WHERE id = ?", (job_id,)))
        return str(rows[0][0]) if rows else None

    async def record_delivery(self, job_id: str, body_digest: str, outcome: DeliveryOutcome) -> bool:
        return await self._batcher.record_delivery(job_id, body_digest, outcome)

    async def _write_deliveries(self, batch: Sequence[Delivery]) -> set[str]:
        await self.db.executemany(
            "INSERT INTO deliveries (job_id, body_sha256, outcome) VALUES (?, ?, ?)",
            [(d.job_id, d.body_digest, str(d.outcome)) for d in batch],
        )
        await self.db.commit()
        return set()  # the benchmark never deletes a job

    async def on_callback(self, job_id: str, payload: dict[str, Any]) -> None:
        self.callbacks += 1  # the tracker's refresh is out of scope: it runs after the answer

    async def delivery_count(self) -> int:
        async with self.db.execute("SELECT COUNT(*) FROM deliveries") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def close(self) -> None:
        await self.db.close()


class MemoryHookSink:
    """The same contract over a dict and a list: measures the server without the database."""

    def __init__(self, jobs: list[tuple[str, str]]) -> None:
        self.hashes = {job: hash_hook_secret(secret) for job, secret in jobs}
        self.deliveries: list[tuple[str, str, str]] = []
        self.callbacks = 0

    async def hook_secret_hash(self, job_id: str) -> str | None:
        return self.hashes.get(job_id)

    async def record_delivery(self, job_id: str, body_digest: str, outcome: DeliveryOutcome) -> bool:
        self.deliveries.append((job_id, body_digest, outcome))
        return True

    async def on_callback(self, job_id: str, payload: dict[str, Any]) -> None:
        self.callbacks += 1

    async def delivery_count(self) -> int:
        return len(self.deliveries)

    async def close(self) -> None:
        return None


def _log_to(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(logging.INFO)


async def _serve(kind: str, sink_kind: str, secrets: list[str], workdir: Path, conn: Connection) -> None:
    """Send (port, jobs), serve until the parent says "stop", then report what the sink saw."""
    from bot.config import Settings

    _log_to(workdir / f"{kind}.log")
    if kind == "ours":
        jobs = [(str(1000 + i), secret) for i, secret in enumerate(secrets)]
        sink: StoreSink | SqliteHookSink | MemoryHookSink
        if sink_kind == "store":
            sink, jobs = await StoreSink.create(workdir / "store.sqlite3", secrets)
        elif sink_kind == "batched":
            sink = await SqliteHookSink.create(workdir / "bench.sqlite3", jobs)
        else:
            sink = MemoryHookSink(jobs)
        settings = Settings(http_host="127.0.0.1", http_port=0, data_dir=workdir, secret_key="bench-key-0123456789abc")
        server = WebServer(settings, hooks=sink, datasets=DirectoryDatasetFiles(workdir), metrics=BotMetrics())
        await server.start()
        conn.send((server.port, jobs))
        await asyncio.to_thread(conn.recv)
        await server.stop()
        conn.send({"deliveries": await sink.delivery_count(), "callbacks": sink.callbacks})
        await sink.close()
        return

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_post("/hooks/civitai/{job}/{secret}", ok)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    conn.send((runner.addresses[0][1], []))
    await asyncio.to_thread(conn.recv)
    await runner.cleanup()
    conn.send({})


def _serve_process(kind: str, sink_kind: str, secrets: list[str], workdir: str, conn: Connection) -> None:
    asyncio.run(_serve(kind, sink_kind, secrets, Path(workdir), conn))


async def _fire(
    session: aiohttp.ClientSession,
    port: int,
    jobs: list[tuple[str, str]],
    requests: int,
    concurrency: int,
    limit: float,
) -> float:
    """Send ``requests`` callbacks with ``concurrency`` clients; return requests per second."""
    base = f"http://127.0.0.1:{port}"
    body = json.dumps(PAYLOAD).encode()
    per_worker = max(1, requests // concurrency)
    began = time.perf_counter()
    deadline = began + limit

    async def worker(start: int) -> int:
        done = 0
        for index in range(start, start + per_worker):
            if time.perf_counter() > deadline:
                break
            job, secret = jobs[index % len(jobs)]
            async with session.post(hook_url(base, job, secret), data=body) as response:
                if response.status != 200:
                    raise RuntimeError(f"callback answered {response.status}")
                await response.read()
            done += 1
        return done

    counts = await asyncio.gather(*(worker(i * per_worker) for i in range(concurrency)))
    return sum(counts) / (time.perf_counter() - began)


async def _compare(
    ports: dict[str, int], jobs: list[tuple[str, str]], args: argparse.Namespace
) -> dict[str, list[float]]:
    """Alternate bursts at both servers, so background load on the machine hits both alike."""
    rates: dict[str, list[float]] = {kind: [] for kind in ports}
    connector = aiohttp.TCPConnector(limit=args.concurrency * len(ports))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        for port in ports.values():  # warm-up: connections, caches, first SQLite pages
            await _fire(session, port, jobs, args.concurrency * 10, args.concurrency, args.max_seconds)
        for _ in range(args.rounds):
            for kind, port in ports.items():
                per_round = args.requests // args.rounds
                rates[kind].append(await _fire(session, port, jobs, per_round, args.concurrency, args.max_seconds))
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=6000, help="callbacks per server, over all rounds")
    parser.add_argument("--rounds", type=int, default=5, help="alternating bursts per server (the median is kept)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=200, help="distinct jobs the callbacks are spread over")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="time cap per burst")
    parser.add_argument(
        "--sink",
        choices=list(SINKS),
        default="store",
        help="store: the real store (default); batched: group-committed SQLite; memory: the server alone",
    )
    args = parser.parse_args()
    secrets = [new_hook_secret() for _ in range(args.jobs)]
    jobs: list[tuple[str, str]] = []
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="hooks-bench-") as tmp:
        pipes, processes, ports = {}, [], {}
        for kind in ("ours", "bare"):
            parent, child = context.Pipe()
            process = context.Process(target=_serve_process, args=(kind, args.sink, secrets, tmp, child), daemon=True)
            process.start()
            processes.append(process)
            if not parent.poll(60):
                raise RuntimeError(f"the {kind} server did not start")
            pipes[kind] = parent
            ports[kind], served_jobs = parent.recv()
            jobs = jobs or served_jobs
        try:
            rates = asyncio.run(_compare(ports, jobs, args))
        finally:
            reports = {}
            for kind, pipe in pipes.items():
                pipe.send("stop")
                reports[kind] = pipe.recv() if pipe.poll(30) else {}
            for process in processes:
                process.join(timeout=30)
                if process.is_alive():
                    process.terminate()
    bare, ours = statistics.median(rates["bare"]), statistics.median(rates["ours"])
    ratio = ours / bare
    sink = SINKS[args.sink]
    print(f"{args.requests} callbacks per server in {args.rounds} alternating rounds, {args.concurrency} clients,")
    print(f"{args.jobs} jobs; loopback; each server in its own process. Medians of the rounds:")
    print(f"bare aiohttp handler : {bare:8.0f} req/s   rounds: {', '.join(f'{r:.0f}' for r in rates['bare'])}")
    print(f"our hook endpoint    : {ours:8.0f} req/s   rounds: {', '.join(f'{r:.0f}' for r in rates['ours'])}")
    print(f"                       ({sink} per callback)")
    print(f"deliveries recorded  : {reports['ours'].get('deliveries')}, callbacks: {reports['ours'].get('callbacks')}")
    print(f"ratio                : {ratio:.2f}  (target >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})")
    return 0 if ratio >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
