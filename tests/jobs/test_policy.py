"""The training policy against a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.clock import Clock
from bot.jobs.policy import Cooldowns, Member, TrainingPolicy, TrainingRefused
from storage import Store
from storage.models import NewJob, Payer, TokenSource, Variant

GUILD, ALICE, ROLE, CHANNEL, OTHER_CHANNEL = 1, 10, 100, 1000, 2000


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = await Store.open(database_url)
    yield store
    await store.close()


def alice(channel: int = CHANNEL, roles: frozenset[int] = frozenset(), parent: int | None = None) -> Member:
    return Member(user_id=ALICE, role_ids=roles, channel_id=channel, parent_channel_id=parent)


async def submitted_job(store: Store, price: float = 2000) -> None:
    job = await store.jobs.create(
        NewJob(
            guild_id=GUILD,
            channel_id=CHANNEL,
            user_id=ALICE,
            name="run",
            variant=Variant.DEV,
            params={},
            dataset_digest="d" * 64,
            image_count=10,
            payer=Payer.OPERATOR,
            token_source=TokenSource.OPERATOR,
        )
    )
    assert await store.jobs.claim_for_submit(job.id)
    await store.jobs.mark_submitted(job.id, f"wf-{job.id}", price)


async def refusal(coro: object) -> str:
    with pytest.raises(TrainingRefused) as info:
        await coro  # type: ignore[misc]
    return info.value.user_message


async def test_defaults_allow_anyone_anywhere(store: Store) -> None:
    settings = await TrainingPolicy(store, Clock()).check_member(GUILD, alice())
    assert settings.max_concurrent_jobs_per_user == 2


async def test_block_channel_and_role(store: Store) -> None:
    policy = TrainingPolicy(store, Clock())
    await store.guilds.block(GUILD, ALICE, by=1)
    assert "blocked you" in await refusal(policy.check_member(GUILD, alice()))
    await store.guilds.unblock(GUILD, ALICE)

    await store.guilds.add_channel(GUILD, OTHER_CHANNEL)
    assert f"<#{OTHER_CHANNEL}>" in await refusal(policy.check_member(GUILD, alice()))
    await policy.check_member(GUILD, alice(channel=5, parent=OTHER_CHANNEL))  # a thread inside it is fine
    await store.guilds.clear_channels(GUILD)

    await store.guilds.update(GUILD, required_role_id=ROLE)
    assert f"<@&{ROLE}>" in await refusal(policy.check_member(GUILD, alice()))
    await policy.check_member(GUILD, alice(roles=frozenset({ROLE})))


async def test_concurrency_limit(store: Store) -> None:
    policy = TrainingPolicy(store, Clock())
    await store.guilds.update(GUILD, max_concurrent_jobs_per_user=1)
    await policy.check_member(GUILD, alice())
    await submitted_job(store)
    message = await refusal(policy.check_member(GUILD, alice()))
    assert "1 run(s) going" in message and "allows 1" in message


async def test_size_caps_name_the_limit(store: Store) -> None:
    settings = await store.guilds.update(GUILD, max_steps=1500, max_epochs=5)
    TrainingPolicy.check_size(settings, steps=1500, epochs=5)
    with pytest.raises(TrainingRefused, match="at most 1500 steps"):
        TrainingPolicy.check_size(settings, steps=2000, epochs=5)
    with pytest.raises(TrainingRefused, match="at most 5 epochs"):
        TrainingPolicy.check_size(settings, steps=100, epochs=10)


async def test_budgets_say_cap_spent_and_reset(store: Store) -> None:
    policy = TrainingPolicy(store, Clock())
    settings = await store.guilds.update(GUILD, user_daily_buzz_cap=3000, guild_monthly_buzz_cap=10_000)
    await policy.check_budget(settings, ALICE, 3000)
    await submitted_job(store, price=2000)
    message = await refusal(policy.check_budget(settings, ALICE, 2000))
    assert "3,000 Buzz per day" in message and "spent 2,000 today" in message and "<t:" in message
    # The guild cap counts everyone's spend.
    settings = await store.guilds.update(GUILD, user_daily_buzz_cap=None, guild_monthly_buzz_cap=3500)
    message = await refusal(policy.check_budget(settings, 99, 2000))
    assert "3,500 Buzz per month" in message and "2,000 has been spent" in message


def test_cooldown_reports_time_left() -> None:
    clock = Clock()
    cooldowns = Cooldowns(clock)
    cooldowns.hit("train flux1", GUILD, ALICE, 30)
    with pytest.raises(TrainingRefused, match=r"again in (29|30) s"):
        cooldowns.hit("train flux1", GUILD, ALICE, 30)
    cooldowns.hit("train flux1", GUILD, 11, 30)  # someone else is not slowed down
    clock.advance(seconds=31)
    cooldowns.hit("train flux1", GUILD, ALICE, 30)
    assert clock.now() > datetime.now(UTC)
