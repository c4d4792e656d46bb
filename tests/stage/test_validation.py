"""Every request body is checked: against Discord's OpenAPI document and the limits it leaves out."""

from __future__ import annotations

import aiohttp
import pytest

from bot.app import TrainerBot
from tests.shared_specs import require_spec
from tests.stage import Stage, StageMember
from tests.stage.limits import Upload, check_limits
from tests.stage.openapi import OpenApiValidator

MESSAGES = "POST /channels/{channel_id}/messages"
CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"


async def test_the_validator_rejects_a_bad_message_posted_straight_to_the_stage(
    stage: Stage, http: aiohttp.ClientSession
) -> None:
    require_spec("discord-openapi.json")
    channel = stage.channel("general")
    bad = {"content": "x", "embeds": [{"title": "t" * 300, "color": "red"}]}
    headers = {"Authorization": f"Bot {stage.token}"}
    async with http.post(f"{stage.api_base}/channels/{channel.id}/messages", json=bad, headers=headers) as response:
        assert response.status == 400
        body = await response.json()
    assert body["code"] == 50035 and "embeds" in body["errors"]

    violations = stage.take_violations()
    fields = {v.field: v for v in violations}
    assert set(fields) == {"embeds[0].title", "embeds[0].color"}
    assert all(v.route == MESSAGES and v.source == "openapi" for v in violations)
    assert "300 characters" in fields["embeds[0].title"].message
    assert stage.messages_in(channel) == []  # nothing was posted


async def test_limits_the_document_leaves_out_are_checked_with_or_without_it(
    stage: Stage, http: aiohttp.ClientSession
) -> None:
    channel = stage.channel("general")
    rows = [{"type": 1, "components": [{"type": 2, "style": 1, "label": "b", "custom_id": f"b{i}"}]} for i in range(6)]
    headers = {"Authorization": f"Bot {stage.token}"}
    body = {"content": "c" * 2001, "components": rows}
    async with http.post(f"{stage.api_base}/channels/{channel.id}/messages", json=body, headers=headers) as response:
        assert response.status == 400
    assert {(v.field, v.source) for v in stage.take_violations()} == {("content", "limits"), ("components", "limits")}


async def test_an_embed_over_6000_characters_fails_the_test_naming_route_and_field(
    stage: Stage, probe_bot: TrainerBot, alice: StageMember
) -> None:
    await alice.slash("probe huge")
    violation = await stage.wait_violation()
    assert violation.route == CALLBACK
    assert violation.field == "data.embeds"
    assert "7025 characters in all embeds together" in violation.message
    assert str(violation).startswith(f"{CALLBACK}: data.embeds: ")
    # The bot's error handler logged it and answered properly: the member saw an error, not a failure.
    assert "Invalid Form Body" in await stage.wait_bot_error("Unhandled error")
    reply = await alice.wait_ephemeral()
    assert reply.embed["title"] == "Something went wrong"


async def test_an_unexpected_violation_fails_the_next_wait(
    stage: Stage, probe_bot: TrainerBot, alice: StageMember
) -> None:
    await alice.slash("probe huge")
    with pytest.raises(AssertionError, match=r"invalid request: POST /interactions/.*data\.embeds"):
        await alice.wait_ephemeral(lambda m: m.content == "never")
    assert stage.take_violations()  # taken: this test expected it
    await stage.wait_bot_error("Unhandled error")


def test_the_openapi_document_is_there_to_validate_against() -> None:
    """The vendored document is there and validates (a missing one fails, never skips)."""
    path = require_spec("discord-openapi.json")
    validator = OpenApiValidator.from_file(path)
    assert validator.knows(MESSAGES)
    assert validator.validate(MESSAGES, {"content": "ok", "embeds": [{"title": "t"}]}) == []
    # discord.py sends some snowflakes as integers; Discord accepts them, so does the stage.
    assert validator.validate(MESSAGES, {"content": "ok", "attachments": [{"id": 0, "filename": "a.png"}]}) == []
    assert validator.validate(MESSAGES, {"attachments": [{"id": -1}]})


