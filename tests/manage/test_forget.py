"""/account forget: the token at once, then (after a confirm) every row that names the member."""

from __future__ import annotations

from pathlib import Path

from bot.app import TrainerBot
from storage import Store
from storage.copy import snapshot
from tests.manage.helpers import dataset, quote, simulator, start_run, train
from tests.stage import Stage, StageMember


async def rows_naming(store: Store, user_id: int) -> dict[str, int]:
    """Rows, per table, with any column equal to the id or containing it as text."""
    found: dict[str, int] = {}
    for table, rows in (await snapshot(store)).items():
        for row in rows:
            if any(value == user_id or str(user_id) in str(value) for value in row):
                found[table] = found.get(table, 0) + 1
    return found


async def test_forget_deletes_every_row_of_the_member_and_cancels_their_runs(
    stage: Stage, bot_on_stage: TrainerBot, alice: StageMember, bob: StageMember, admin: StageMember, tmp_path: Path
) -> None:
    bot = bot_on_stage
    store = bot.services.store
    simulator(bot).speed = 0
    data = await dataset(bot, tmp_path)
    # Alice leaves traces everywhere: a token, a setting, runs (one with a card and thread, one
    # cancelled, one never confirmed), spend, and audit lines others wrote about her.
    ix = await alice.slash("account token")
    await (await alice.submit_modal(await ix.modal(), {"Civitai API key": "a1b2c3d4e5f6a7b8c9d0"})).reply()
    assert simulator(bot).balance("a1b2c3d4e5f6a7b8c9d0") > 0  # checked with the (simulated) orchestrator
    await (await alice.slash("settings notify", dm="off")).reply()
    running = await train(bot, alice, name="keeps")
    assert running.card_message_id and running.thread_id
    card, thread = stage.messages[running.card_message_id], stage.channel(running.thread_id)
    only_hers = await dataset(bot, tmp_path, count=3)
    cancelled = await start_run(bot, stage, alice, only_hers, name="stops")
    await bot.services.canceller.cancel(cancelled, actor_id=alice.id)
    await quote(bot, stage, alice, data, name="draft")
    await (await admin.slash("admin block", member="alice", reason="testing")).reply()
    await (await admin.slash("admin log-channel", channel="training")).reply()
    await (await admin.slash("admin unblock", member="alice")).reply()
    bobs = await start_run(bot, stage, bob, data, name="bobs")
    await bot.services.audit.drain()
    assert set(await rows_naming(store, alice.id)) >= {"jobs", "spend_ledger", "user_settings", "audit_log"}

    month = bot.services.clock.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spent_before = await store.ledger.spent_by_guild(stage.guild.id, month)
    prompt = await (await alice.slash("account forget")).reply()
    assert await store.users.get_token_ciphertext(alice.id) is None  # at once, before any confirm
    assert "Delete everything else too?" in prompt.text
    await alice.click(prompt, label="Delete all my data")
    done = await alice.wait_ephemeral(lambda m: m.embed["title"] == "Your data is deleted")
    assert "1 running job(s) were cancelled first" in done.text and "Refunds are Civitai's decision" in done.text

    assert await rows_naming(store, alice.id) == {}
    assert simulator(bot)._records[running.workflow_id or ""].status == "canceled"
    assert stage.channel(thread.id).deleted and stage.messages[card.id].deleted
    assert bot.services.datasets.path_for(only_hers.digest or "") is None  # her images are gone
    assert bot.services.datasets.path_for(data.digest or "") is not None  # bob's run uses these ones
    remaining = await store.jobs.get(bobs.id)
    assert remaining is not None and remaining.user_id == bob.id
    assert (await store.users.get(alice.id)).dm_notify  # back to the default: nothing stored
    # What she spent still counts for the server (the cancelled run was refunded in full).
    refunded = running.price_charged or 0
    assert await store.ledger.spent_by_guild(stage.guild.id, month) == spent_before - refunded
    usage = await (await admin.slash("admin usage")).reply()
    assert "members who asked to be forgotten" in usage.text and f"<@{alice.id}>" not in usage.text

