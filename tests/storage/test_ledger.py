"""The spend ledger: charges at submit, settlement to the final cost, sums per period."""

from __future__ import annotations

from datetime import timedelta

from storage import Store
from storage.models import Payer
from tests.storage.conftest import GUILD, OTHER_GUILD, OTHER_USER, USER, FakeClock, new_job


async def submit(store: Store, price: float, **changes: object) -> str:
    job = await store.jobs.create(new_job(**changes))
    await store.jobs.claim_for_submit(job.id)
    await store.jobs.mark_submitted(job.id, f"wf-{job.id}", price)
    return job.id


async def test_spend_per_user_and_guild_per_period(store: Store, clock: FakeClock) -> None:
    day1 = clock.now
    await submit(store, 2000)
    await submit(store, 1700, user_id=OTHER_USER)
    clock.advance(days=1)
    day2 = clock.now
    await submit(store, 1800)
    await submit(store, 5000, guild_id=OTHER_GUILD)

    assert await store.ledger.spent_by_user(GUILD, USER, day1) == 3800
    assert await store.ledger.spent_by_user(GUILD, USER, day2) == 1800
    assert await store.ledger.spent_by_user(GUILD, USER, day2 + timedelta(seconds=1)) == 0
    assert await store.ledger.spent_by_guild(GUILD, day1) == 5500
    assert await store.ledger.spent_by_guild(GUILD, day2) == 1800
    assert await store.ledger.spent_by_guild(OTHER_GUILD, day1) == 5000
    usage = await store.ledger.usage_by_user(GUILD, day1)
    assert [(u.user_id, u.spent, u.jobs) for u in usage] == [(USER, 3800, 2), (OTHER_USER, 1700, 1)]


async def test_settlement_replaces_the_submit_price_in_the_submit_period(store: Store, clock: FakeClock) -> None:
    day1 = clock.now
    job_id = await submit(store, 2000)
    clock.advance(days=1)
    day2 = clock.now
    assert await store.ledger.settle(job_id, 1900, credits=100)
    assert await store.ledger.spent_for_job(job_id) == 1800
    assert await store.ledger.spent_by_user(GUILD, USER, day1) == 1800
    assert await store.ledger.spent_by_user(GUILD, USER, day2) == 0  # stays on the day it was submitted
    # Settling again (a later refresh with a corrected cost) replaces, never adds.
    assert await store.ledger.settle(job_id, 2100)
    assert await store.ledger.spent_for_job(job_id) == 2100
    assert (await store.jobs.get(job_id)).final_cost == 2100  # type: ignore[union-attr]
    assert [(u.spent, u.jobs) for u in await store.ledger.usage_by_user(GUILD, day1)] == [(2100, 1)]
    assert not await store.ledger.settle("missing", 1)


async def test_a_failed_job_refunded_in_full_costs_nothing(store: Store, clock: FakeClock) -> None:
    job_id = await submit(store, 2000)
    await store.ledger.settle(job_id, 2000, credits=2000)
    assert await store.ledger.spent_by_user(GUILD, USER, clock.now) == 0


async def test_a_job_is_charged_once(store: Store, clock: FakeClock) -> None:
    job_id = await submit(store, 2000)
    assert not await store.ledger.charge(GUILD, USER, job_id, Payer.OPERATOR, 2000)
    assert await store.ledger.charge(GUILD, USER, None, Payer.OPERATOR, 50)  # not tied to a job
    assert await store.ledger.spent_by_user(GUILD, USER, clock.now) == 2050


async def test_payer_filter(store: Store, clock: FakeClock) -> None:
    await submit(store, 2000, payer=Payer.SERVER)
    await submit(store, 1600, payer=Payer.USER)
    assert await store.ledger.spent_by_guild(GUILD, clock.now, payer=Payer.SERVER) == 2000
    assert await store.ledger.spent_by_user(GUILD, USER, clock.now, payer=Payer.USER) == 1600
    assert await store.ledger.spent_by_user(GUILD, USER, clock.now) == 3600
