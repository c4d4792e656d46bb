"""Bad days on Discord: rate limits, server errors, reconnects; and the stage's own guard rails."""

from __future__ import annotations

import aiohttp

from bot.app import TrainerBot
from tests.stage import Stage, StageMember

CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"


async def test_a_429_is_waited_out_and_retried_by_discord_py(
    stage: Stage, bot_on_stage: TrainerBot, alice: StageMember
) -> None:
    fault = stage.faults.rate_limit(CALLBACK, retry_after=0.05)
    reply = await (await alice.slash("help")).reply()
    assert reply.embed["title"] == "LoRA Trainer"
    assert fault.hits == 1
    assert [r.status for r in stage.requests if r.route == CALLBACK] == [429, 200]


async def test_server_errors_hit_the_next_requests_only(
    stage: Stage, probe_bot: TrainerBot, alice: StageMember
) -> None:
    stage.faults.server_error("POST /channels/{channel_id}/messages", times=1, status=502)
    await (await alice.slash("probe post", channel_id=str(stage.channel("training").id))).reply()
    statuses = [r.status for r in stage.requests if r.route == "POST /channels/{channel_id}/messages"]
    assert statuses == [502, 200]  # discord.py retried after a second
    assert (await stage.wait_message("training")).content == "posted"


async def test_the_bot_resumes_after_a_reconnect_or_a_dropped_connection(
    stage: Stage, bot_on_stage: TrainerBot, alice: StageMember
) -> None:
    await stage.gateway.force_reconnect(resume=True)
    await stage.wait_for(lambda: stage.gateway.resume_count or None, "a RESUME")
    assert (await (await alice.slash("help")).reply()).embed["title"] == "LoRA Trainer"

    await stage.gateway.drop()
    await stage.wait_for(lambda: stage.gateway.resume_count >= 2 or None, "a second RESUME")
    assert (await (await alice.slash("help")).reply()).embed["title"] == "LoRA Trainer"
    assert stage.gateway.identify_count == 1


async def test_an_invalid_session_makes_the_bot_identify_again(
    stage: Stage, bot_on_stage: TrainerBot, alice: StageMember
) -> None:
    await stage.gateway.force_reconnect(resume=False)
    # discord.py waits 5 s before identifying again, as Discord asks.
    await stage.wait_ready(identifies=2, timeout=10)
    assert (await (await alice.slash("help")).reply()).embed["title"] == "LoRA Trainer"


async def test_unknown_routes_and_bad_tokens_fail_loudly(stage: Stage, http: aiohttp.ClientSession) -> None:
    headers = {"Authorization": f"Bot {stage.token}"}
    async with http.get(f"{stage.api_base}/guilds/1/bans", headers=headers) as response:
        assert response.status == 404
        assert "tests/stage/rest.py" in (await response.json())["message"]
    assert [e.split(":")[0] for e in stage.take_errors()] == [
        "GET /api/v10/guilds/1/bans is not a route the stage knows"
    ]

    async with http.get(f"{stage.api_base}/users/@me", headers={"Authorization": "Bot wrong"}) as response:
        assert response.status == 401
