"""Train further from an epoch: a /train-like confirmation that continues from that epoch's LoRA."""

from __future__ import annotations

import discord

from bot.errors import UserFacingError
from cogs.errors import report_error


async def offer_continuation(interaction: discord.Interaction, job_id: str, number: int) -> None:
    await report_error(interaction, UserFacingError("Not ready yet.", title="Train further"))
