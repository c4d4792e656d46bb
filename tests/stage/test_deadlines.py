"""Discord's clocks: 3 s for the first answer, one answer only, 15 min for the interaction token."""

from __future__ import annotations

import aiohttp

from bot.app import TrainerBot
from tests.stage import Stage, StageMember


async def test_a_late_answer_is_a_failed_interaction(stage: Stage, probe_bot: TrainerBot, alice: StageMember) -> None:
    ix = await alice.slash("probe late")  # answers after a short sleep…
    stage.clock.advance(seconds=4)  # …which, on the stage's clock, is past the 3 s deadline

    failed = await stage.wait_failed_interaction()
    assert failed.description == "/probe late" and failed.user == "alice"
    assert "3 s" in failed.reason and ix.failed
    # The late answer got 404 10062 Unknown interaction, as on Discord, and the bot logged it.
    logged = await stage.wait_bot_error("Unknown interaction")
    assert "/probe late" in logged
    callbacks = [r.status for r in stage.requests if r.route.endswith("/callback")]
    assert callbacks and set(callbacks) == {404}


async def test_a_second_initial_response_is_refused_with_40060(
    stage: Stage, bot_on_stage: TrainerBot, alice: StageMember, http: aiohttp.ClientSession
) -> None:
    ix = await alice.slash("help")
    await ix.reply()
    url = f"{stage.api_base}/interactions/{ix.id}/{ix.record.token}/callback"
    async with http.post(url, json={"type": 4, "data": {"content": "again"}}) as response:
        assert response.status == 400
        assert (await response.json())["code"] == 40060
        assert response.headers["Content-Type"] == "application/json"


async def test_the_interaction_token_dies_after_15_minutes(
    stage: Stage, probe_bot: TrainerBot, alice: StageMember
) -> None:
    ix = await alice.slash("probe defer", public=True, wait=0.3)
    assert await ix.response() == 5
    stage.clock.advance(minutes=16)

    notice = await stage.wait_message("general", lambda m: m.content.startswith("follow-up failed"))
    assert notice.content == "follow-up failed: 401 50027"  # Invalid Webhook Token
    assert ix.original is not None and ix.original.loading  # the member still sees "thinking…"
