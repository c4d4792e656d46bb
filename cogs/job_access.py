"""What the buttons of a run's posts need first: the services, the job, and who may act on it."""

from __future__ import annotations

import discord

from bot.jobs.submission import JobNotFound
from bot.services import Services
from storage.models import Job

# The parts of the custom ids ``ltb:<kind>:<job>[:<epoch>]`` (DynamicItem templates).
JOB = r"(?P<job>[A-Za-z0-9_-]{1,64})"
EPOCH = r"(?P<n>[0-9]{1,3})"


def services_of(interaction: discord.Interaction) -> Services:
    services = getattr(interaction.client, "services", None)
    if not isinstance(services, Services):
        raise RuntimeError("the client has no services (not a TrainerBot?)")
    return services


def is_server_admin(interaction: discord.Interaction, job: Job) -> bool:
    """Manage Server (or Administrator) in the job's own server."""
    if interaction.guild_id != job.guild_id:
        return False
    permissions = interaction.permissions
    return permissions.manage_guild or permissions.administrator


async def job_for(interaction: discord.Interaction, job_id: str) -> Job:
    """The job a button names, if it belongs where the button was pressed (any, in DMs)."""
    job = await services_of(interaction).store.jobs.get(job_id)
    if job is None:
        raise JobNotFound()
    if interaction.guild_id is not None and interaction.guild_id != job.guild_id:
        raise JobNotFound()
    return job
