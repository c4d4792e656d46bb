"""What several cogs need: the admin check and the filters job lists share."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.errors import UserFacingError
from storage.models import ACTIVE_STATUSES, JobStatus


class NotAllowed(UserFacingError):
    def __init__(self, message: str) -> None:
        super().__init__(message, title="Not allowed")


def is_admin(interaction: discord.Interaction) -> bool:
    """Manage Server in the server the interaction comes from (what Discord computed for it)."""
    permissions = interaction.permissions
    return interaction.guild_id is not None and (permissions.manage_guild or permissions.administrator)


def require_admin(interaction: discord.Interaction) -> None:
    """The runtime half of the admin check: command permissions can be overridden by any admin
    in Server Settings → Integrations, so the bot checks Manage Server itself on every use."""
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    if not is_admin(interaction):
        raise app_commands.MissingPermissions(["manage_guild"])


# Status filters of /jobs list and /admin jobs (names are the choices members see).
STATUS_FILTERS: dict[str, frozenset[JobStatus]] = {
    "all": frozenset(JobStatus) - {JobStatus.DRAFT, JobStatus.DISCARDED},
    "running": ACTIVE_STATUSES,
    "succeeded": frozenset({JobStatus.SUCCEEDED}),
    "failed": frozenset({JobStatus.FAILED}),
    "expired": frozenset({JobStatus.EXPIRED}),
    "canceled": frozenset({JobStatus.CANCELED}),
    "lost": frozenset({JobStatus.LOST}),  # can no longer be followed (deleted at Civitai, token removed…)
    "not_submitted": frozenset({JobStatus.DRAFT, JobStatus.DISCARDED}),
}
STATUS_CHOICES = [
    app_commands.Choice(name=name.replace("_", " "), value=name) for name in STATUS_FILTERS if name != "all"
]
CANCELLABLE = ACTIVE_STATUSES | {JobStatus.DRAFT}
