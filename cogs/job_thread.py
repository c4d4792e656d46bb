"""Posting a submitted job's public card and opening the thread where its run is followed.

``/train`` calls ``open_job_thread`` right after Confirm; the tracker posts into the thread and
edits the card from then on, always by id (archived threads are not in the cache).
"""

from __future__ import annotations

import logging
from typing import Literal

import discord

from cogs.job_card import job_card_embed
from storage import Store
from storage.models import Job, ThreadMode

log = logging.getLogger(__name__)

THREAD_NAME_LIMIT = 100
ARCHIVE_AFTER_MINUTES: Literal[10080] = 10080  # a week: runs last hours, and people come back to pick an epoch


def thread_name(job: Job) -> str:
    prefix = "🧪 " if job.simulated else ""
    return f"{prefix}{job.name} · LoRA training"[:THREAD_NAME_LIMIT]


async def open_job_thread(
    client: discord.Client, store: Store, job: Job
) -> tuple[discord.Message, discord.Thread | None]:
    """Post the card in the job's channel and open its thread (public or private, per server).

    Returns the card and the thread (None when the channel cannot hold threads, e.g. a thread
    itself: the card is then the place to look). The ids are stored on the job.
    """
    channel = client.get_channel(job.channel_id) or await client.fetch_channel(job.channel_id)
    if not isinstance(channel, discord.abc.Messageable):
        raise RuntimeError(f"channel {job.channel_id} cannot receive messages")
    card = await channel.send(embed=job_card_embed(job))
    await store.jobs.set_card(job.id, card.channel.id, card.id)
    thread: discord.Thread | None = None
    settings = await store.guilds.get(job.guild_id)
    if isinstance(channel, discord.TextChannel):
        if settings.thread_mode is ThreadMode.PRIVATE:
            thread = await channel.create_thread(
                name=thread_name(job),
                type=discord.ChannelType.private_thread,
                invitable=False,
                auto_archive_duration=ARCHIVE_AFTER_MINUTES,
            )
            await thread.add_user(discord.Object(job.user_id))
        else:
            thread = await card.create_thread(name=thread_name(job), auto_archive_duration=ARCHIVE_AFTER_MINUTES)
    elif isinstance(channel, discord.Thread):
        thread = channel
    if thread is not None:
        await store.jobs.set_thread(job.id, thread.id)
        simulated = (
            " This is a **SIMULATED** run: no Buzz is spent and the results are generated." if job.simulated else ""
        )
        await thread.send(
            f"<@{job.user_id}>, your training was submitted. Every epoch's samples and download buttons "
            f"will appear here as they finish.{simulated}",
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(job.user_id)]),
        )
    return card, thread
