"""What the buttons of a run's posts need first: the services, and the job they name."""

from __future__ import annotations

import discord

from bot.jobs.submission import JobNotFound
from cogs.context import services_of
from storage.models import Job

# The parts of the custom ids ``ltb:<kind>:<job>[:<epoch>]`` (DynamicItem templates).
JOB = r"(?P<job>[A-Za-z0-9_-]{1,64})"
EPOCH = r"(?P<n>[0-9]{1,3})"

__all__ = ["EPOCH", "JOB", "job_for", "services_of"]


async def job_for(interaction: discord.Interaction, job_id: str) -> Job:
    """The job a button names, if it belongs where the button was pressed (any, in DMs: posts
    go to the owner's DMs when the thread is gone, and only the owner sees those)."""
    job = await services_of(interaction).store.jobs.get(job_id)
    if job is None:
        raise JobNotFound()
    if interaction.guild_id is not None and interaction.guild_id != job.guild_id:
        raise JobNotFound()
    return job
