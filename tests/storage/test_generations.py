"""Generations in the store: one claim per draft, a reservation that caps see at once, and the
charge that follows the submit's price."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

from storage import Store
from storage.generations import GenerationKind, GenerationRepository, NewGeneration
from storage.models import ClaimRefusal, Payer, SubmitLimits, TokenSource
from storage.shards import ShardScope, shard_of
from tests.storage.conftest import CHANNEL, GUILD, USER

SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def draft(price: float) -> NewGeneration:
    return NewGeneration(
        guild_id=GUILD, channel_id=CHANNEL, user_id=USER, job_id=None, kind=GenerationKind.GENERATE,
        params={"prompt": "sks"}, payer=Payer.USER, token_source=TokenSource.USER, price_estimate=price,
        price_quoted=price, simulated=False,
    )  # fmt: skip


def daily_cap(cap: float) -> SubmitLimits:
    return SubmitLimits(max_active=None, daily_cap=cap, day_start=SINCE, monthly_cap=None, month_start=SINCE)


async def test_two_confirms_near_the_daily_cap_never_both_pass(store: Store) -> None:
    repo = GenerationRepository(store.db)
    first, second = await repo.create(draft(30)), await repo.create(draft(30))
    claims = await asyncio.gather(repo.claim(first.id, daily_cap(50)), repo.claim(second.id, daily_cap(50)))
    assert sorted(str(c.refusal) for c in claims) == ["None", str(ClaimRefusal.DAILY_CAP)]
    assert await store.ledger.spent_by_user(GUILD, USER, SINCE) == 30, "the reservation counts at once"


async def test_one_claim_per_draft_and_the_charge_follows_the_submit(store: Store) -> None:
    repo = GenerationRepository(store.db)
    generation = await repo.create(draft(12))
    first, again = await asyncio.gather(repo.claim(generation.id), repo.claim(generation.id))
    assert [first.refusal, again.refusal].count(None) == 1
    assert await repo.release_claim(generation.id)
    assert await repo.spent(generation.id) == 0, "a released claim leaves nothing reserved"
    assert (await repo.claim(generation.id)).refusal is None
    submitted = await repo.mark_submitted(generation.id, "wf-1", 9)
    assert submitted is not None and submitted.price_charged == 9
    assert await repo.spent(generation.id) == 9
    assert await repo.mark_submitted(generation.id, "wf-1", 9) is not None, "repeating it changes nothing"
    assert await repo.spent(generation.id) == 9


async def test_a_process_takes_up_only_its_own_shards_unfinished_generations(store: Store) -> None:
    repo = GenerationRepository(store.db)
    theirs_guild = next(g for g in range(GUILD, GUILD + (4 << 22), 1 << 22) if shard_of(g, 2) != shard_of(GUILD, 2))
    ours = await repo.create(draft(5))
    theirs = await repo.create(replace(draft(5), guild_id=theirs_guild))
    for generation in (ours, theirs):
        assert (await repo.claim(generation.id)).refusal is None  # submitting: unfinished
    scope = ShardScope(2, frozenset({shard_of(GUILD, 2)}))
    assert [g.id for g in await repo.unfinished(scope)] == [ours.id]
    assert {g.id for g in await repo.unfinished()} == {ours.id, theirs.id}
