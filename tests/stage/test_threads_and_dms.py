"""Threads, uploads, edits with attachments, DMs, and the ways they fail on Discord."""

from __future__ import annotations

import io

from PIL import Image

from bot.app import TrainerBot
from tests.stage import Stage, StageMember


async def test_a_card_gets_a_thread_with_images_the_test_can_open(
    stage: Stage, probe_bot: TrainerBot, alice: StageMember
) -> None:
    ix = await alice.slash("probe thread")
    done = await ix.reply(lambda m: m.content.startswith("thread "))
    card = await stage.wait_message("general", lambda m: m.embed["title"] == "Card")
    thread = stage.channel(card)  # the thread started on the card
    assert done.content == f"thread {thread.id}" and thread.id == card.id and thread.name == "probe thread"

    epoch = await stage.wait_message(thread, lambda m: m.content == "epoch 1 (edited)")
    assert [a.filename for a in epoch.attachments] == ["sample.png", "grid.png"]  # kept one, added one
    files = stage.files(epoch)
    assert Image.open(io.BytesIO(files["sample.png"])).size == (8, 8)
    assert stage.gateway.session is not None
    assert "THREAD_CREATE" in [event for _, event, _ in stage.gateway.session.events]


async def test_a_private_thread_is_seen_only_by_its_members(
    stage: Stage, probe_bot: TrainerBot, alice: StageMember, bob: StageMember, admin: StageMember
) -> None:
    ix = await alice.slash("probe thread", private=True)
    await ix.reply()
    thread = await stage.wait_thread(lambda t: t.name == "probe private")
    assert thread.is_private_thread and alice.id in thread.thread_member_ids
    message = await stage.wait_message(thread)
    assert alice.can_see(message) and not bob.can_see(message)


async def test_dms_arrive_and_closed_dms_give_50007(stage: Stage, probe_bot: TrainerBot, alice: StageMember) -> None:
    ix = await alice.slash("probe dm")
    assert (await ix.reply()).content == "sent"
    assert (await alice.wait_dm()).content == "hello in your DMs"

    stage.faults.close_dms(alice)
    ix = await alice.slash("probe dm")
    assert (await ix.reply()).content == "forbidden 50007"


async def test_archived_threads_reopen_locked_ones_refuse_deleted_ones_are_unknown(
    stage: Stage, probe_bot: TrainerBot, alice: StageMember
) -> None:
    await (await alice.slash("probe thread")).reply()
    thread = await stage.wait_thread()

    await stage.faults.archive(thread)
    assert (await (await alice.slash("probe post", channel_id=str(thread.id))).reply()).content == "ok"
    assert not thread.archived  # sending unarchived it

    await stage.faults.lock(thread)
    assert (await (await alice.slash("probe post", channel_id=str(thread.id))).reply()).content == "error 400 160005"

    await stage.faults.delete_channel(thread)
    assert (await (await alice.slash("probe post", channel_id=str(thread.id))).reply()).content == "error 404 10003"
