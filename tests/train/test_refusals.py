"""Every rule that refuses /train flux1 says which rule and its limit, and nothing is submitted."""

from __future__ import annotations

import re

from bot.app import TrainerBot
from tests.stage import Stage, StageMember
from tests.train.helpers import assert_nothing_submitted, attachment, confirmation, refused, simulator, submitted


async def test_a_blocked_member(stage: Stage, trainer: TrainerBot, alice: StageMember, admin: StageMember) -> None:
    await trainer.services.store.guilds.block(stage.guild.id, alice.id, by=admin.id)
    reply = await refused(alice)
    assert "blocked you from training" in reply.embed["description"]
    await assert_nothing_submitted(trainer, alice)


async def test_a_channel_not_allowed(stage: Stage, trainer: TrainerBot, alice: StageMember) -> None:
    training = stage.channel("training")
    await trainer.services.store.guilds.add_channel(stage.guild.id, training.id)
    reply = await refused(alice)
    assert f"only allowed in <#{training.id}>" in reply.embed["description"]
    await assert_nothing_submitted(trainer, alice)
    # In the allowed channel the same command gets to the confirmation.
    await alice.in_channel("training").slash("train flux1", dataset=attachment(3))
    await confirmation(alice)


async def test_a_missing_role(stage: Stage, trainer: TrainerBot, alice: StageMember) -> None:
    role = stage.guild.role_named("Trainer")
    await trainer.services.store.guilds.update(stage.guild.id, required_role_id=role.id)
    reply = await refused(alice)
    assert f"You need the <@&{role.id}> role" in reply.embed["description"]
    await assert_nothing_submitted(trainer, alice)


async def test_too_many_runs_at_once(stage: Stage, trainer: TrainerBot, alice: StageMember) -> None:
    simulator(trainer).speed = 0  # the first run stays queued
    await trainer.services.store.guilds.update(stage.guild.id, max_concurrent_jobs_per_user=1)
    await alice.slash("train flux1", dataset=attachment(3))
    await alice.click(await confirmation(alice), label="Confirm")
    await alice.wait_ephemeral(submitted)
    reply = await refused(alice)
    assert "You already have 1 run(s) going and this server allows 1 at a time" in reply.embed["description"]
    assert len(simulator(trainer).workflows) == 1


async def test_budget_caps(stage: Stage, trainer: TrainerBot, alice: StageMember) -> None:
    guilds = trainer.services.store.guilds
    await guilds.update(stage.guild.id, user_daily_buzz_cap=1000)
    reply = await refused(alice)
    assert "caps each member at 1,000 Buzz per day" in reply.embed["description"]
    await guilds.update(stage.guild.id, user_daily_buzz_cap=None, guild_monthly_buzz_cap=1500)
    reply = await refused(alice)
    assert "caps training at 1,500 Buzz per month" in reply.embed["description"]
    await assert_nothing_submitted(trainer, alice)


async def test_server_caps_on_steps_and_epochs(stage: Stage, trainer: TrainerBot, alice: StageMember) -> None:
    await trainer.services.store.guilds.update(stage.guild.id, max_steps=500, max_epochs=3)
    reply = await refused(alice, steps=600, epochs=5)
    text = reply.embed["description"]
    assert "steps must be between 1 and 500 on this server (you gave 600)" in text
    assert "epochs must be between 1 and 3 on this server (you gave 5)" in text
    await assert_nothing_submitted(trainer, alice)


async def test_cooldown_says_how_long_to_wait(stage: Stage, trainer: TrainerBot, alice: StageMember) -> None:
    await trainer.services.store.guilds.update(stage.guild.id, cooldown_seconds=60)
    await alice.slash("train flux1", dataset=attachment(3))
    await confirmation(alice)
    reply = await refused(alice)
    # 60 s from the first command; pricing (which uploads the images) may take a second of it.
    assert re.search(r"you can use `/train flux1` again in (59|60) s", reply.embed["description"])
    ix = await alice.slash("dataset check", dataset=attachment(3))
    await ix.reply(lambda m: "Dataset accepted" in m.text)  # its own cooldown
    ix = await alice.slash("dataset check", dataset=attachment(3))
    assert "you can use `/dataset check` again in 60 s" in (await ix.reply(lambda m: m.embeds)).text
    assert len(await trainer.services.store.jobs.list_for_user(alice.id)) == 1  # only the first draft
