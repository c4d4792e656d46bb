"""Load on the whole bot: many members confirming at once, then a thousand runs to follow.

    PYTHONPATH=. python benchmarks/load_bench.py [--members 50] [--runs 1000] [--images 6]
        [--image-side 1024] [--speed 1] [--mode real|simulated]

Everything runs on 127.0.0.1: the stage (the fake Discord of the tests) in this process, the
orchestrator simulator as its own process (``python -m bot.civitai.simulator``) and the bot as
``python -m bot`` in real mode against it (CIVITAI_TOKEN, ORCHESTRATOR_URL; no PUBLIC_URL, so
datasets go up as blobs and runs are followed by long-polling).

1. ``--members`` members run ``/train flux1`` with a zip of ``--images`` photos at once, wait for
   their confirmation, then all press Confirm at once. Meanwhile a canary member runs ``/help``
   every 250 ms. Printed: the canary's acknowledgement p99 and max while the checks run and
   while the Confirms run, the time to each confirmation, Confirm → job card p50/p99 and the
   bot's RSS. Targets: canary ack p99 ≤ 0.5 s during the Confirms.
2. ``--runs`` more long runs are seeded: submitted to the simulator through the orchestrator
   client and recorded in the bot's database as submitted jobs. The bot's next reconcile pass
   picks them up and follows them all. Printed: RSS per followed run (bot RSS after the pass,
   settled, minus before seeding) and the event-loop lag p99 during the pass, read from the
   bot's own ``lorabot_event_loop_lag_seconds`` histogram on /metrics (bucket bounds, so "≤").
   Targets: ≤ 0.2 MiB per followed run; loop lag p99 ≤ 100 ms.

``--mode simulated`` runs phase 1 only, against the bot's in-process simulator (simulated mode,
``CIVITAI_MODE=simulate``): the simulator's own work then shares the bot's loop and memory, and
the bot's RSS growth per run is printed (``--settle`` seconds after the Confirms: datasets loaded).

Figures only: nothing here asserts. Bounded by ``--max-seconds`` per wait.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import io
import json
import math
import os
import re
import socket
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.civitai.client import OrchestratorClient  # noqa: E402
from bot.civitai.models import BlobsTrainingData, BlobTrainingItem  # noqa: E402
from bot.civitai.training import build_training_input, training_workflow  # noqa: E402
from storage import Store  # noqa: E402
from storage.models import NewJob, Payer, TokenSource, Variant  # noqa: E402
from tests.dataset_helpers import image_bytes  # noqa: E402
from tests.stage import Attachment, Stage, StageMember  # noqa: E402
from tests.stage.bots import BotProcess  # noqa: E402
from tests.stage.interactions import StageError  # noqa: E402
from tests.stage.model import Message  # noqa: E402
from tests.stage.world import GuildSpec, MemberSpec, StageConfig  # noqa: E402

T = TypeVar("T")
TOKEN = "load-bench-operator-token"
CANARY_EVERY = 0.25
LAG_METRIC = "lorabot_event_loop_lag_seconds"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU time (user + system) of a process, or of one of its threads (the loop's is ``pid``)."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def dataset_zip(images: int, side: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for n in range(images):
            archive.writestr(f"photos/img{n}.jpg", image_bytes(size=(side, side * 3 // 4)))
            archive.writestr(f"photos/img{n}.txt", f"a photo of sks dog, pose {n}")
    return out.getvalue()


@contextlib.asynccontextmanager
async def simulator_process(port: int, speed: float, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.civitai.simulator", "--port", str(port), "--speed", str(speed),
            "--balance", str(10**9), cwd=ROOT, stdout=out, stderr=out,
        )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    await client.get(f"http://127.0.0.1:{port}/v2/consumer/workflows/none")
                    break
                await asyncio.sleep(0.05)
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


# --- phase 1: members confirming at once, the canary asking for help ---------------------------


MISSED: list[object] = []  # interactions that got no answer within Discord's 3 s


def set_aside_failures(stage: Stage) -> None:
    """A missed deadline is a figure here, not an error: keep it out of the stage's next check."""
    MISSED.extend(stage.take_failed_interactions())


async def act(stage: Stage, action: Callable[[], Awaitable[T]]) -> T | None:
    set_aside_failures(stage)
    try:
        return await action()
    except StageError as exc:
        print(f"  (a member's action failed: {str(exc).splitlines()[0]})")
        return None