def _row(*custom_ids: str) -> dict[str, object]:
    return {"type": 1, "components": [{"type": 2, "style": 1, "label": "ok", "custom_id": c} for c in custom_ids]}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"content": "c" * 2001}, "content", "2001 characters"),
        ({"embeds": [{"title": "t"}] * 11}, "embeds", "11 embeds"),
        ({"components": [_row(f"r{i}") for i in range(6)]}, "components", "6 action rows"),
        ({"components": [_row(*"abcdef")]}, "components[0].components", "6 items"),
        ({"components": [_row("a"), _row("a")]}, "components[1].components[0].custom_id", "used twice"),
        ({"components": [_row("x" * 101)]}, "components[0].components[0].custom_id", "101 characters"),
        (
            {"components": [{"type": 1, "components": [{"type": 2, "style": 1, "label": "l" * 81, "custom_id": "a"}]}]},
            "components[0].components[0].label",
            "81 characters",
        ),
        (
            {
                "components": [
                    {
                        "type": 1,
                        "components": [
                            {
                                "type": 3,
                                "custom_id": "s",
                                "options": [{"label": str(i), "value": str(i)} for i in range(26)],
                            }
                        ],
                    }
                ]
            },
            "components[0].components[0].options",
            "26 options",
        ),
    ],
)
def test_message_limits(body: dict[str, object], field: str, words: str) -> None:
    found = check_limits(MESSAGES, body, [], 10 * 1024 * 1024)
    assert [v.field for v in found] == [field]
    assert words in found[0].message


def test_modal_title_and_file_limits() -> None:
    modal = {"type": 9, "data": {"custom_id": "m", "title": "t" * 46, "components": []}}
    assert [v.field for v in check_limits(CALLBACK, modal, [], 1)] == ["data.title"]

    big = Upload("files[0]", "big.png", b"x" * 11, "image/png")
    found = check_limits(MESSAGES, {"content": "x"}, [big], 10)
    assert [v.field for v in found] == ["files[0]"] and "11 bytes" in found[0].message
    many = [Upload(f"files[{i}]", f"{i}.png", b"x", None) for i in range(11)]
    assert [v.field for v in check_limits(MESSAGES, {}, many, 10)] == ["files"]


async def test_history_reads_like_discord_and_its_query_is_checked(stage: Stage, http: aiohttp.ClientSession) -> None:
    require_spec("discord-openapi.json")
    channel = stage.channel("general")
    headers = {"Authorization": f"Bot {stage.token}"}
    for n in range(5):
        async with http.post(
            f"{stage.api_base}/channels/{channel.id}/messages", json={"content": f"m{n}"}, headers=headers
        ) as response:
            assert response.status == 200
    ids = [m.id for m in stage.messages_in(channel)]

    async def read(**query: object) -> list[str]:
        url = f"{stage.api_base}/channels/{channel.id}/messages"
        async with http.get(url, params={k: str(v) for k, v in query.items()}, headers=headers) as response:
            assert response.status == 200, await response.text()
            return [m["content"] for m in await response.json()]

    assert await read() == ["m4", "m3", "m2", "m1", "m0"]  # newest first
    assert await read(limit=2) == ["m4", "m3"]
    assert await read(before=ids[3], limit=2) == ["m2", "m1"]
    assert await read(after=ids[1], limit=2) == ["m3", "m2"]  # the ones right after, newest first
    assert await read(around=ids[2], limit=3) == ["m3", "m2", "m1"]

    url = f"{stage.api_base}/channels/{channel.id}/messages"
    async with http.get(url, params={"limit": "101"}, headers=headers) as response:
        assert response.status == 400 and (await response.json())["code"] == 50035
    [violation] = stage.take_violations()
    assert violation.route == "GET /channels/{channel_id}/messages" and violation.field == "query.limit"
    async with http.get(url, params={"before": str(ids[3]), "after": str(ids[1])}, headers=headers) as response:
        assert response.status == 400
