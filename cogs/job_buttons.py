"""The persistent buttons and menu of a run's posts: Download epoch N, Train further, pick an epoch.

They are ``DynamicItem``s: the job and the epoch live in the custom id (``ltb:dl:<job>:<n>``,
``ltb:more:<job>:<n>``, ``ltb:dlsel:<job>``), so they work after any restart. A download link
is made fresh at click time and shown only to the member who asked (signed URLs expire; a
permanent message must never hold one). Only the job's owner and server admins may download.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import discord

from bot.errors import UserFacingError
from bot.jobs.access import may_manage
from bot.jobs.epoch_files import EpochLink
from cogs.common import is_admin
from cogs.errors import report_error
from cogs.job_access import EPOCH, JOB, job_for, services_of
from cogs.train_further import TrainFurtherButton
from cogs.try_it import CompareButton, OpenRunButton, TryItButton, TryItSelect
from cogs.votes import PickButton, VoteSelect
from storage.models import Job

log = logging.getLogger(__name__)

MAX_LINK_BUTTON_URL = 512  # Discord: a link button's URL holds at most 512 characters
MAX_SELECT_OPTIONS = 25

Button = discord.ui.Button[discord.ui.View]
Select = discord.ui.Select[discord.ui.View]


class NotAllowedToDownload(UserFacingError):
    def __init__(self, owner_id: int) -> None:
        super().__init__(
            f"Only <@{owner_id}>, who trained this LoRA, and server admins (Manage Server) can download it.",
            title="Not your LoRA",
        )


def _size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB"
    return f"{max(1, round(size / 1024))} KiB"


def download_reply(job: Job, link: EpochLink) -> dict[str, Any]:
    """The ephemeral answer: file name and size, and the link (a button when it fits in one)."""
    until = f" It works until <t:{int(link.expires_at.timestamp())}:t>;" if link.expires_at else ""
    content = (
        f"**{link.filename}** · {_size(link.size)}\n"
        f"Epoch {link.number} of **{job.name}**, ready to download.{until} ask again any time for a fresh link."
    )
    if job.simulated:
        content += "\n🧪 SIMULATED: a small generated file, not a trained LoRA."
    view = discord.ui.View()
    if len(link.url) <= MAX_LINK_BUTTON_URL:
        view.add_item(
            discord.ui.Button(style=discord.ButtonStyle.link, url=link.url, label=f"Download epoch {link.number}")
        )
    else:
        content += f"\n{link.url}"
    return {"content": content[:2000], "view": view}


async def send_download(interaction: discord.Interaction, job_id: str, number: int) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        job = await job_for(interaction, job_id)
        if not may_manage(
            job, user_id=interaction.user.id, guild_id=interaction.guild_id, is_admin=is_admin(interaction)
        ):
            raise NotAllowedToDownload(job.user_id)
        link = await services_of(interaction).tracker.fresh_link(job, number)
        await interaction.followup.send(ephemeral=True, **download_reply(job, link))
    except Exception as exc:
        await report_error(interaction, exc)


class DownloadEpochButton(discord.ui.DynamicItem[Button], template=rf"ltb:dl:{JOB}:{EPOCH}"):
    def __init__(self, job_id: str, number: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=f"Download epoch {number}",
                emoji="⬇️",
                style=discord.ButtonStyle.primary,
                custom_id=f"ltb:dl:{job_id}:{number}",
            )
        )
        self.job_id, self.number = job_id, number

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> DownloadEpochButton:
        return cls(match["job"], int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await send_download(interaction, self.job_id, self.number)


class DownloadEpochSelect(discord.ui.DynamicItem[Select], template=rf"ltb:dlsel:{JOB}"):
    def __init__(
        self, job_id: str, epochs: Sequence[int] = (), *, select: Select | None = None, picked: int | None = None
    ) -> None:
        if select is None:
            shown = list(epochs)[-MAX_SELECT_OPTIONS:]
            # The owner's pick comes first (not pre-selected: choosing a selected option sends nothing).
            shown.sort(key=lambda n: n != picked)
            select = discord.ui.Select(
                custom_id=f"ltb:dlsel:{job_id}",
                placeholder="Download an epoch…",
                options=[
                    discord.SelectOption(
                        label=f"Epoch {n}" + (" ⭐ picked" if n == picked else ""), value=str(n), emoji="⬇️"
                    )
                    for n in shown
                ],
            )
        super().__init__(select)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> DownloadEpochSelect:
        return cls(match["job"], select=item if isinstance(item, discord.ui.Select) else None)

    async def callback(self, interaction: discord.Interaction) -> None:
        values = self.item.values
        if not values or not values[0].isdigit():
            await report_error(interaction, UserFacingError("Pick an epoch in the menu.", title="No epoch chosen"))
            return
        await send_download(interaction, self.job_id, int(values[0]))


def epoch_view(job_id: str, number: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(DownloadEpochButton(job_id, number))
    view.add_item(TrainFurtherButton(job_id, number))
    view.add_item(TryItButton(job_id, number))
    view.add_item(PickButton(job_id, number))
    return view


def download_select(job_id: str, epochs: Sequence[int], *, picked: int | None = None) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(DownloadEpochSelect(job_id, epochs, picked=picked))
    view.add_item(TryItSelect(job_id, list(epochs)))
    view.add_item(VoteSelect(job_id, list(epochs)))
    view.add_item(CompareButton(job_id))
    view.add_item(OpenRunButton(job_id))
    return view


DYNAMIC_ITEMS = (DownloadEpochButton, DownloadEpochSelect, TrainFurtherButton)
