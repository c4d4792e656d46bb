"""Seeded chaos over submission and tracking: double Confirms, prompt edits racing Confirm,
members confirming at once near a cap, caption runs (issue 15) pressed among them, submit
timeouts, 5xx, lost answers, callbacks duplicated and reordered, and a restart at a random await
point of submit or post. After every seed:

- the ledger equals what the simulator charged, per run (training or captioning) and in total;
- no workflow exists that no job or caption run follows, and none is left active or submitting;
- no cap or limit was exceeded (caption spend counts against the caps);
- every epoch message (and every end notice and DM) exists exactly once;
- what was submitted is what the member was shown on the confirmation they confirmed.

``CHAOS_SEEDS`` sets how many seeds run (200 by default), ``CHAOS_SEED`` replays one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from bot.captioning.options import CaptionOptions
from bot.errors import UserFacingError
from storage.captions import CaptionRunStatus
from storage.models import JobStatus
from tests.chaos.world import TOKEN, ChaosWorld, Draft, Killed
from tests.databases import fresh_database

SEEDS = (
    [int(os.environ["CHAOS_SEED"])]
    if "CHAOS_SEED" in os.environ
    else list(range(int(os.environ.get("CHAOS_SEEDS", "200"))))
)
USERS = (101, 102, 103)
PROMPT_SETS = (("sks dog, watercolor",), ("sks dog, neon", "sks dog, 3d"), ("sks dog", "sks cat", "sks bird"))
# Seeds run in groups so each test sets up its interpreter-level pieces once.
GROUP = 10


def groups() -> list[list[int]]:
    seeds = list(SEEDS)
    return [seeds[i : i + GROUP] for i in range(0, len(seeds), GROUP)]


@pytest.mark.parametrize("seeds", groups(), ids=lambda seeds: f"seeds{seeds[0]}-{seeds[-1]}")
async def test_money_and_posts_stay_right_under_chaos(seeds: list[int], tmp_path: Path) -> None:
    checked = crashes = 0
    for seed in seeds:
        # Each seed is a new installation: a database of its own on the suite's backend.
        with fresh_database(tmp_path / f"seed-{seed}") as database_url:
            world = ChaosWorld(seed, tmp_path / f"seed-{seed}", database_url)
            try:
                await run_seed(world)
            except AssertionError as exc:
                raise AssertionError(
                    f"chaos seed {seed} broke an invariant (crashes: {'; '.join(world.crash_log) or 'none'}, "
                    f"{world.restarts} restart(s)): {exc}\nReplay it: CHAOS_SEED={seed} "
                    "pytest tests/chaos -p no:cacheprovider -q"
                ) from exc
            finally:
                await world.close()
        checked += world.checked
        crashes += len(world.crash_log)
    # Shown with -s: the figures of a run (seeds, crashes survived, invariants checked, violations).
    print(f"chaos: {len(seeds)} seeds, {crashes} crashes, {checked} invariant checks, 0 violations")


async def run_seed(world: ChaosWorld) -> None:
    rng = world.rng
    await world.open()
    services = await world.start_process()
    # Limits near what the members will ask for.
    limit = rng.choice((1, 2))
    drafts: list[Draft] = []
    for user in USERS:
        for _ in range(rng.choice((1, 2))):
            drafts.append(await world.draft(user, rng.choice(PROMPT_SETS), steps=rng.choice((100, 150))))
    # Some members also have images to caption (4 Buzz each), counted against the same caps.
    captions: list[tuple[str, int]] = []
    for user in USERS:
        if rng.random() < 0.5:
            assert world.dataset is not None
            quote = await services.captioning.quote(
                world.requester(user), CaptionOptions.from_user("all", None, "sks"), world.dataset, {}
            )
            assert quote is not None
            captions.append((quote.run.id, user))
    prices = sorted(d.shown[d.revision][1] for d in drafts)
    daily = rng.choice((None, prices[0] + prices[-1] - 1, 3 * prices[-1]))
    monthly = rng.choice((None, sum(prices) // 2))
    await services.store.guilds.update(
        7, max_concurrent_jobs_per_user=limit, user_daily_buzz_cap=daily, guild_monthly_buzz_cap=monthly
    )
    faults = world.simulator.faults
    for _ in range(rng.randint(0, 3)):
        kind = rng.choice(("5xx", "lost", "lost-5xx", "slow", "list-5xx", "429"))
        count = rng.randint(1, 3)
        if kind == "5xx":
            faults.fail_next(count, 503, route="submit")
        elif kind == "lost":
            faults.lose_next_answer(count, route="submit")
        elif kind == "lost-5xx":
            faults.lose_next_answer(count, status=503, route="submit")
        elif kind == "slow":
            faults.slow_next(count, delay=0.05, route="submit")
        elif kind == "429":
            faults.fail_next(count, 429, route="submit")
        else:
            faults.fail_next(count, 503, route="list")
    if rng.random() < 0.5:
        faults.duplicate_callbacks(rng.randint(1, 4))
    if rng.random() < 0.5:
        faults.reorder_callbacks(rng.randint(1, 4))

    # The chaos: every member's clicks at once; maybe a crash at a random await point.
    crash_at = rng.randint(1, 40) if rng.random() < 0.7 else None
    await world.stop_process(long_outage=False)
    services = await world.start_process(crash_at, crash_after=rng.random() < 0.5)
    actions = []
    for draft in drafts:
        for _ in range(rng.choice((1, 1, 2))):  # sometimes a double click
            actions.append(confirm(world, draft))
        if rng.random() < 0.4:
            actions.append(edit(world, draft, rng.choice(PROMPT_SETS)))
    for run_id, user in captions:
        for _ in range(rng.choice((1, 1, 2))):
            actions.append(caption(world, run_id, user))
    rng.shuffle(actions)
    await run_until_killed(world, actions)

    # Runs progress and are posted about; maybe a crash between a post and its record.
    for _ in range(4):
        if world.services is None:
            services = await world.start_process(
                rng.randint(1, 30) if rng.random() < 0.3 else None, crash_after=rng.random() < 0.7
            )
        world.clock.advance(minutes=3)  # leases and graces run out, drafts may expire
        await run_until_killed(world, [follow(world, seconds=rng.choice((60, 400, 1200)))])

    # Recovery: a clean process, long after, follows everything to its end.
    if world.services is not None:
        await world.stop_process(long_outage=rng.random() < 0.5)
    services = await world.start_process()
    world.clock.advance(minutes=20)
    for _ in range(6):
        await world.simulator.advance(5000)
        await settle(world)
    for _ in range(3):  # caption runs left submitting or running are finished (a lookup may fail)
        await services.captioning.resume()
    await check_invariants(world, drafts, [run_id for run_id, _ in captions], limit, daily, monthly)


async def confirm(world: ChaosWorld, draft: Draft) -> None:
    services = world.services
    assert services is not None
    draft.confirmed.add(draft.revision)
    with contextlib.suppress(UserFacingError):
        await services.training.submit_draft(draft.job_id, draft.requester, revision=draft.revision)


async def caption(world: ChaosWorld, run_id: str, user: int) -> None:
    """Caption pressed: claimed and submitted; following it is left to the recovery at the end
    (the simulator only moves when the chaos makes it)."""
    services = world.services
    assert services is not None
    with contextlib.suppress(UserFacingError, TimeoutError):
        await asyncio.wait_for(services.captioning.run(run_id, world.requester(user)), timeout=0.5)


async def edit(world: ChaosWorld, draft: Draft, prompts: tuple[str, ...]) -> None:
    services = world.services
    assert services is not None
    with contextlib.suppress(UserFacingError):
        quote = await services.training.update_sample_prompts(draft.job_id, draft.requester, list(prompts))
        if quote is not None:
            world.saw(draft, quote)


async def follow(world: ChaosWorld, seconds: float) -> None:
    await world.simulator.advance(seconds)
    await settle(world)


async def settle(world: ChaosWorld) -> None:
    services = world.services
    assert services is not None
    await world.simulator.settle(max_wait=5)
    for _ in range(3):
        await services.tracker.reconcile()
        for job in await services.store.jobs.list_unfinished():
            await services.tracker.refresh(job.id)
        await world.simulator.settle(max_wait=5)


async def run_until_killed(world: ChaosWorld, actions: list[Coroutine[Any, Any, None]]) -> None:
    """Run ``actions`` side by side until they are done or the process died (a crash may hit a
    background task of the tracker: then nothing the actions wait for will ever come)."""
    tasks = [asyncio.ensure_future(a) for a in actions]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not all(t.done() for t in tasks) and not world.crashes.dead and loop.time() < deadline:
        await asyncio.wait(tasks, timeout=0.01)
    for task in tasks:
        if not task.done():
            task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, (Killed, asyncio.CancelledError)):
            raise result
    if world.crashes.dead:
        await world.stop_process(long_outage=world.rng.random() < 0.7)


async def check_invariants(
    world: ChaosWorld, drafts: list[Draft], caption_runs: list[str], limit: int, daily: int | None, monthly: int | None
) -> None:
    services = world.services
    assert services is not None
    store = services.store
    sim = world.simulator
    jobs = {d.job_id: await store.jobs.get(d.job_id) for d in drafts}
    by_workflow = {job.workflow_id: job for job in jobs.values() if job is not None and job.workflow_id}
    runs = [run for run in [await store.captions.get(run_id) for run_id in caption_runs] if run is not None]
    captioned = {run.workflow_id: run for run in runs if run.workflow_id}
    for run in runs:
        world.expect(run.status not in (CaptionRunStatus.SUBMITTING, CaptionRunStatus.RUNNING),
                     f"caption run {run.id} is still {run.status}")  # fmt: skip
    # Every workflow is followed by a job or a caption run; no job is left half-way.
    unfollowed = set(sim.workflows) - set(by_workflow) - set(captioned)
    world.expect(not unfollowed, f"workflows nobody follows: {unfollowed}")
    for job in jobs.values():
        assert job is not None
        world.expect(job.status is not JobStatus.SUBMITTING, f"job {job.id} is still submitting")
        world.expect(not job.status.active, f"job {job.id} is still {job.status} after its run ended")
    # The ledger is what the simulator charged, per run and in total.
    charges = sim.charges(TOKEN)

    def net_charge(workflow_id: str | None) -> float:
        mine = [c for c in charges if workflow_id and c["workflowId"] == workflow_id]
        return sum(c["amount"] if c["type"] == "debit" else -c["amount"] for c in mine)

    for job in jobs.values():
        assert job is not None
        net = net_charge(job.workflow_id)
        world.expect(await store.ledger.spent_for_job(job.id) == net, f"job {job.id}: ledger ≠ simulator ({net})")
    for run in runs:
        net = net_charge(run.workflow_id)
        world.expect(await store.captions.spent(run.id) == net, f"caption run {run.id}: ledger ≠ simulator ({net})")
    # No limit was exceeded: every run was going at once (nothing ran before the chaos ended).
    per_user: dict[int, list[float]] = {}
    for job in by_workflow.values():
        per_user.setdefault(job.user_id, []).append(await store.ledger.spent_for_job(job.id))
    for user, spent in per_user.items():
        world.expect(len(spent) <= limit, f"member {user} started {len(spent)} runs with a limit of {limit}")
    caption_spend: dict[int, float] = {}
    for run in runs:
        caption_spend[run.user_id] = caption_spend.get(run.user_id, 0.0) + await store.captions.spent(run.id)
    for user in set(per_user) | set(caption_spend):
        spent_by = sum(per_user.get(user, [])) + caption_spend.get(user, 0.0)
        world.expect(daily is None or spent_by <= daily, f"member {user} spent {spent_by} over the daily {daily}")
    total = sum(sum(v) for v in per_user.values()) + sum(caption_spend.values())
    world.expect(monthly is None or total <= monthly, f"the server spent {total} over the monthly {monthly}")
    # What was submitted is what the member saw on a confirmation they confirmed.
    for draft in drafts:
        job = jobs[draft.job_id]
        assert job is not None
        if job.workflow_id is None:
            continue
        sent = sim.workflows[job.workflow_id]["steps"][0]["input"]["samples"]["prompts"]
        seen = [draft.shown[r] for r in draft.confirmed if r in draft.shown]
        world.expect(any(tuple(sent) == prompts for prompts, _, _ in seen), f"job {job.id} sent {sent}, shown {seen}")
        charged = net_charge(job.workflow_id)
        # A price shown as an estimate (whatif unreachable) is labelled so: only a quote must match.
        shown_price = any(guess or charged == price for prompts, price, guess in seen if tuple(sent) == prompts)
        world.expect(shown_price, f"job {job.id} was charged {charged}, shown {seen}")
    # Every post exists exactly once.
    for job in by_workflow.values():
        for key in {p.key for p in world.discord.posts if p.job_id == job.id}:
            times = world.discord.count(job.id, key)
            world.expect(times == 1, f"job {job.id}: {key} posted {times}×")
        if job.status is JobStatus.SUCCEEDED:
            for epoch in (1, 2):
                times = world.discord.count(job.id, f"epoch:{epoch}")
                world.expect(times == 1, f"job {job.id}: epoch {epoch} posted {times}×")
