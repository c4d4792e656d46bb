"""Small helpers every cog uses to answer an interaction, deferred or not."""

from __future__ import annotations

from typing import Any

import discord

ERROR_COLOUR = discord.Colour.red()
OK_COLOUR = discord.Colour.green()
INFO_COLOUR = discord.Colour.blurple()


async def reply(interaction: discord.Interaction, *, ephemeral: bool = True, **kwargs: Any) -> None:
    """Answer ``interaction`` whether or not it was already responded to (deferred)."""
    if interaction.response.is_done():
        await interaction.followup.send(ephemeral=ephemeral, **kwargs)
    else:
        await interaction.response.send_message(ephemeral=ephemeral, **kwargs)


def error_embed(title: str, message: str) -> discord.Embed:
    return discord.Embed(title=title[:256], description=message[:4096], colour=ERROR_COLOUR)