@dataclass
class Canary:
    member: StageMember
    acks: list[tuple[float, float]] = field(default_factory=list)  # (sent at, seconds to the ack)
    unanswered: int = 0

    async def run(self, stage: Stage, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            handle = await act(stage, lambda: self.member.slash("help"))
            try:
                if handle is None:
                    raise TimeoutError
                await stage.wait_for(
                    lambda record=handle.record: record.response_type, "the canary's ack", timeout=10,
                    fail_on_problems=False,
                )
                self.acks.append((started, time.perf_counter() - started))
            except (TimeoutError, StageError):
                self.unanswered += 1
            await asyncio.sleep(max(0.0, CANARY_EVERY - (time.perf_counter() - started)))

    def during(self, start: float, end: float) -> list[float]:
        return [seconds for sent, seconds in self.acks if start <= sent <= end]


async def wait_each(
    stage: Stage, members: list[StageMember], owner: Callable[[Message], int | None], seconds: float
) -> dict[int, tuple[float, Message]]:
    """When each member's message (as ``owner`` tells) first showed, and the message: one watcher
    for all, looking only at messages new or changed since its last look (the stage shares this
    process: a costly watcher would slow Discord itself down)."""
    wanted = {member.id for member in members}
    seen: dict[int, tuple[float, Message]] = {}
    last = 0

    def check() -> bool | None:
        nonlocal last
        now, newest = time.perf_counter(), last
        for message in list(stage.messages.values()):
            if message.revision > last:
                newest = max(newest, message.revision)
                who = owner(message)
                if who in wanted and who not in seen:
                    seen[who] = (now, message)
        last = newest
        return True if len(seen) == len(wanted) else None

    with contextlib.suppress(StageError):
        await stage.wait_for(check, "every member", timeout=seconds, fail_on_problems=False)
    return seen


def confirmation_owner(message: Message) -> int | None:
    if message.visible_to is None or message.deleted or message.loading:
        return None
    confirm = any(b.get("label") == "Confirm" and not b.get("disabled") for b in message.buttons)
    return message.visible_to if confirm else None


MENTION = re.compile(r"<@(\d+)>")


def card_owner(channel_id: int) -> Callable[[Message], int | None]:
    def owner(message: Message) -> int | None:
        if message.channel_id != channel_id or not message.embeds:
            return None
        found = MENTION.search(json.dumps(message.embeds))
        return int(found.group(1)) if found else None

    return owner


def last_seen_by(stage: Stage, member_id: int) -> str:
    """The text of the latest message only ``member_id`` sees (what a missing card left them with)."""
    theirs = [m for m in stage.messages.values() if m.visible_to == member_id]
    return max(theirs, key=lambda m: m.revision).text[:300] if theirs else "(nothing)"


async def confirm_storm(
    stage: Stage, members: list[StageMember], canary: Canary, args: argparse.Namespace, pid: int
) -> float:
    """Returns the bot's RSS once every dataset was checked, just before the Confirms."""
    data = dataset_zip(args.images, args.image_side)
    start, loop_cpu, all_cpu = time.perf_counter(), cpu_seconds(pid, pid), cpu_seconds(pid)
    for member in members:
        await act(stage, functools.partial(
            member.slash, "train flux1", dataset=Attachment("dog.zip", data), trigger_word="sks", steps=args.steps
        ))
    shown = await wait_each(stage, members, confirmation_owner, args.max_seconds)
    checks_done = time.perf_counter()
    to_confirmation = [at - start for at, _ in shown.values()]

    prompts = {member_id: message for member_id, (_, message) in shown.items()}
    checked_rss = rss_mib(pid)
    checks_cpu = cpu_seconds(pid, pid) - loop_cpu, cpu_seconds(pid) - all_cpu
    clicks_at, loop_cpu, all_cpu = time.perf_counter(), cpu_seconds(pid, pid), cpu_seconds(pid)
    stage_cpu = time.process_time()
    clicks = [functools.partial(m.click, prompt, label="Confirm") for m in members if (prompt := prompts.get(m.id))]
    await asyncio.gather(*(act(stage, click) for click in clicks))
    confirmed = [m for m in members if m.id in prompts]
    cards = await wait_each(stage, confirmed, card_owner(stage.channel("general").id), args.max_seconds)
    done = time.perf_counter()
    confirms_cpu = cpu_seconds(pid, pid) - loop_cpu, cpu_seconds(pid) - all_cpu
    stage_cpu = time.process_time() - stage_cpu
    to_card = [at - clicks_at for at, _ in cards.values()]

    print(f"phase 1: {len(members)} members, /train with {args.images} photos of {args.image_side} px, then Confirm")
    print(f"  confirmations shown : {len(shown)}/{len(members)}; time to confirmation p50 "
          f"{statistics.median(to_confirmation):.2f} s, max {max(to_confirmation):.2f} s" if to_confirmation else "")
    if to_card:
        print(f"  job cards           : {len(cards)}/{len(prompts)}; Confirm → card p50 "
              f"{quantile(to_card, 0.5):.2f} s, p99 {quantile(to_card, 0.99):.2f} s, max {max(to_card):.2f} s")
    for member in (m for m in confirmed if m.id not in cards):
        print(f"  no card for {member.name}; the last thing they saw: {last_seen_by(stage, member.id)!r}")
    for label, acks in (("checks", canary.during(start, checks_done)), ("Confirms", canary.during(clicks_at, done))):
        if acks:
            p99 = quantile(acks, 0.99)
            target = f"  (target ≤ 0.5 s: {'met' if p99 <= 0.5 else 'NOT met'})" if label == "Confirms" else ""
            print(f"  canary /help during the {label:8s}: {len(acks)} acks, p99 {p99:.3f} s, max {max(acks):.3f} s"
                  + target)
    set_aside_failures(stage)
    print(f"  interactions that missed Discord's 3 s: {len(MISSED)}; canary unanswered: {canary.unanswered}")
    for label, (on_loop, in_all) in (("check", checks_cpu), ("Confirm", confirms_cpu)):
        print(f"  bot CPU per {label:7s}: {on_loop / len(members) * 1000:6.1f} ms on the event loop's thread, "
              f"{in_all / len(members) * 1000:6.1f} ms in all threads")
    print(f"  this process (the stage: Discord for {len(members) + 1} members, spec-checking every request) used "
          f"{stage_cpu:.1f} s of CPU in the {done - clicks_at:.1f} s of the Confirms")
    print(f"  bot RSS with every dataset checked, before the Confirms: {checked_rss:.1f} MiB")
    return checked_rss


# --- phase 2: a thousand runs followed ------------------------------------------------------------


async def seed_runs(sim_url: str, database: Path, guild_id: int, channel_id: int, count: int) -> None:
    """``count`` long runs: submitted to the simulator, recorded as submitted jobs in the bot's store."""
    async with OrchestratorClient(sim_url) as client:
        session = client.session(TOKEN)
        blobs = [await session.upload_blob(image_bytes(size=(256, 256)), filename=f"i{n}.jpg",
                                           content_type="image/jpeg") for n in range(3)]
        data = BlobsTrainingData(items=[BlobTrainingItem(air=b.air, caption="sks dog") for b in blobs])
        training = build_training_input(data, steps=2000, epochs=10, trigger_word="sks")
        store = await Store.open(database)
        limit = asyncio.Semaphore(16)

        async def one(n: int) -> None:
            async with limit:
                workflow = await session.submit(training_workflow(training, external_id=f"load-bench-{n}"))
                job = await store.jobs.create(NewJob(
                    guild_id=guild_id, channel_id=channel_id, user_id=900_000 + n, name=f"seeded-{n}",
                    variant=Variant.DEV, params={"steps": 2000, "epochs": 10}, dataset_digest="ab" * 32,
                    image_count=3, payer=Payer.OPERATOR, token_source=TokenSource.OPERATOR,
                ))
                await store.jobs.claim_for_submit(job.id)
                await store.jobs.mark_submitted(job.id, str(workflow.id), None)

        try:
            await asyncio.gather(*(one(n) for n in range(count)))
        finally:
            await store.close()


def histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of an unlabelled histogram on a /metrics page."""
    buckets = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[math.inf if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def counter(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> tuple[float, int]:
    """The bucket bound under which a fraction ``q`` of the samples taken between two scrapes fell."""
    delta = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = delta[math.inf]
    for bound, cumulative in delta.items():
        if cumulative >= q * total:
            return bound, int(total)
    return math.inf, int(total)


async def follow_many(bot: BotProcess, metrics_url: str, sim_url: str, stage: Stage, args: argparse.Namespace) -> None:
    assert bot.process is not None
    pid = bot.process.pid
    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.sleep(args.settle)
        before_rss = rss_mib(pid)
        general = stage.channel("general")
        await seed_runs(sim_url, bot.data_dir / "bot.sqlite3", stage.guild.id, general.id, args.runs)
        page = (await http.get(metrics_url)).text
        refreshes_at_seed = counter(page, "lorabot_refresh_seconds_count")
        unfinished = args.runs + args.members
        # The next reconcile pass follows the new jobs, each refreshed at once: wait for that many.
        lag_before = histogram(page, LAG_METRIC)
        started = time.perf_counter()
        while True:
            page = (await http.get(metrics_url)).text
            if counter(page, "lorabot_refresh_seconds_count") - refreshes_at_seed >= args.runs:
                break
            if time.perf_counter() - started > args.max_seconds + args.reconcile_interval:
                print(f"  (the reconcile pass did not finish within {args.max_seconds:g} s)")
                break
            await asyncio.sleep(0.5)
        pass_seconds = time.perf_counter() - started
        lag_after = histogram(page, LAG_METRIC)
        await asyncio.sleep(args.settle)  # the pollers started by the pass settle into their long-polls
        after_rss = rss_mib(pid)
    lag_p99, samples = bucket_quantile(lag_before, lag_after, 0.99)
    per_run = (after_rss - before_rss) / args.runs
    print(f"phase 2: {args.runs} more runs seeded (simulator + store), followed by the reconcile pass")
    print(f"  reconcile pass      : observed within {pass_seconds:.1f} s (pass interval {args.reconcile_interval:g} s)")
    print(f"  bot RSS             : {before_rss:.1f} MiB before seeding, {after_rss:.1f} MiB following "
          f"{unfinished} runs")
    print(f"  RSS per followed run: {per_run:.3f} MiB  (target ≤ 0.2: {'met' if per_run <= 0.2 else 'NOT met'})")
    print(f"  loop lag p99        : ≤ {lag_p99 * 1000:g} ms over {samples} samples during the pass "
          f"(target ≤ 100 ms: {'met' if lag_p99 <= 0.1 else 'NOT met'})")


async def run(args: argparse.Namespace) -> None:
    names = [f"m{n:02d}" for n in range(args.members)]
    world = GuildSpec(members=(*(MemberSpec(name) for name in names), MemberSpec("canary")))
    config = StageConfig(guilds=(world,), wait_timeout_seconds=args.max_seconds)
    sim_port, http_port = free_port(), free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    simulated = args.mode == "simulated"
    if simulated:
        orchestrator = {"CIVITAI_MODE": "simulate", "SIMULATOR_SPEED": str(args.speed)}
    else:
        orchestrator = {"CIVITAI_MODE": "real", "CIVITAI_TOKEN": TOKEN, "ORCHESTRATOR_URL": sim_url}
    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            if not simulated:
                await stack.enter_async_context(simulator_process(sim_port, args.speed, Path(tmp) / "simulator.log"))
            stage = await stack.enter_async_context(Stage(config))
            bot = BotProcess(
                stage, Path(tmp) / "bot", **orchestrator, HTTP_PORT=str(http_port), COMMAND_COOLDOWN_SECONDS="0",
                RECONCILE_INTERVAL_SECONDS=str(args.reconcile_interval), LOG_LEVEL="WARNING",
            )
            await bot.start()
            try:
                assert bot.process is not None
                at_start = rss_mib(bot.process.pid)
                print(f"bot RSS after start: {at_start:.1f} MiB ({args.mode} mode)")
                members = [stage.member(name) for name in names]
                canary = Canary(stage.member("canary"))
                stop = asyncio.Event()
                canary_task = asyncio.create_task(canary.run(stage, stop))
                try:
                    checked_rss = await confirm_storm(stage, members, canary, args, bot.process.pid)
                finally:
                    stop.set()
                    await canary_task
                print(f"  bot RSS after the Confirms: {rss_mib(bot.process.pid):.1f} MiB")
                if simulated:
                    await asyncio.sleep(args.settle)
                    grown = rss_mib(bot.process.pid) - checked_rss
                    print(f"  bot RSS {args.settle:g} s later: +{grown:.1f} MiB since the datasets were checked, "
                          f"{grown / args.members:.2f} MiB per submitted, followed run (simulator included)")
                elif args.runs:
                    await follow_many(bot, f"http://127.0.0.1:{http_port}/metrics", sim_url, stage, args)
            finally:
                await bot.stop()
                for problem in stage.take_bot_errors()[:5]:
                    print(f"  bot error: {problem}")
                stage.take_violations()
                stage.take_errors()
                stage.take_failed_interactions()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=50, help="members pressing Confirm at once")
    parser.add_argument("--runs", type=int, default=1000, help="runs seeded for phase 2 (0: skip it)")
    parser.add_argument("--images", type=int, default=6, help="photos in each member's dataset")
    parser.add_argument("--image-side", type=int, default=1024, help="long side of those photos")
    parser.add_argument("--speed", type=float, default=1.0, help="simulator speed (1: runs take an hour)")
    parser.add_argument("--reconcile-interval", type=float, default=20.0, help="the bot's RECONCILE_INTERVAL_SECONDS")
    parser.add_argument("--max-seconds", type=float, default=180.0, help="longest wait for any one step")
    parser.add_argument("--mode", choices=("real", "simulated"), default="real")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps of each member's run (default 2000; 1500 simulated, where the in-process "
                             "simulator's account holds 100,000 Buzz: 50 × 2,120 would run out)")
    parser.add_argument("--settle", type=float, default=10.0, help="wait before reading the RSS")
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 1500 if args.mode == "simulated" else 2000
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
