"""Paginated job lists: a member's own (``/jobs list``) and a whole server's (``/admin jobs``).

Pages turn with ◀ ▶ buttons whose custom ids carry the whole query, so they keep working
after a restart: ``ltb:jobs:<user>:<page>:<status>`` and
``ltb:gjobs:<guild>:<user or 0>:<page>:<status>``. Each click checks again who may see the
list: the member themselves, or an admin of that very server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import discord

from bot.jobs.policy import relative_time
from cogs.common import STATUS_FILTERS, NotAllowed, require_admin
from cogs.context import services_of
from cogs.errors import report_error
from cogs.job_card import status_label
from cogs.replies import INFO_COLOUR
from storage.models import Job

PAGE_SIZE = 10


@dataclass(frozen=True)
class JobQuery:
    """One page of a list: a member's jobs (``guild_id`` None) or a server's (``guild_id`` set)."""

    user_id: int | None
    status: str = "all"
    page: int = 0
    guild_id: int | None = None

    def custom_id(self, page: int) -> str:
        if self.guild_id is None:
            return f"ltb:jobs:{self.user_id}:{page}:{self.status}"
        return f"ltb:gjobs:{self.guild_id}:{self.user_id or 0}:{page}:{self.status}"

    async def fetch(self, interaction: discord.Interaction) -> JobPage:
        """This page's jobs; a page past the end (jobs were removed meanwhile) becomes the last one."""
        jobs = services_of(interaction).store.jobs
        statuses = STATUS_FILTERS[self.status]
        total = await jobs.count(guild_id=self.guild_id, user_id=self.user_id, status=statuses)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        page = min(self.page, pages - 1)
        shown = await jobs.matching(
            guild_id=self.guild_id, user_id=self.user_id, status=statuses, limit=PAGE_SIZE, offset=page * PAGE_SIZE
        )
        return JobPage(shown, total, page, pages)


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    total: int
    number: int  # from 0
    count: int


def job_line(job: Job, *, with_owner: bool) -> str:
    price = job.final_cost or job.price_charged or job.price_quoted or job.price_estimate
    parts = [f"`{job.id}`", f"**{discord.utils.escape_markdown(job.name)[:60]}**", status_label(job.status)]
    if with_owner:
        parts.append(f"<@{job.user_id}>")
    if price is not None:
        parts.append(f"{price:,.0f} Buzz" + (" (simulated)" if job.simulated else ""))
    parts.append(relative_time(job.created_at))
    return " · ".join(parts)


async def render_page(interaction: discord.Interaction, query: JobQuery) -> dict[str, Any]:
    """The message (embed and buttons) for one page of ``query``."""
    found = await query.fetch(interaction)
    page, pages = found.number, found.count
    whose = "Your jobs" if query.guild_id is None else "Jobs in this server"
    title = whose + ("" if query.status == "all" else f" · {query.status.replace('_', ' ')}")
    lines = [job_line(job, with_owner=query.guild_id is not None) for job in found.jobs]
    if not lines:
        lines = ["No jobs match." + (" Start one with `/train flux1`." if query.guild_id is None else "")]
    description = "\n".join(lines)
    if query.guild_id is not None and query.user_id:
        description = f"Member: <@{query.user_id}>\n\n" + description
    embed = discord.Embed(title=title, description=description[:4096], colour=INFO_COLOUR)
    embed.set_footer(text=f"Page {page + 1} of {pages} · {found.total} job(s) · /jobs show <id> for a card")
    view = discord.ui.View(timeout=None)
    if pages > 1:
        kind = MemberJobsPage if query.guild_id is None else GuildJobsPage
        view.add_item(kind(replace(query, page=max(0, page - 1)), label="◀", disabled=page == 0))
        view.add_item(kind(replace(query, page=page + 1), label="▶", disabled=page >= pages - 1))
    return {"embed": embed, "view": view}


class JobsPageButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=r"(?!)"):
    """◀ or ▶ of a job list; the subclasses say how the custom id reads and who may turn the page."""

    def __init__(self, query: JobQuery, *, label: str = "▶", disabled: bool = False) -> None:
        custom_id = query.custom_id(query.page)
        style = discord.ButtonStyle.secondary
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=custom_id, disabled=disabled))
        self.query = query

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            self.check_allowed(interaction)
            await interaction.response.edit_message(**await render_page(interaction, self.query))
        except Exception as exc:
            await report_error(interaction, exc)

    def check_allowed(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError


def status_from(match: Any) -> str:
    return str(match["status"]) if match["status"] in STATUS_FILTERS else "all"


class MemberJobsPage(JobsPageButton, template=r"ltb:jobs:(?P<user>\d+):(?P<page>\d+):(?P<status>[a-z_]+)"):
    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any, /
    ) -> MemberJobsPage:
        return cls(JobQuery(int(match["user"]), status_from(match), int(match["page"])))

    def check_allowed(self, interaction: discord.Interaction) -> None:
        if interaction.user.id != self.query.user_id:
            raise NotAllowed("This list belongs to another member. Run `/jobs list` for yours.")


class GuildJobsPage(
    JobsPageButton, template=r"ltb:gjobs:(?P<guild>\d+):(?P<user>\d+):(?P<page>\d+):(?P<status>[a-z_]+)"
):
    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any, /
    ) -> GuildJobsPage:
        user = int(match["user"]) or None
        return cls(JobQuery(user, status_from(match), int(match["page"]), guild_id=int(match["guild"])))

    def check_allowed(self, interaction: discord.Interaction) -> None:
        require_admin(interaction)
        if interaction.guild_id != self.query.guild_id:
            raise NotAllowed("That list is about another server. Run `/admin jobs` here.")


DYNAMIC_ITEMS = (MemberJobsPage, GuildJobsPage)
