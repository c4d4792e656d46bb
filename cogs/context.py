"""What every command and button needs first: the core services and who is acting, where."""

from __future__ import annotations

import discord

from bot.errors import UserFacingError
from bot.jobs.policy import Member
from bot.jobs.submission import Requester
from bot.services import Services


def services_of(interaction: discord.Interaction) -> Services:
    return client_services(interaction.client)


def client_services(client: discord.Client) -> Services:
    services = getattr(client, "services", None)
    if not isinstance(services, Services):
        raise RuntimeError("the client has no services (not a TrainerBot?)")
    return services


def requester_from(interaction: discord.Interaction) -> Requester:
    """The member acting, with their roles and the channel (and a thread's parent) they act in."""
    if interaction.guild_id is None:
        raise UserFacingError("This only works inside a server, not in DMs.", title="Server only")
    user = interaction.user
    roles = frozenset(role.id for role in user.roles) if isinstance(user, discord.Member) else frozenset()
    channel = interaction.channel
    parent = channel.parent_id if isinstance(channel, discord.Thread) else None
    member = Member(user_id=user.id, role_ids=roles, channel_id=interaction.channel_id or 0, parent_channel_id=parent)
    return Requester(interaction.guild_id, member)
