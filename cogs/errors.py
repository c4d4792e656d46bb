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


def error_reply(interaction: discord.Interaction, error: BaseException) -> discord.Embed:
    """The embed a member sees for ``error``; unexpected errors are logged with an id."""
    original = getattr(error, "original", error)
    if isinstance(original, UserFacingError):
        return error_embed(original.title, original.user_message)
    if isinstance(error, app_commands.AppCommandError) and (text := describe_check_failure(error)) is not None:
        return error_embed("Not allowed", text)
    error_id = secrets.token_hex(4)
    where = f"/{interaction.command.qualified_name}" if interaction.command else "a button or menu"
    log.error("Unhandled error %s in %s", error_id, where, exc_info=original)
    return error_embed(
        "Something went wrong",
        f"This is a bug on our side, not something you did. Error id `{error_id}`: "
        "give it to the server admin if it keeps happening.",
    )


async def report_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Tell the member what went wrong. Views and dynamic buttons call this from their own
    error handling, since discord.py only logs exceptions raised in their callbacks."""
    try:
        await reply(interaction, embed=error_reply(interaction, error))
    except discord.HTTPException:
        log.warning("Could not tell the member about an error (interaction gone)")


async def on_app_command_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
    await report_error(interaction, error)


async def setup(bot: commands.Bot) -> None:
    bot.tree.on_error = on_app_command_error  # type: ignore[method-assign]
