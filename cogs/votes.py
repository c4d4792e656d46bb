"""Choose together: the final grid's **Vote** menu and the owner's **Pick this epoch**.

``ltb:vote:<job>`` records one vote per member (voting again changes it) and edits the tally
into the grid's embed, throttled like the job card (``CardThrottle``: at most one edit per
interval, always the latest tally). ``ltb:pick:<job>:<n>`` on each epoch message lets the owner
mark the chosen epoch: its message gets a ⭐, the star leaves the epoch picked before, and the
job card and the grid name it. Votes and picks are in SQLite, so they survive restarts.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import discord
from discord.ext import commands

from bot.app import TrainerBot
from bot.generation.choosing import pick, tally_text, vote
from bot.jobs.card_throttle import CardThrottle
from bot.jobs.continuation import job_epoch_airs
from cogs.epoch_items import EpochButton, EpochMenu
from cogs.job_access import job_for
from cogs.job_card import SIMULATED_BADGE, job_card_embed
from cogs.try_it import service_of
from storage.generations import GenerationRepository
from storage.models import Job

log = logging.getLogger(__name__)

COG_NAME = "Votes"
VOTES_FIELD = "Votes"
PICKED_MARK = " · ⭐ Picked"
GRID_SEARCH_LIMIT = 50  # the final grid is among a thread's last messages


def _cog(interaction: discord.Interaction) -> Any:
    cog = interaction.client.get_cog(COG_NAME) if isinstance(interaction.client, commands.bot.BotBase) else None
    if cog is None:
        raise RuntimeError("the Votes cog is not loaded")
    return cog


class VoteSelect(
    EpochMenu, kind="vote", placeholder="Vote for the best epoch…", option_label="Vote for epoch {}", emoji="🗳️"
):
    async def chosen(self, interaction: discord.Interaction, number: int) -> None:
        job = await job_for(interaction, self.job_id)
        repo = service_of(interaction).repo
        if interaction.message is not None:
            await repo.set_vote_message(job.id, interaction.message.channel.id, interaction.message.id)
        await vote(repo, job, interaction.user.id, number)
        await interaction.response.send_message(
            f"🗳️ You voted for epoch {number}. Vote again to change it; the tally is on the grid." + simulated_note(job),
            ephemeral=True,
        )
        _cog(interaction).show_tally(job)


class PickButton(EpochButton, kind="pick", label="Pick this epoch"):
    async def clicked(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await job_for(interaction, self.job_id)
        before = await pick(service_of(interaction).repo, job, interaction.user.id, self.number)
        await _cog(interaction).show_pick(job, self.number, before)
        await interaction.followup.send(
            f"⭐ Epoch {self.number} is now the picked epoch of **{job.name}**.", ephemeral=True
        )


def simulated_note(job: Job) -> str:
    return f" · {SIMULATED_BADGE}" if job.simulated else ""


def _children(row: Any) -> list[Any]:
    return list(getattr(row, "children", []))


def with_votes(embed: discord.Embed, text: str) -> discord.Embed:
    """``embed`` with its Votes field set to ``text`` (added once, replaced after)."""
    for index, field in enumerate(embed.fields):
        if field.name == VOTES_FIELD:
            embed.set_field_at(index, name=VOTES_FIELD, value=text[:1024], inline=False)
            return embed
    return embed.add_field(name=VOTES_FIELD, value=text[:1024], inline=False)


class VotesCog(commands.Cog, name=COG_NAME):
    def __init__(self, bot: TrainerBot) -> None:
        self.bot = bot
        interval = bot.services.settings.card_edit_interval_seconds
        self.throttle = CardThrottle(interval, lambda job, _: self._edit_tally(job))
        self.repo = GenerationRepository(bot.services.store.db)

    def show_tally(self, job: Job) -> None:
        self.throttle.request(job, 0)

    async def _grid(self, job: Job) -> tuple[int, int] | None:
        """Where the run's final grid is: learnt from a vote, else found in the thread by its menu."""
        where = await self.repo.vote_message(job.id)
        if where is not None or job.thread_id is None:
            return where
        custom_id = VoteSelect(job.id).item.custom_id
        channel = self.bot.get_partial_messageable(job.thread_id, guild_id=job.guild_id)
        async for message in channel.history(limit=GRID_SEARCH_LIMIT):
            if any(getattr(c, "custom_id", None) == custom_id for row in message.components for c in _children(row)):
                await self.repo.set_vote_message(job.id, job.thread_id, message.id)
                return job.thread_id, message.id
        return None

    async def _edit_tally(self, job: Job) -> None:
        where = await self._grid(job)
        if where is None:
            return
        from cogs.job_buttons import download_select  # it shows this module's menu: imported late

        picked = await self.repo.picked(job.id)
        text = tally_text(await self.repo.tally(job.id), picked)
        channel = self.bot.get_partial_messageable(where[0], guild_id=job.guild_id)
        message = await channel.fetch_message(where[1])
        embed = with_votes(message.embeds[0] if message.embeds else discord.Embed(), text)
        epochs = sorted(n for n, _ in job_epoch_airs(job))
        await message.edit(embed=embed, view=download_select(job.id, epochs, picked=picked))

    async def show_pick(self, job: Job, number: int, before: int | None) -> None:
        """⭐ on the picked epoch's message (off the one before), the card and the grid name it."""
        posted = {e.epoch_number: e.message_id for e in await self.bot.services.store.epochs.posted_epochs(job.id)}
        channel_id = job.thread_id or job.card_channel_id
        if channel_id is not None:
            channel = self.bot.get_partial_messageable(channel_id, guild_id=job.guild_id)
            for epoch, starred in ((before, False), (number, True)):
                message_id = posted.get(epoch or 0)
                if message_id is None or (epoch == number and not starred):
                    continue
                with contextlib.suppress(discord.NotFound):
                    message = await channel.fetch_message(message_id)
                    content = message.content.replace(PICKED_MARK, "")
                    await message.edit(content=content + PICKED_MARK if starred else content)
        if job.card_channel_id and job.card_message_id:
            card = self.bot.get_partial_messageable(job.card_channel_id, guild_id=job.guild_id)
            with contextlib.suppress(discord.NotFound):
                await card.get_partial_message(job.card_message_id).edit(
                    embed=job_card_embed(job, epochs_done=len(posted) or None, picked=number)
                )
        self.show_tally(job)


DYNAMIC_ITEMS = (VoteSelect, PickButton)


async def setup(bot: commands.Bot) -> None:
    if not isinstance(bot, TrainerBot):
        raise RuntimeError("cogs.votes needs the TrainerBot (its services)")
    await bot.add_cog(VotesCog(bot))
    bot.add_dynamic_items(*DYNAMIC_ITEMS)
