from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from bot.jobs.payer import MissingToken, resolve_payer
from bot.secretbox import SecretBox
from storage import Store
from storage.models import Payer, TokenSource

BOX = SecretBox(SecretStr("k" * 40))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = await Store.open(database_url)
    yield store
    await store.close()


async def resolve(store: Store, operator: str | None = None, simulated: bool = False):  # type: ignore[no-untyped-def]
    token = SecretStr(operator) if operator else None
    return await resolve_payer(store, BOX, guild_id=1, user_id=2, operator_token=token, simulated=simulated)


async def test_each_payer_uses_its_own_token_or_says_what_to_do(store: Store) -> None:
    with pytest.raises(MissingToken, match="CIVITAI_TOKEN"):
        await resolve(store)
    account = await resolve(store, operator="operator-token")
    assert (account.source, account.token.get_secret_value()) == (TokenSource.OPERATOR, "operator-token")

    await store.guilds.update(1, payer=Payer.SERVER)
    with pytest.raises(MissingToken, match="/admin token set"):
        await resolve(store, operator="operator-token")
    await store.guilds.set_token_ciphertext(1, BOX.encrypt("server-token"))
    assert (await resolve(store)).token.get_secret_value() == "server-token"

    await store.guilds.update(1, payer=Payer.USER)
    with pytest.raises(MissingToken, match="/account token"):
        await resolve(store)
    await store.users.set_token_ciphertext(2, BOX.encrypt("user-token"))
    account = await resolve(store)
    assert (account.source, account.token.get_secret_value()) == (TokenSource.USER, "user-token")
    assert "your linked" in account.describe()


async def test_simulated_mode_needs_no_token_and_says_so(store: Store) -> None:
    account = await resolve(store, simulated=True)
    assert account.simulated and "SIMULATED" in account.describe()
