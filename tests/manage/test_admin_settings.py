"""Every /admin setting does what it says: checked on what /train flux1 does next, not on the reply."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.app import TrainerBot
from tests.manage.helpers import dataset, simulator, start_run, train, train_refused
from tests.stage import Message, Stage, StageError, StageMember
from tests.train.helpers import attachment, confirmation


@pytest.fixture(autouse=True)
def queued(bot_on_stage: TrainerBot) -> None:
    simulator(bot_on_stage).speed = 0  # runs stay queued: these tests are about starting them


async def admin_says(admin: StageMember, command: str, **options: object) -> Message:
    reply = await (await admin.slash(command, **options)).reply()
    assert reply.ephemeral
    return reply


async def test_channels_limit_where_runs_start(
    stage: Stage, bot_on_stage: TrainerBot, admin: StageMember, alice: StageMember
) -> None:
    training = stage.channel("training")
    reply = await admin_says(admin, "admin channels add", channel="training")
    assert f"<#{training.id}>" in reply.embed["description"]
    assert f"only allowed in <#{training.id}>" in await train_refused(alice)  # alice acts in #general
    job = await train(bot_on_stage, alice.in_channel("training"))
    assert job.channel_id == training.id

    await admin_says(admin, "admin channels add", channel="general")
    await admin_says(admin, "admin channels remove", channel="general")
    assert "only allowed in" in await train_refused(alice)
    await admin_says(admin, "admin channels clear")
    await alice.slash("train flux1", dataset=attachment(2))
    await confirmation(alice)


async def test_a_required_role_and_blocks_decide_who_trains(
    stage: Stage, bot_on_stage: TrainerBot, admin: StageMember, alice: StageMember, bob: StageMember
) -> None:
    trainer = stage.guild.role_named("Trainer")
    stage.guild.members[bob.id].role_ids.append(trainer.id)
    await admin_says(admin, "admin role", role="Trainer")
    assert f"You need the <@&{trainer.id}> role" in await train_refused(alice)
    await train(bot_on_stage, bob)
    await admin_says(admin, "admin role")  # no role: everyone again
    await train(bot_on_stage, alice)

    reply = await admin_says(admin, "admin block", member="alice", reason="spamming runs")
    assert reply.embed["title"] == "Member blocked"
    assert "blocked you from training" in await train_refused(alice)
    await admin_says(admin, "admin unblock", member="alice")
    await train(bot_on_stage, alice)
    again = await admin_says(admin, "admin unblock", member="alice")
    assert again.embed["title"] == "Nothing changed"


async def test_limits_on_concurrency_steps_and_epochs(
    stage: Stage, bot_on_stage: TrainerBot, admin: StageMember, alice: StageMember
) -> None:
    reply = await admin_says(admin, "admin limits", concurrent_jobs=1, max_steps=150, max_epochs=1)
    assert "max steps: no cap → **150**" in reply.embed["description"]
    assert "between 1 and 150 on this server (you gave 200)" in await train_refused(alice, steps=200, epochs=1)
    assert "between 1 and 1 on this server (you gave 2)" in await train_refused(alice, steps=100, epochs=2)
    await train(bot_on_stage, alice, steps=100, epochs=1)
    assert "allows 1 at a time" in await train_refused(alice, steps=100, epochs=1)

    await admin_says(admin, "admin limits", reset="all")
    await train(bot_on_stage, alice)  # the default allows 2 at a time
    assert "allows 2 at a time" in await train_refused(alice)

    with pytest.raises(StageError, match="max_steps"):  # Discord itself refuses out-of-range values
        await admin.slash("admin limits", max_steps=0)
    clash = await admin_says(admin, "admin limits", max_steps=100, reset="max_steps")
    assert "both set and reset max_steps" in clash.embed["description"]


async def test_buzz_caps_refuse_with_the_cap_the_spend_and_the_reset(
    stage: Stage, bot_on_stage: TrainerBot, admin: StageMember, alice: StageMember, bob: StageMember
) -> None:
    first = await train(bot_on_stage, alice)
    price = first.price_charged
    assert price
    await admin_says(admin, "admin limits", user_daily_buzz=int(price * 1.5))
    message = await train_refused(alice)
    assert f"{int(price * 1.5):,} Buzz per day" in message and f"spent {price:,.0f} today" in message
    assert re.search(r"resets <t:\d+:R>", message)
    await train(bot_on_stage, bob)  # the cap is per member

    await admin_says(admin, "admin limits", reset="user_daily_buzz", server_monthly_buzz=int(price * 2.5))
    message = await train_refused(alice)
    assert f"{int(price * 2.5):,} Buzz per month" in message and f"{price * 2:,.0f} has been spent" in message
    reset_at = int(re.search(r"resets <t:(\d+):R>", message).group(1))  # type: ignore[union-attr]
    now = bot_on_stage.services.clock.now()
    assert 0 < reset_at - now.timestamp() <= 31 * 86400

    await admin_says(admin, "admin limits", reset="server_monthly_buzz")
    await train(bot_on_stage, alice)


async def test_private_threads_and_the_log_channel(
    stage: Stage, bot_on_stage: TrainerBot, admin: StageMember, alice: StageMember, bob: StageMember
) -> None:
    await admin_says(admin, "admin log-channel", channel="training")
    line = await stage.wait_message("training", lambda m: "sent audit lines to" in m.content)
    assert line.content.startswith(f"📜 <@{admin.id}>")
    await admin_says(admin, "admin threads", mode="private")
    await stage.wait_message("training", lambda m: "set job threads to **private**" in m.content)
    await admin_says(admin, "admin limits", max_epochs=5)
    await stage.wait_message("training", lambda m: "max epochs: no cap → 5" in m.content)

    job = await train(bot_on_stage, alice)
    submitted = await stage.wait_message("training", lambda m: m.content.startswith(f"📤 <@{alice.id}> submitted"))
    assert f"`{job.id}` (" in submitted.content and f"{job.price_charged:,.0f} simulated Buzz" in submitted.content
    thread = await stage.wait_thread(lambda t: t.is_private_thread)
    assert alice.id in thread.thread_member_ids and thread.parent_id == stage.channel("general").id
    first = await stage.wait_message(thread)
    assert alice.can_see(first) and not bob.can_see(first)

    await admin_says(admin, "admin log-channel")
    await stage.wait_message("training", lambda m: "turned audit lines off" in m.content)
    await admin_says(admin, "admin threads", mode="public")
    await train(bot_on_stage, bob)
    public = await stage.wait_thread(lambda t: not t.is_private_thread)
    assert bob.can_see(await stage.wait_message(public)) and alice.can_see(await stage.wait_message(public))
    await bot_on_stage.services.audit.drain()
    assert not any("threads to **public**" in m.content for m in stage.messages_in("training"))
    # Mentions in audit lines never ping.
    training = stage.channel("training")
    posts = [r for r in stage.requests if r.method == "POST" and r.path.endswith(f"/channels/{training.id}/messages")]
    assert len(posts) == 5 and all(r.body["allowed_mentions"]["parse"] == [] for r in posts)


async def test_settings_show_every_setting_and_which_are_defaults(
    stage: Stage, bot_on_stage: TrainerBot, admin: StageMember
) -> None:
    before = await admin_says(admin, "admin settings")
    fields = {f["name"]: f["value"] for f in before.embed["fields"]}
    assert fields["Runs at a time per member"] == "2 *(default)*"
    assert fields["Who pays"].endswith("*(default)*") and "SIMULATED" in fields["Who pays"]
    assert len(fields) == 14
    assert fields["Try it"].startswith("only a run's owner") and fields["Try it"].endswith("*(default)*")

    await admin_says(admin, "admin limits", concurrent_jobs=3)
    await admin_says(admin, "admin payer", who="user")
    await admin_says(admin, "admin block", member="bob")
    after = {f["name"]: f["value"] for f in (await admin_says(admin, "admin settings")).embed["fields"]}
    assert after["Runs at a time per member"] == "3"
    assert after["Who pays"].startswith("each member") and "(default)" not in after["Who pays"]
    assert after["Blocked members"] == f"<@{stage.user('bob').id}>"
    assert after["Max steps"].endswith("*(default)*")


async def test_members_without_manage_server_are_refused_even_when_discord_delivers(
    stage: Stage, bot_on_stage: TrainerBot, alice: StageMember
) -> None:
    with pytest.raises(StageError, match="cannot see /admin"):
        await alice.slash("admin settings")
    with pytest.raises(StageError, match="not available in DMs"):
        await alice.in_dm().slash("admin settings")
    stage.override_command_permissions("admin")
    for command, options in [
        ("admin settings", {}),
        ("admin limits", {"max_steps": 1}),
        ("admin payer", {"who": "user"}),
        ("admin token set", {}),
        ("admin channels clear", {}),
        ("admin block", {"member": "alice"}),
        ("admin usage", {}),
        ("admin jobs", {}),
    ]:
        reply = await (await alice.slash(command, **options)).reply()
        assert reply.embed["title"] == "Not allowed" and "Manage Server" in reply.embed["description"], command
    settings = await bot_on_stage.services.store.guilds.get(stage.guild.id)
    assert settings.max_steps is None and not settings.overridden
    assert await bot_on_stage.services.store.audit.recent(stage.guild.id) == []
    await train(bot_on_stage, alice)  # not blocked, no cap


async def test_usage_per_member_and_period(
    stage: Stage, bot_on_stage: TrainerBot, admin: StageMember, alice: StageMember, bob: StageMember, tmp_path: Path
) -> None:
    empty = await admin_says(admin, "admin usage", period="day")
    assert "Nobody has spent anything" in empty.embed["description"]
    data = await dataset(bot_on_stage, tmp_path)
    a1 = await start_run(bot_on_stage, stage, alice, data)
    a2 = await start_run(bot_on_stage, stage, alice, data)
    b1 = await start_run(bot_on_stage, stage, bob, data)
    assert a1.price_charged and a2.price_charged and b1.price_charged
    usage = await admin_says(admin, "admin usage", period="day")
    text = usage.embed["description"]
    assert f"<@{alice.id}> · **{a1.price_charged + a2.price_charged:,.0f}** Buzz · 2 run(s)" in text
    assert f"<@{bob.id}> · **{b1.price_charged:,.0f}** Buzz · 1 run(s)" in text
    assert text.index(f"<@{alice.id}>") < text.index(f"<@{bob.id}>")  # biggest spender first

    bot_on_stage.services.clock.advance(days=40)
    assert "Nobody has spent" in (await admin_says(admin, "admin usage", period="month")).embed["description"]
    assert f"<@{bob.id}>" in (await admin_says(admin, "admin usage", period="all")).embed["description"]
