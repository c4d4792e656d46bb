"""Cancelling a job from Discord: the confirm prompt, its buttons, and telling the channel.

``/jobs cancel``, ``/admin cancel`` and the Cancel button of ``/jobs show`` all end here.
Buttons (``ltb:cancelask|cancelyes|cancelno:<job_id>``) are persistent and re-check on every
click that the member may act on the job: its owner, or an admin of the job's own server.
The tracker may put ``AskCancelButton`` on the public card: a click by anyone else is refused.
"""

from __future__ import annotations

import logging
from typing import Any

import discord

from bot.jobs.access import visible_job
from bot.jobs.cancel import REFUND_NOTE, Cancellation
from cogs.buttons import JobButton
from cogs.common import CANCELLABLE, is_admin
from cogs.context import client_services, services_of
from cogs.job_card import job_card_embed, status_label
from cogs.replies import INFO_COLOUR, OK_COLOUR
from storage.models import Job

log = logging.getLogger(__name__)


async def job_for(interaction: discord.Interaction, job_id: str) -> Job:
    """The job if the member clicking may act on it; else the same "unknown job" as a wrong id."""
    return await visible_job(
        services_of(interaction).store,
        job_id,
        user_id=interaction.user.id,
        guild_id=interaction.guild_id,
        is_admin=is_admin(interaction),
    )


def cancel_prompt(job: Job, *, actor_id: int) -> dict[str, Any]:
    """The ephemeral "are you sure" message with its two buttons."""
    whose = "" if job.user_id == actor_id else f" (started by <@{job.user_id}>)"
    simulated = " This is a SIMULATED run: nothing is charged either way." if job.simulated else ""
    embed = discord.Embed(
        title=f"Cancel {job.name}?"[:256],
        description=(
            f"Run `{job.id}`{whose} is **{status_label(job.status)}**. Cancelling stops it at Civitai for good; "
            f"epochs already finished stay downloadable in its thread. {REFUND_NOTE}{simulated}"
        ),
        colour=INFO_COLOUR,
    )
    view = discord.ui.View(timeout=None)
    view.add_item(ConfirmCancelButton(job.id))
    view.add_item(KeepJobButton(job.id))
    return {"embed": embed, "view": view}


def outcome_embed(result: Cancellation) -> discord.Embed:
    job = result.job
    if result.lost is not None and result.closed:
        lost = result.lost
        text = f"**{lost.headline}.** {lost.detail}\nI closed it here: it no longer counts as running. {lost.fix}"
        return discord.Embed(title=f"Closed {job.name}"[:256], description=text[:4096], colour=OK_COLOUR)
    if not result.submitted:
        text = "It was never submitted, so nothing was charged. The confirmation is closed."
    elif not result.cancelled:
        text = f"It had already ended before the cancel reached Civitai: **{status_label(job.status)}**."
    else:
        money = ""
        if result.settlement is not None and not job.simulated:
            money = (
                f" Civitai reports {result.settlement.debited:,.0f} Buzz taken and "
                f"{result.settlement.credited:,.0f} given back for it."
            )
        text = f"Stopped at Civitai.{money} {REFUND_NOTE}"
    title = f"Cancelled {job.name}" if result.cancelled else f"{job.name} was not cancelled"
    return discord.Embed(title=title[:256], description=text, colour=OK_COLOUR)


async def announce_cancel(client: discord.Client, result: Cancellation, actor_id: int) -> None:
    """Edit the public card, say so in the run's thread, and DM the owner when someone else (an
    admin) cancelled it. Best effort: the cancel stands whatever Discord answers."""
    job = result.job
    if not (result.closed and result.submitted):
        return
    by_admin = actor_id != job.user_id
    what = f"closed this run: {result.lost.headline}." if result.lost else f"cancelled this run. {REFUND_NOTE}"
    try:
        if job.card_channel_id and job.card_message_id:
            card = client.get_partial_messageable(job.card_channel_id).get_partial_message(job.card_message_id)
            await card.edit(embed=job_card_embed(job))
        if job.thread_id:
            who = f"<@{job.user_id}>, a server admin (<@{actor_id}>)" if by_admin else f"<@{actor_id}>"
            await client.get_partial_messageable(job.thread_id).send(
                f"🚫 {who} {what}",
                allowed_mentions=discord.AllowedMentions(users=[discord.Object(job.user_id)] if by_admin else False),
            )
    except discord.HTTPException as exc:
        log.warning("Job %s was cancelled but its card or thread could not be updated: %s", job.id, exc.status)
    if by_admin and (await client_services(client).store.users.get(job.user_id)).dm_notify:
        await dm_owner(client, result, actor_id)


async def dm_owner(client: discord.Client, result: Cancellation, actor_id: int) -> None:
    job = result.job
    simulated = " (a SIMULATED run)" if job.simulated else ""
    run = f"your run **{discord.utils.escape_markdown(job.name)}** (`{job.id}`){simulated}"
    if result.lost is not None:
        text = f"🚫 A server admin (<@{actor_id}>) closed {run}: {result.lost.headline}. {result.lost.detail}"
    else:
        text = f"🚫 A server admin (<@{actor_id}>) cancelled {run}. {REFUND_NOTE}"
    try:
        user = client.get_user(job.user_id) or await client.fetch_user(job.user_id)
        await user.send(text, allowed_mentions=discord.AllowedMentions.none())
    except discord.HTTPException as exc:  # DMs closed (50007) or the member is gone
        log.info("Could not DM the owner of job %s about its cancel: %s %s", job.id, exc.status, exc.code)


class AskCancelButton(JobButton, kind="cancelask", label="Cancel run", style=discord.ButtonStyle.danger):
    async def clicked(self, interaction: discord.Interaction) -> None:
        job = await job_for(interaction, self.job_id)
        await interaction.response.send_message(ephemeral=True, **cancel_prompt(job, actor_id=interaction.user.id))


class ConfirmCancelButton(JobButton, kind="cancelyes", label="Yes, cancel it", style=discord.ButtonStyle.danger):
    async def clicked(self, interaction: discord.Interaction) -> None:
        job = await job_for(interaction, self.job_id)
        await interaction.response.defer()  # the orchestrator call may take a moment
        result = await services_of(interaction).canceller.cancel(job, actor_id=interaction.user.id)
        await interaction.edit_original_response(embed=outcome_embed(result), view=None)
        await announce_cancel(interaction.client, result, interaction.user.id)


class KeepJobButton(JobButton, kind="cancelno", label="Keep it", style=discord.ButtonStyle.secondary):
    async def clicked(self, interaction: discord.Interaction) -> None:
        job = await job_for(interaction, self.job_id)
        embed = discord.Embed(title=f"{job.name} keeps running"[:256], colour=OK_COLOUR)
        await interaction.response.edit_message(embed=embed, view=None)


def job_buttons(job: Job) -> discord.ui.View:
    """Buttons under a card shown with /jobs show: cancel while it can be, and a jump to its thread."""
    view = discord.ui.View(timeout=None)
    if job.status in CANCELLABLE:
        view.add_item(AskCancelButton(job.id))
    if job.thread_id:
        view.add_item(
            discord.ui.Button(label="Open thread", url=f"https://discord.com/channels/{job.guild_id}/{job.thread_id}")
        )
    elif job.card_channel_id and job.card_message_id:
        url = f"https://discord.com/channels/{job.guild_id}/{job.card_channel_id}/{job.card_message_id}"
        view.add_item(discord.ui.Button(label="Open card", url=url))
    return view


DYNAMIC_ITEMS = (AskCancelButton, ConfirmCancelButton, KeepJobButton)
