"""/jobs list | show | cancel: a member's own runs, and nobody else's.

Autocomplete offers only the caller's jobs, and a typed id of someone else's job reads exactly
like an id that does not exist. Works in DMs too: a member's jobs are theirs wherever they ask.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.jobs.access import visible_job
from cogs.common import STATUS_CHOICES, STATUS_FILTERS
from cogs.context import services_of
from cogs.job_cancel import DYNAMIC_ITEMS as CANCEL_ITEMS
from cogs.job_cancel import cancel_prompt, job_buttons
from cogs.job_card import job_card_embed, status_label
from cogs.job_lists import DYNAMIC_ITEMS as LIST_ITEMS
from cogs.job_lists import JobQuery, render_page
from cogs.try_it import service_of
from storage.models import ACTIVE_STATUSES, Job, JobStatus

AUTOCOMPLETE_LIMIT = 25


def job_choice(job: Job) -> app_commands.Choice[str]:
    """``name · status · id`` (≤ 100 characters), the id as the value."""
    tail = f" · {status_label(job.status)} · {job.id}"
    return app_commands.Choice(name=job.name[: 100 - len(tail)] + tail, value=job.id)


async def own_job_choices(
    interaction: discord.Interaction, current: str, statuses: frozenset[JobStatus]
) -> list[app_commands.Choice[str]]:
    jobs = await services_of(interaction).store.jobs.search(
        interaction.user.id, current, status=statuses, limit=AUTOCOMPLETE_LIMIT
    )
    return [job_choice(job) for job in jobs]


class JobsCog(commands.GroupCog, group_name="jobs", group_description="Your LoRA training runs"):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="list", description="Your training runs, newest first")
    @app_commands.describe(status="Only runs in this state")
    @app_commands.choices(status=STATUS_CHOICES)
    async def list_jobs(self, interaction: discord.Interaction, status: str | None = None) -> None:
        query = JobQuery(interaction.user.id, status or "all")
        await interaction.response.send_message(ephemeral=True, **await render_page(interaction, query))

    @app_commands.command(name="show", description="A run's card: settings, status, epochs and buttons")
    @app_commands.describe(job="Start typing its name or id")
    async def show(self, interaction: discord.Interaction, job: str) -> None:
        found = await self._own(interaction, job)
        epochs = await services_of(interaction).store.epochs.posted_epochs(found.id)
        picked = await service_of(interaction).repo.picked(found.id)
        await interaction.response.send_message(
            embed=job_card_embed(found, epochs_done=len(epochs) or None, picked=picked),
            view=job_buttons(found),
            ephemeral=True,
        )

    @app_commands.command(name="cancel", description="Cancel one of your running jobs (asks first)")
    @app_commands.describe(job="Start typing its name or id")
    async def cancel(self, interaction: discord.Interaction, job: str) -> None:
        found = await self._own(interaction, job)
        await interaction.response.send_message(ephemeral=True, **cancel_prompt(found, actor_id=interaction.user.id))

    @show.autocomplete("job")
    async def show_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await own_job_choices(interaction, current, STATUS_FILTERS["all"])

    @cancel.autocomplete("job")
    async def cancel_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await own_job_choices(interaction, current, ACTIVE_STATUSES)

    @staticmethod
    async def _own(interaction: discord.Interaction, job_id: str) -> Job:
        # Admin powers never apply here: /jobs is about the caller's own runs only.
        return await visible_job(
            services_of(interaction).store, job_id, user_id=interaction.user.id, guild_id=None, is_admin=False
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(JobsCog(bot))
    items: tuple[Any, ...] = (*LIST_ITEMS, *CANCEL_ITEMS)
    bot.add_dynamic_items(*items)
