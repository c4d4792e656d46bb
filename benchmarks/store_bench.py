"""The store's hot queries on SQLite and on PostgreSQL, as ratios against a baseline.

    PYTHONPATH=. python benchmarks/store_bench.py [--postgres postgresql://…] [--jobs 2000] [--rounds 5]

The PostgreSQL server comes from --postgres or TEST_POSTGRES_URL (`bash .ci/run` starts one;
so does `.ci/postgres.sh` sourced in a shell). Both stores get the same data: ``--jobs`` jobs over
20 servers and 200 members, most finished, with their ledger lines and callback deliveries.
Each query runs through the real repositories, in rounds that alternate between the backends
(other load on the machine hits both alike); the median round counts. Printed per query: µs per
call on each backend, each backend's time as a multiple of its own baseline (``SELECT 1`` through
the same store: the cost of one round trip), and PostgreSQL / SQLite. The PostgreSQL schema is
dropped at the end. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from storage import Store  # noqa: E402
from storage.models import JobStatus, NewJob, Payer, TokenSource, Variant  # noqa: E402
from storage.store import sqlite_url  # noqa: E402
from tests.databases import fresh_postgres  # noqa: E402

GUILDS, MEMBERS = 20, 200
START = datetime(2026, 1, 1, tzinfo=UTC)
Query = Callable[[Store, int], Awaitable[object]]


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


async def fill(store: Store, clock: Clock, jobs: int) -> list[str]:
    ids = []
    for n in range(jobs):
        clock.now = START + timedelta(minutes=10 * n)
        job = await store.jobs.create(
            NewJob(
                guild_id=1000 + n % GUILDS, channel_id=5, user_id=2000 + n % MEMBERS, name=f"style-{n}",
                variant=Variant.DEV, params={"steps": 1000, "epochs": 10}, dataset_digest="sha256:" + "ab" * 32,
                image_count=12, payer=Payer.OPERATOR, token_source=TokenSource.OPERATOR, hook_secret_hash="h",
                price_estimate=1000.0, price_quoted=1010.0,
            )
        )  # fmt: skip
        ids.append(job.id)
        await store.jobs.claim_for_submit(job.id)
        await store.jobs.mark_submitted(job.id, f"wf-{job.id}", 1010.0)
        await store.deliveries.record_many([(job.id, f"sha256:{n}-{k}", "refreshed") for k in range(3)])
        if n % 10:  # nine in ten are finished
            await store.jobs.update_state(job.id, JobStatus.SUCCEEDED, {"status": "succeeded"}, 1.0)
            await store.ledger.settle(job.id, 990.0)
    return ids


def queries(ids: list[str], clock: Clock) -> dict[str, Query]:
    day, month = clock.now - timedelta(days=1), clock.now - timedelta(days=30)

    async def caps(store: Store, n: int) -> object:
        guild, member = 1000 + n % GUILDS, 2000 + n % MEMBERS
        return (
            await store.ledger.spent_by_user(guild, member, day),
            await store.ledger.spent_by_guild(guild, month),
            await store.jobs.count_active_for_user(guild, member),
        )

    return {
        "baseline: SELECT 1": lambda store, n: store.db.one("SELECT 1"),
        "job by id": lambda store, n: store.jobs.get(ids[n % len(ids)]),
        "active jobs (reconcile)": lambda store, n: store.jobs.list_unfinished(),
        "caps: day + month spend, runs going": caps,
        "record a delivery": lambda store, n: store.deliveries.record(ids[n % len(ids)], "sha256:x", "refreshed"),
        "a job's deliveries": lambda store, n: store.deliveries.for_job(ids[n % len(ids)]),
    }


async def time_per_call(store: Store, query: Query, calls: int) -> float:
    started = time.perf_counter()
    for n in range(calls):
        await query(store, n)
    return (time.perf_counter() - started) / calls * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL"))
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200, help="calls per query per round")
    args = parser.parse_args()
    if not args.postgres:
        raise SystemExit("give a PostgreSQL server: --postgres postgresql://… or TEST_POSTGRES_URL")
    with tempfile.TemporaryDirectory() as workdir, fresh_postgres(args.postgres) as postgres_url:
        clock = Clock()
        stores = {
            "SQLite": await Store.open(sqlite_url(Path(workdir) / "bench.sqlite3"), clock=clock),
            "PostgreSQL": await Store.open(postgres_url, clock=clock),
        }
        try:
            filled = {}
            for name, store in stores.items():
                started = time.perf_counter()
                filled[name] = await fill(store, clock, args.jobs)
                print(f"{name}: {args.jobs} jobs filled in {time.perf_counter() - started:.1f} s")
            timings: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.rounds):
                for name, store in stores.items():
                    for label, query in queries(filled[name], clock).items():
                        timings.setdefault((name, label), []).append(await time_per_call(store, query, args.calls))
        finally:
            for store in stores.values():
                await store.close()
    median = {key: statistics.median(values) for key, values in timings.items()}
    labels = list(queries([""], clock))
    print(f"\nmedian of {args.rounds} rounds of {args.calls} calls; {args.jobs} jobs, {args.jobs // 10} unfinished")
    print(f"{'query':38} {'SQLite µs':>10} {'× base':>7} {'PG µs':>9} {'× base':>7} {'PG/SQLite':>10}")
    for label in labels:
        lite, pg = median[("SQLite", label)], median[("PostgreSQL", label)]
        lite_base, pg_base = median[("SQLite", labels[0])], median[("PostgreSQL", labels[0])]
        print(f"{label:38} {lite:10.0f} {lite / lite_base:7.1f} {pg:9.0f} {pg / pg_base:7.1f} {pg / lite:10.2f}")


if __name__ == "__main__":
    asyncio.run(main())
