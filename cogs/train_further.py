"""Train further from here: the /train confirmation for a run that continues from an epoch.

The button (``ltb:more:<job>:<n>``) quotes the new run through the core
(``bot.jobs.train_further``: same settings, the stored dataset checked again, ``continue_from`` =
the epoch's AIR) and answers the owner ephemerally with ``/train``'s own confirmation (price, who
pays, **Confirm** / **Edit sample prompts** / **Cancel**, from ``cogs.confirmation_buttons``).
The new card and thread go to the channel the old thread belongs to.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import discord

from bot.jobs.submission import Requester
from bot.jobs.train_further import quote_train_further
from cogs.confirmation import fit_embeds, training_embed
from cogs.confirmation_buttons import confirmation_view
from cogs.context import requester_from
from cogs.errors import report_error
from cogs.job_access import EPOCH, JOB, job_for, services_of
from cogs.replies import INFO_COLOUR
from storage.models import Job

Button = discord.ui.Button[discord.ui.View]


def requester_in_parent(interaction: discord.Interaction) -> Requester:
    """The member pressing, acting in the channel the thread belongs to: the new run gets its own
    card and thread there instead of posting into the old run's thread."""
    requester = requester_from(interaction)
    member = requester.member
    if member.parent_channel_id is not None:
        member = replace(member, channel_id=member.parent_channel_id, parent_channel_id=None)
    return replace(requester, member=member)


def origin_embed(source: Job, number: int, air: str | None) -> discord.Embed:
    return discord.Embed(
        title=f"🔁 Train further from epoch {number}"[:256],
        colour=INFO_COLOUR,
        description=(
            f"A new run of **{source.name}** that starts from epoch {number}'s LoRA (`{air}`), "
            f"with the same settings and the same images. Change the sample prompts below if you like."
        ),
    )


async def offer_continuation(interaction: discord.Interaction, job_id: str, number: int) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        source = await job_for(interaction, job_id)
        quote = await quote_train_further(
            services_of(interaction).training, source, number, requester_in_parent(interaction)
        )
        embeds = [
            origin_embed(source, number, quote.options.continue_from),
            training_embed(quote, warnings=quote.warnings),
        ]
        await interaction.followup.send(ephemeral=True, embeds=fit_embeds(embeds), view=confirmation_view(quote.job))
    except Exception as exc:
        await report_error(interaction, exc)


class TrainFurtherButton(discord.ui.DynamicItem[Button], template=rf"ltb:more:{JOB}:{EPOCH}"):
    def __init__(self, job_id: str, number: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Train further from here",
                emoji="🔁",
                style=discord.ButtonStyle.secondary,
                custom_id=f"ltb:more:{job_id}:{number}",
            )
        )
        self.job_id, self.number = job_id, number

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> TrainFurtherButton:
        return cls(match["job"], int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await offer_continuation(interaction, self.job_id, self.number)
