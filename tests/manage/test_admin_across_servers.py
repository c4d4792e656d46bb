"""An admin's powers end at their own server: another server's jobs and settings are out of reach."""

from __future__ import annotations

from pathlib import Path

import discord
import pytest

from bot.app import TrainerBot
from cogs.job_cancel import ConfirmCancelButton
from storage.models import JobStatus
from tests.manage.helpers import dataset, simulator, start_run
from tests.stage import GuildSpec, MemberSpec, Stage, StageConfig
from tests.stage.world import MANAGE_GUILD


@pytest.fixture
def stage_config() -> StageConfig:
    roles = {"Admin": MANAGE_GUILD}
    first = GuildSpec(name="Alpha", channels=("alpha",), roles=roles,
                      members=(MemberSpec("alice"), MemberSpec("ann", roles=("Admin",))))  # fmt: skip
    second = GuildSpec(name="Beta", channels=("beta",), roles=roles,
                       members=(MemberSpec("bert", roles=("Admin",)), MemberSpec("alice")))  # fmt: skip
    return StageConfig(guilds=(first, second))


async def test_an_admin_cannot_reach_jobs_or_settings_of_another_server(
    stage: Stage, bot_on_stage: TrainerBot, tmp_path: Path
) -> None:
    bot = bot_on_stage
    simulator(bot).speed = 0
    alpha, beta = list(stage.guilds.values())
    alice, ann = stage.member("alice", guild=alpha), stage.member("ann", guild=alpha)
    bert = stage.member("bert", guild=beta)
    job = await start_run(bot, stage, alice, await dataset(bot, tmp_path))
    assert job.guild_id == alpha.id

    assert await bert.autocomplete("admin cancel", "job", "") == []
    assert job.id not in (await (await bert.slash("admin jobs")).reply()).text
    assert job.id not in (await (await bert.slash("admin jobs", member="alice")).reply()).text
    reply = await (await bert.slash("admin cancel", job=job.id)).reply()
    assert reply.embed["title"] == "Unknown job" and "in this server" in reply.embed["description"]

    # A confirm button for Alpha's job pressed by Beta's admin, in Beta: refused.
    view = discord.ui.View(timeout=None)
    view.add_item(ConfirmCancelButton(job.id))
    channel = bot.get_channel(stage.channel("beta").id)
    assert isinstance(channel, discord.TextChannel)
    posted = stage.messages[(await channel.send("confirm", view=view)).id]
    await bert.click(posted, label="Yes, cancel it")
    await bert.wait_ephemeral(lambda m: m.embed["title"] == "Unknown job")
    stored = await bot.services.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.SUBMITTED

    # Settings are per server: Beta's limits do not touch Alpha.
    await (await bert.slash("admin limits", max_steps=1)).reply()
    assert (await bot.services.store.guilds.get(alpha.id)).max_steps is None
    assert (await bot.services.store.guilds.get(beta.id)).max_steps == 1

    # Alpha's admin can.
    assert [c["value"] for c in await ann.autocomplete("admin cancel", "job", "")] == [job.id]
    prompt = await (await ann.slash("admin cancel", job=job.id)).reply()
    await ann.click(prompt, label="Yes, cancel it")
    await ann.wait_ephemeral(lambda m: m.embed["title"].startswith("Cancelled"))
    stored = await bot.services.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.CANCELED
