"""Guild settings (defaults → override), channels, blocks, and member settings."""

from __future__ import annotations

import pytest

from storage import Store
from storage.models import GuildDefaults, Payer, ThreadMode
from tests.storage.conftest import ADMIN, CHANNEL, GUILD, OTHER_GUILD, USER, FakeClock


async def test_guild_without_row_gets_the_global_defaults(store: Store) -> None:
    settings = await store.guilds.get(GUILD)
    assert settings.max_concurrent_jobs_per_user == 2
    assert settings.payer is Payer.OPERATOR
    assert settings.thread_mode is ThreadMode.PUBLIC
    assert settings.user_daily_buzz_cap is None and settings.guild_monthly_buzz_cap is None
    assert settings.max_steps is None and settings.max_epochs is None
    assert settings.required_role_id is None and settings.log_channel_id is None
    assert settings.cooldown_seconds == 10.0
    assert not settings.has_server_token
    assert settings.overridden == frozenset()


async def test_defaults_come_from_the_store_configuration(database_url: str) -> None:
    store = await Store.open(database_url, defaults=GuildDefaults(max_concurrent_jobs_per_user=5, cooldown_seconds=3))
    try:
        settings = await store.guilds.get(GUILD)
        assert settings.max_concurrent_jobs_per_user == 5
        assert settings.cooldown_seconds == 3
    finally:
        await store.close()


async def test_overrides_apply_per_guild_and_none_resets_to_default(store: Store) -> None:
    updated = await store.guilds.update(
        GUILD,
        payer="server",
        thread_mode=ThreadMode.PRIVATE,
        max_steps=3000,
        user_daily_buzz_cap=5000,
        log_channel_id=CHANNEL,
    )
    assert updated.payer is Payer.SERVER
    assert updated.thread_mode is ThreadMode.PRIVATE
    assert updated.max_steps == 3000
    assert updated.user_daily_buzz_cap == 5000
    assert updated.log_channel_id == CHANNEL
    assert updated.max_concurrent_jobs_per_user == 2  # untouched: still the default
    assert updated.overridden == {"payer", "thread_mode", "max_steps", "user_daily_buzz_cap", "log_channel_id"}
    assert (await store.guilds.get(OTHER_GUILD)).payer is Payer.OPERATOR

    reset = await store.guilds.update(GUILD, payer=None, max_steps=None)
    assert reset.payer is Payer.OPERATOR
    assert reset.max_steps is None
    assert reset.thread_mode is ThreadMode.PRIVATE
    assert "payer" not in reset.overridden


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"colour": "blue"}, TypeError),
        ({"max_steps": "100"}, TypeError),
        ({"max_steps": True}, TypeError),
        ({"max_steps": 0}, ValueError),
        ({"max_concurrent_jobs_per_user": 0}, ValueError),
        ({"guild_monthly_buzz_cap": -1}, ValueError),
        ({"payer": "nobody"}, ValueError),
        ({"thread_mode": "secret"}, ValueError),
        ({"cooldown_seconds": -1}, ValueError),
    ],
)
async def test_bad_settings_are_refused_and_nothing_is_written(
    store: Store, fields: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await store.guilds.update(GUILD, **fields)
    assert (await store.guilds.get(GUILD)).overridden == frozenset()


async def test_server_token_ciphertext(store: Store) -> None:
    assert await store.guilds.get_token_ciphertext(GUILD) is None
    assert not await store.guilds.any_server_token()
    await store.guilds.set_token_ciphertext(GUILD, "gAAAA-ciphertext")
    assert await store.guilds.get_token_ciphertext(GUILD) == "gAAAA-ciphertext"
    assert (await store.guilds.get(GUILD)).has_server_token
    assert await store.guilds.any_server_token()
    assert await store.guilds.clear_token(GUILD)
    assert not await store.guilds.clear_token(GUILD)
    assert await store.guilds.get_token_ciphertext(GUILD) is None
    assert not (await store.guilds.get(GUILD)).has_server_token


async def test_channels(store: Store) -> None:
    assert await store.guilds.channel_allowed(GUILD, 1)  # no list: everywhere
    assert await store.guilds.add_channel(GUILD, 10)
    assert not await store.guilds.add_channel(GUILD, 10)
    assert await store.guilds.add_channel(GUILD, 20)
    await store.guilds.add_channel(OTHER_GUILD, 30)
    assert await store.guilds.list_channels(GUILD) == [10, 20]
    assert await store.guilds.channel_allowed(GUILD, 10)
    assert not await store.guilds.channel_allowed(GUILD, 30)
    assert await store.guilds.remove_channel(GUILD, 10)
    assert not await store.guilds.remove_channel(GUILD, 10)
    assert await store.guilds.list_channels(GUILD) == [20]
    assert await store.guilds.clear_channels(GUILD) == 1
    assert await store.guilds.list_channels(GUILD) == []
    assert await store.guilds.channel_allowed(GUILD, 10)
    assert await store.guilds.list_channels(OTHER_GUILD) == [30]


async def test_blocks(store: Store, clock: FakeClock) -> None:
    assert not await store.guilds.is_blocked(GUILD, USER)
    block = await store.guilds.block(GUILD, USER, by=ADMIN, reason="spam")
    assert block.blocked_at == clock.now
    assert await store.guilds.is_blocked(GUILD, USER)
    assert not await store.guilds.is_blocked(OTHER_GUILD, USER)
    clock.advance(minutes=5)
    await store.guilds.block(GUILD, USER, by=ADMIN, reason="still spam")
    [listed] = await store.guilds.list_blocked(GUILD)
    assert (listed.user_id, listed.blocked_by, listed.reason, listed.blocked_at) == (
        USER,
        ADMIN,
        "still spam",
        clock.now,
    )
    assert await store.guilds.unblock(GUILD, USER)
    assert not await store.guilds.unblock(GUILD, USER)
    assert await store.guilds.list_blocked(GUILD) == []


async def test_user_settings_defaults_and_changes(store: Store, clock: FakeClock) -> None:
    fresh = await store.users.get(USER)
    assert fresh.dm_notify is True and fresh.has_token is False and fresh.updated_at is None
    off = await store.users.set_dm_notify(USER, False)
    assert off.dm_notify is False and off.updated_at == clock.now
    await store.users.set_token_ciphertext(USER, "gAAAA-user")
    settings = await store.users.get(USER)
    assert settings.has_token and settings.dm_notify is False  # the token did not reset dm_notify
    assert await store.users.get_token_ciphertext(USER) == "gAAAA-user"
    assert await store.users.clear_token(USER)
    assert not await store.users.clear_token(USER)
    assert await store.users.get_token_ciphertext(USER) is None
    assert (await store.users.get(ADMIN)).dm_notify is True
