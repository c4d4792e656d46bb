"""Train further from here: a confirmation, like /train's, for a run that continues from an epoch.

The button (``ltb:more:<job>:<n>``) quotes the new run through the core
(``bot.jobs.train_further``: same settings, the stored dataset checked again, ``continue_from`` =
the epoch's AIR) and answers the owner ephemerally with the price and **Confirm** / **Cancel**
(``ltb:moreok:<job>``, ``ltb:moreno:<job>``, on the new draft). Confirm submits once and opens the
new run's card and thread in the channel the old thread belongs to.
"""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.errors import UserFacingError
from bot.jobs.policy import Member
from bot.jobs.submission import Quote, Requester
from bot.jobs.train_further import quote_train_further
from cogs.errors import report_error
from cogs.job_access import EPOCH, JOB, job_for, services_of
from cogs.job_card import SIMULATED_BADGE
from cogs.job_thread import open_job_thread
from cogs.replies import INFO_COLOUR, OK_COLOUR
from storage.models import Job, JobStatus

Button = discord.ui.Button[discord.ui.View]
# Claimed by the Confirm click that posts the new run's card, so a double click posts one.
CARD_CLAIM = "card:posting"


def requester_for(interaction: discord.Interaction) -> Requester:
    """The member pressing, acting in the channel a thread belongs to (where the new card goes)."""
    if interaction.guild_id is None:
        raise UserFacingError("Press this button in the server, where the run's thread is.", title="Server only")
    user = interaction.user
    roles = frozenset(role.id for role in user.roles) if isinstance(user, discord.Member) else frozenset()
    channel = interaction.channel
    channel_id = interaction.channel_id or 0
    if isinstance(channel, discord.Thread) and channel.parent_id:
        channel_id = channel.parent_id
    return Requester(interaction.guild_id, Member(user_id=user.id, role_ids=roles, channel_id=channel_id))


def confirmation_embed(source: Job, number: int, quote: Quote) -> discord.Embed:
    options = quote.options
    title = f"🔁 Train further from epoch {number}"
    if quote.simulated:
        title = f"{SIMULATED_BADGE} · {title}"
    embed = discord.Embed(
        title=title[:256],
        colour=INFO_COLOUR,
        description=(
            f"A new run of **{source.name}** that starts from epoch {number}'s LoRA "
            f"(`{options.continue_from}`), with the same settings and the same {quote.job.image_count} images."
        ),
    )
    price = f"{quote.price:,} Buzz" + (" (estimate)" if quote.price_is_estimate else "")
    embed.add_field(name="Price", value=price + (" · SIMULATED, nothing is spent" if quote.simulated else ""))
    embed.add_field(name="Who pays", value=quote.payer[:1024])
    embed.add_field(
        name="Settings",
        value=f"{options.variant} · {options.steps} steps · {options.epochs} epochs · lr {options.lr:g} · "
        f"dim {options.network_dim}/{options.network_alpha}",
        inline=False,
    )
    if quote.warnings:
        embed.add_field(name="Worth a look", value="\n".join(f"• {w}" for w in quote.warnings)[:1024], inline=False)
    embed.set_footer(text="Confirm within 15 minutes; nothing is submitted before you do.")
    return embed


def confirmation_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ConfirmFurtherButton(job_id))
    view.add_item(CancelFurtherButton(job_id))
    return view


async def offer_continuation(interaction: discord.Interaction, job_id: str, number: int) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        source = await job_for(interaction, job_id)
        services = services_of(interaction)
        quote = await quote_train_further(services.training, source, number, requester_for(interaction))
        await interaction.followup.send(
            ephemeral=True, embed=confirmation_embed(source, number, quote), view=confirmation_view(quote.job.id)
        )
    except Exception as exc:
        await report_error(interaction, exc)


def submitted_embed(job: Job) -> discord.Embed:
    where = f" Follow it in <#{job.thread_id}>." if job.thread_id else ""
    return discord.Embed(title="Submitted", colour=OK_COLOUR, description=f"**{job.name}** is on its way.{where}")


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


class ConfirmFurtherButton(discord.ui.DynamicItem[Button], template=rf"ltb:moreok:{JOB}"):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(label="Confirm", style=discord.ButtonStyle.success, custom_id=f"ltb:moreok:{job_id}")
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ConfirmFurtherButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        try:
            services = services_of(interaction)
            job = await services.training.confirm(self.job_id, requester_for(interaction))
            if job.status is JobStatus.SUBMITTED and await services.store.events.mark_handled(job.id, CARD_CLAIM):
                await open_job_thread(interaction.client, services.store, job)
                job = await services.store.jobs.get(job.id) or job
            await interaction.edit_original_response(embed=submitted_embed(job), view=None)
        except Exception as exc:
            await report_error(interaction, exc)


class CancelFurtherButton(discord.ui.DynamicItem[Button], template=rf"ltb:moreno:{JOB}"):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id=f"ltb:moreno:{job_id}")
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> CancelFurtherButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        try:
            services = services_of(interaction)
            await services.training.discard(self.job_id, requester_for(interaction))
            job = await services.store.jobs.get(self.job_id)
            if job is not None and job.status is not JobStatus.DISCARDED:
                raise UserFacingError(
                    "This run was already submitted, so it can't be cancelled here. Use `/jobs cancel` to stop it.",
                    title="Already submitted",
                )
            cancelled = discord.Embed(title="Cancelled", description="Nothing was submitted.", colour=INFO_COLOUR)
            await interaction.edit_original_response(embed=cancelled, view=None)
        except Exception as exc:
            await report_error(interaction, exc)


FURTHER_ITEMS = (TrainFurtherButton, ConfirmFurtherButton, CancelFurtherButton)
