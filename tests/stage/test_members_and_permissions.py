"""A custom world (members, roles, channels) and Discord's command permissions."""

from __future__ import annotations

import pytest

from bot.app import TrainerBot
from tests.stage import GuildSpec, MemberSpec, Stage, StageConfig, StageError
from tests.stage.world import MANAGE_GUILD


@pytest.fixture
def stage_config() -> StageConfig:
    """Overrides the default world for this module only."""
    members = (MemberSpec("carol", roles=("Mods",)), MemberSpec("dave"))
    guild = GuildSpec(name="Custom", channels=("lobby", "jobs"), roles={"Mods": MANAGE_GUILD}, members=members)
    return StageConfig(guilds=(guild,))


async def test_the_world_is_what_the_test_configured(stage: Stage, bot_on_stage: TrainerBot) -> None:
    guild = bot_on_stage.get_guild(stage.guild.id)
    assert guild is not None and guild.name == "Custom"
    assert [c.name for c in guild.text_channels] == ["lobby", "jobs"]
    carol = stage.member("carol")
    assert carol.channel.name == "lobby" and carol.permissions & MANAGE_GUILD
    assert not stage.member("dave").permissions & MANAGE_GUILD


async def test_admin_commands_are_hidden_from_members_and_checked_by_the_bot(
    stage: Stage, probe_bot: TrainerBot
) -> None:
    carol, dave = stage.member("carol"), stage.member("dave")
    assert (await (await carol.slash("probe-admin")).reply()).content == "admin ok"

    with pytest.raises(StageError, match="cannot see /probe-admin"):
        await dave.slash("probe-admin")
    with pytest.raises(StageError, match="not available in DMs"):
        await carol.in_dm().slash("probe-admin")

    # A server admin can open the command to everyone; the bot's own check still refuses.
    stage.override_command_permissions("probe-admin")
    reply = await (await dave.slash("probe-admin")).reply()
    assert reply.embed["title"] == "Not allowed" and "Manage Server" in reply.embed["description"]
