"""The one error handler: typed domain errors become friendly ephemeral replies.

Anything else is logged with an id and the member sees that id, never a traceback.
"""

from __future__ import annotations

import logging
import secrets

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserFacingError
from cogs.replies import error_embed, reply

log = logging.getLogger(__name__)


# discord.py names permissions after the API; members see the names of Discord's interface.
PERMISSION_NAMES = {"manage_guild": "Manage Server", "manage_messages": "Manage Messages"}


def describe_check_failure(error: app_commands.AppCommandError) -> str | None:
    if isinstance(error, app_commands.MissingPermissions):
        perms = ", ".join(PERMISSION_NAMES.get(p, p.replace("_", " ").title()) for p in error.missing_permissions)
        return f"You need the **{perms}** permission in this server to use this command."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works inside a server, not in DMs."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down a little: try again in {error.retry_after:.0f} s."
    return None


async def on_app_command_error(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    original = getattr(error, "original", error)
    if isinstance(original, UserFacingError):
        embed = error_embed(original.title, original.user_message)
    elif (text := describe_check_failure(error)) is not None:
        embed = error_embed("Not allowed", text)
    else:
        error_id = secrets.token_hex(4)
        name = interaction.command.qualified_name if interaction.command else "?"
        log.error("Unhandled error %s in /%s", error_id, name, exc_info=original)
        embed = error_embed(
            "Something went wrong",
            f"This is a bug on our side, not something you did. Error id `{error_id}`: "
            "give it to the server admin if it keeps happening.",
        )
    try:
        await reply(interaction, embed=embed)
    except discord.HTTPException:
        log.warning("Could not tell the member about an error (interaction gone)")


async def setup(bot: commands.Bot) -> None:
    bot.tree.on_error = on_app_command_error  # type: ignore[method-assign]
