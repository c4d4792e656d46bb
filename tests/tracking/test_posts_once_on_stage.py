"""Each post exactly once even when the bot dies between a post and its record and stays down
longer than Discord's nonce window (the stage forgets nonces after 5 minutes, as Discord does).

The stage lets the post take effect and holds its answer back (``faults.stall``), the bot is
stopped right then (the post is on Discord, the bot never learnt it), the stage clock moves past
the nonce window, and a new bot starts on the same database and the same orchestrator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.civitai.simulator import Simulator
from storage.models import JobStatus
from tests.stage import Channel, Message, Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.stage.rest import NONCE_WINDOW_SECONDS
from tests.tracking.helpers import FAST, advance, epoch_messages, finished, real_mode, start_run

POST = "POST /channels/{channel_id}/messages"
HISTORY = "GET /channels/{channel_id}/messages"
DOWN_SECONDS = NONCE_WINDOW_SECONDS + 60
# Simulated seconds (default timings, 60 steps, 3 epochs, 2 prompts): training starts at 42 s and
# an epoch takes 20 steps × 1.5 s + 2 samples × 4 s.
START, PER_EPOCH = 42.0, 38.0


def settings(sim: Simulator) -> dict[str, Any]:
    return real_mode(sim) | FAST


def final(message: Message) -> bool:
    return "finished training" in message.content


async def test_a_post_made_just_before_a_long_outage_is_found_not_posted_again(
    stage: Stage, alice: StageMember, tmp_path: Path, orchestrator: Simulator
) -> None:
    sim, data = orchestrator, tmp_path / "bot"
    dms = alice.in_dm().channel

    async def died_after(where: Channel, made: Callable[[Message], bool], move_on: float) -> None:
        """The bot posts in ``where`` and dies before the answer; it stays down past the window."""
        stage.faults.stall(POST, channel_id=where.id)
        await advance(sim, move_on)
        await stage.wait_message(where, made)
        await bot_context.__aexit__(None, None, None)
        stage.clock.advance(seconds=DOWN_SECONDS)

    bot_context = bot_in_process(stage, data, **settings(sim))
    bot = await bot_context.__aenter__()
    job, thread = await start_run(bot, stage, alice, tmp_path, epochs=3, steps=60)
    await advance(sim, START + PER_EPOCH + 1)
    await stage.wait_message(thread, lambda m: m.content.startswith("**Epoch 1/3**"))

    # 1. Epoch 2 reaches the thread; the bot dies before recording it.
    await died_after(thread, lambda m: m.content.startswith("**Epoch 2/3**"), PER_EPOCH)
    # 2. A new bot finds epoch 2, posts epoch 3; the end notice reaches the thread, and it dies.
    bot_context = bot_in_process(stage, data, **settings(sim))
    bot = await bot_context.__aenter__()
    await advance(sim, PER_EPOCH)
    await stage.wait_message(thread, lambda m: m.content.startswith("**Epoch 3/3**"))  # after the look-up
    await died_after(thread, final, 200)
    # 3. A new bot finds the notice; the DM reaches the owner, and it dies.
    stage.faults.stall(POST, channel_id=dms.id)
    bot_context = bot_in_process(stage, data, **settings(sim))
    bot = await bot_context.__aenter__()
    await stage.wait_message(dms, final)
    await bot_context.__aexit__(None, None, None)
    stage.clock.advance(seconds=DOWN_SECONDS)
    # 4. A new bot finds the DM and ends the job.
    async with bot_in_process(stage, data, **settings(sim)) as bot:
        stored = await finished(bot, job.id)
        assert stored.status is JobStatus.SUCCEEDED
        posted = await bot.services.store.epochs.posted_epochs(job.id)
        assert [p.epoch_number for p in posted] == [1, 2, 3]
        assert all(p.message_id in stage.messages for p in posted)  # the ids of the messages found

    assert [m.content.split(" ")[1] for m in epoch_messages(stage, thread)] == ["1/3**", "2/3**", "3/3**"]
    assert len([m for m in stage.messages_in(thread) if final(m)]) == 1
    assert len(stage.messages_in(dms)) == 1
    # Nothing else either: the intro, 3 epochs and the notice; the missing records were found by
    # reading the channels' history (as Discord serves it), not by posting.
    assert len(stage.messages_in(thread)) == 5
    assert {r.path for r in stage.requests if r.route == HISTORY} >= {
        f"/api/v10/channels/{thread.id}/messages",
        f"/api/v10/channels/{dms.id}/messages",
    }
