"""Epoch latency: from an epoch becoming available in the simulator to its message on Discord.

    PYTHONPATH=. python benchmarks/epoch_latency.py [--epochs 10] [--speed 50] [--modes callbacks,polling]

The real bot runs in this process against the stage (the fake Discord of the tests) and its
in-process simulator, all on 127.0.0.1. One watcher samples both sides every millisecond: when
each epoch's model blob turns available in the simulator, and when the thread shows its
"Epoch N/M" message (samples downloaded, re-uploaded, buttons attached). Modes:

- ``callbacks``: PUBLIC_URL set; the simulator calls the bot's hook, which triggers a refresh.
- ``polling``: no PUBLIC_URL; the default poll schedule (2, 5, 10, 15, then 30 s), each wait a
  long-poll (``wait`` + ``until=change``) that returns as soon as the workflow changes.

Prints, per mode, the latencies in milliseconds (median, 90th percentile, max). Bounded: one run
per mode, ``--max-seconds`` each; measured to about a millisecond (the sampling step).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.stage import Stage  # noqa: E402
from tests.stage.bots import bot_in_process  # noqa: E402
from tests.tracking.helpers import PUBLIC_URL, simulator, start_run  # noqa: E402

SAMPLE_EVERY = 0.001


async def measure(mode: str, epochs: int, speed: float, max_seconds: float) -> list[float]:
    settings: dict[str, Any] = {"simulator_speed": speed}
    if mode == "callbacks":
        settings["public_url"] = PUBLIC_URL
    with tempfile.TemporaryDirectory() as tmp:
        async with Stage() as stage, bot_in_process(stage, Path(tmp) / "bot", **settings) as bot:
            job, thread = await start_run(
                bot, stage, stage.member("alice"), Path(tmp), epochs=epochs, steps=20 * epochs
            )
            assert job.workflow_id is not None
            record = simulator(bot).record(job.workflow_id)
            available: dict[int, float] = {}
            posted: dict[int, float] = {}
            deadline = time.perf_counter() + max_seconds
            while len(posted) < epochs and time.perf_counter() < deadline:
                now = time.perf_counter()
                for epoch in record.epochs:
                    if epoch.available and epoch.number not in available:
                        available[epoch.number] = now
                for message in stage.messages_in(thread):
                    if message.content.startswith("**Epoch "):
                        number = int(message.content.split(" ")[1].split("/")[0])
                        posted.setdefault(number, now)
                await asyncio.sleep(SAMPLE_EVERY)
            missing = [n for n in range(1, epochs + 1) if n not in posted]
            if missing:
                raise SystemExit(f"{mode}: epochs {missing} were not posted within {max_seconds} s")
            return [(posted[n] - available[n]) * 1000 for n in sorted(posted)]


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):7.1f} ms   p90 {p90:7.1f} ms   max {ordered[-1]:7.1f} ms"


async def run(args: argparse.Namespace) -> None:
    per_epoch = (20 * 1.5 + 2 * 4) / args.speed  # simulated seconds per epoch (default timings) / speed
    print(f"{args.epochs} epochs, 2 sample prompts, one every {per_epoch:.2f} s; loopback only")
    for mode in args.modes.split(","):
        latencies = await measure(mode, args.epochs, args.speed, args.max_seconds)
        print(f"{mode:>10}: {summary(latencies)}   ({len(latencies)} epochs)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--speed", type=float, default=50.0, help="simulated seconds per real second")
    parser.add_argument("--modes", default="callbacks,polling")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time cap per mode")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
