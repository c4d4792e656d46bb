"""The real bot on the stage: a member runs /help and reads the answer."""

from __future__ import annotations

from bot.app import TrainerBot
from tests.stage import Stage, StageMember


async def test_member_runs_help_and_sees_an_ephemeral_embed(
    stage: Stage, bot_on_stage: TrainerBot, alice: StageMember, bob: StageMember
) -> None:
    ix = await alice.slash("help")
    reply = await ix.reply()

    assert reply.ephemeral and reply.visible_to == alice.id
    assert reply.embed["title"] == "LoRA Trainer"
    assert "/train flux1" in reply.embed["description"]
    assert not bob.can_see(reply)
    assert await alice.wait_ephemeral(lambda m: m.embed["title"] == "LoRA Trainer") is reply
    assert stage.messages_in("general") == []  # nothing public
