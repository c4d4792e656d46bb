"""Every /admin setting does what it says: checked on what happens to the next run, not the reply.

Runs are priced and confirmed through the training service with the member's real roles and
channel on the stage (what /train does after its defer), so each effect is the policy reading
what the admin command stored.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.app import TrainerBot
from bot.dataset.report import DatasetResult
from bot.jobs.policy import TrainingRefused
from cogs.job_thread import open_job_thread
from storage.models import JobStatus
from tests.manage.helpers import dataset, quote, simulator, start_run
from tests.stage import Message, Stage, StageError, StageMember


@pytest.fixture
async def data(bot_on_stage: TrainerBot, tmp_path: Path) -> DatasetResult:
    simulator(bot_on_stage).speed = 0  # runs stay queued: these tests are about starting them
    return await dataset(bot_on_stage, tmp_path)


async def admin_says(admin: StageMember, command: str, **options: object) -> Message:
    reply = await (await admin.slash(command, **options)).reply()
    assert reply.ephemeral
    return reply


async def refused(bot: TrainerBot, stage: Stage, member: StageMember, data: DatasetResult, **options: object) -> str:
    with pytest.raises(TrainingRefused) as caught:
        await quote(bot, stage, member, data, **options)  # type: ignore[arg-type]
    return caught.value.user_message


async def test_channels_limit_where_runs_start(
    stage: Stage, bot_on_stage: TrainerBot, admin: StageMember, alice: StageMember, data: DatasetResult
) -> None:
    training = stage.channel("training")
    reply = await admin_says(admin, "admin channels add", channel="training")
    assert f"<#{training.id}>" in reply.embed["description"]
    message = await refused(bot_on_stage, stage, alice, data)  # alice acts in #general
    assert f"only allowed in <#{training.id}>" in message
    assert (await quote(bot_on_stage, stage, alice, data, channel="training")).job.channel_id == training.id

    await admin_says(admin, "admin channels add", channel="general")
    await admin_says(admin, "admin channels remove", channel="general")
    await refused(bot_on_stage, stage, alice, data)
    await admin_says(admin, "admin channels clear")
    await quote(bot_on_stage, stage, alice, data)


async def test_a_required_role_and_blocks_decide_who_trains(
    stage: Stage, bot_on_stage: TrainerBot, admin: StageMember, alice: StageMember, bob: StageMember,
    data: DatasetResult,
) -> None:  # fmt: skip
    trainer = stage.guild.role_named("Trainer")
    stage.guild.members[bob.id].role_ids.append(trainer.id)
    await admin_says(admin, "admin role", role="Trainer")
    assert f"<@&{trainer.id}>" in await refused(bot_on_stage, stage, alice, data)
    await quote(bot_on_stage, stage, bob, data)
    await admin_says(admin, "admin role")  # no role: everyone again
    await quote(bot_on_stage, stage, alice, data)

    reply = await admin_says(admin, "admin block", member="alice", reason="spamming runs")
    assert reply.embed["title"] == "Member blocked"
    assert "blocked you from training" in await refused(bot_on_stage, stage, alice, data)
    await quote(bot_on_stage, stage, bob, data)
    await admin_says(admin, "admin unblock", member="alice")
    await quote(bot_on_stage, stage, alice, data)
    again = await admin_says(admin, "admin unblock", member="alice")
    assert again.embed["title"] == "Nothing changed"


async def test_limits_on_concurrency_steps_and_epochs(
    stage: Stage, bot_on_stage: TrainerBot, admin: StageMember, alice: StageMember, data: DatasetResult
) -> None:
    reply = await admin_says(admin, "admin limits", concurrent_jobs=1, max_steps=150, max_epochs=1)
    assert "max steps: no cap → **150**" in reply.embed["description"]
    assert "at most 150 steps" in await refused(bot_on_stage, stage, alice, data, steps=200, epochs=1)
    assert "at most 1 epochs" in await refused(bot_on_stage, stage, alice, data, steps=100, epochs=2)
    await start_run(bot_on_stage, stage, alice, data, steps=100, epochs=1)
    assert "allows 1 at a time" in await refused(bot_on_stage, stage, alice, data, steps=100, epochs=1)

    await admin_says(admin, "admin limits", reset="all")
    await start_run(bot_on_stage, stage, alice, data, steps=200, epochs=2)  # the default allows 2 at a time
    assert "allows 2 at a time" in await refused(bot_on_stage, stage, alice, data)

    with pytest.raises(StageError, match="max_steps"):  # Discord itself refuses out-of-range values
        await admin.slash("admin limits", max_steps=0)
    clash = await admin_says(admin, "admin limits", max_steps=100, reset="max_steps")
    assert "both set and reset max_steps" in clash.embed["description"]


async def test_buzz_caps_refuse_with_the_cap_the_spend_and_the_reset(
    stage: Stage, bot_on_stage: TrainerBot, admin: StageMember, alice: StageMember, bob: StageMember,
    data: DatasetResult,
) -> None:  # fmt: skip
    first = await start_run(bot_on_stage, stage, alice, data)
    price = first.price_charged
    assert price
    await admin_says(admin, "admin limits", user_daily_buzz=int(price * 1.5))
    message = await refused(bot_on_stage, stage, alice, data)
    assert f"{int(price * 1.5):,} Buzz per day" in message and f"spent {price:,.0f} today" in message
    assert re.search(r"resets <t:\d+:R>", message)
    await start_run(bot_on_stage, stage, bob, data)  # the cap is per member

    await admin_says(admin, "admin limits", reset="user_daily_buzz", server_monthly_buzz=int(price * 2.5))
    message = await refused(bot_on_stage, stage, alice, data)
    assert f"{int(price * 2.5):,} Buzz per month" in message and f"{price * 2:,.0f} has been spent" in message
    reset_at = int(re.search(r"resets <t:(\d+):R>", message).group(1))  # type: ignore[union-attr]
    now = bot_on_stage.services.clock.now()
    assert 0 < reset_at - now.timestamp() <= 31 * 86400

    await admin_says(admin, "admin limits", reset="server_monthly_buzz")
    await quote(bot_on_stage, stage, alice, data)


async def test_private_threads_and_the_log_channel(
    stage: Stage, bot_on_stage: TrainerBot, admin: StageMember, alice: StageMember, bob: StageMember,
    data: DatasetResult,
) -> None:  # fmt: skip
    await admin_says(admin, "admin log-channel", channel="training")
    line = await stage.wait_message("training", lambda m: "sent audit lines to" in m.content)
    assert line.content.startswith(f"📜 <@{admin.id}>")
    await admin_says(admin, "admin threads", mode="private")
    await stage.wait_message("training", lambda m: "set job threads to **private**" in m.content)
    await admin_says(admin, "admin limits", max_epochs=5)
    await stage.wait_message("training", lambda m: "max epochs: no cap → 5" in m.content)

    job = await start_run(bot_on_stage, stage, alice, data)
    submitted = await stage.wait_message("training", lambda m: m.content.startswith(f"📤 <@{alice.id}> submitted"))
    assert f"`{job.id}` (dog, {job.price_charged:,.0f} simulated Buzz)" in submitted.content
    _, thread = await open_job_thread(bot_on_stage, bot_on_stage.services.store, job)
    assert thread is not None
    private = stage.channel(thread.id)
    assert private.is_private_thread and alice.id in private.thread_member_ids
    first = await stage.wait_message(private)
    assert alice.can_see(first) and not bob.can_see(first)

    await admin_says(admin, "admin log-channel")
    await stage.wait_message("training", lambda m: "turned audit lines off" in m.content)
    await admin_says(admin, "admin threads", mode="public")
    await bot_on_stage.services.audit.drain()
    assert not any("job threads to **public**" in m.content for m in stage.messages_in("training"))
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
    assert len(fields) == 13

    await admin_says(admin, "admin limits", concurrent_jobs=3)
    await admin_says(admin, "admin payer", who="user")
    await admin_says(admin, "admin block", member="bob")
    after = {f["name"]: f["value"] for f in (await admin_says(admin, "admin settings")).embed["fields"]}
    assert after["Runs at a time per member"] == "3"
    assert after["Who pays"].startswith("each member") and "(default)" not in after["Who pays"]
    assert after["Blocked members"] == f"<@{stage.user('bob').id}>"
    assert after["Max steps"].endswith("*(default)*")


async def test_members_without_manage_server_are_refused_even_when_discord_delivers(
    stage: Stage, bot_on_stage: TrainerBot, alice: StageMember, data: DatasetResult
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
    ]:
        reply = await (await alice.slash(command, **options)).reply()
        assert reply.embed["title"] == "Not allowed" and "Manage Server" in reply.embed["description"], command
    settings = await bot_on_stage.services.store.guilds.get(stage.guild.id)
    assert settings.max_steps is None and not settings.overridden
    assert await bot_on_stage.services.store.audit.recent(stage.guild.id) == []
    await quote(bot_on_stage, stage, alice, data)  # not blocked


async def test_usage_per_member_and_period(
    stage: Stage, bot_on_stage: TrainerBot, admin: StageMember, alice: StageMember, bob: StageMember,
    data: DatasetResult,
) -> None:  # fmt: skip
    empty = await admin_says(admin, "admin usage", period="day")
    assert "Nobody has spent anything" in empty.embed["description"]
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
    assert (await bot_on_stage.services.store.jobs.get(a1.id)).status is JobStatus.SUBMITTED  # type: ignore[union-attr]
