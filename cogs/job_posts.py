"""What the tracker says about a run, shown on Discord: card edits, epoch posts, the end, DMs.

``DiscordJobSink`` implements the core's ``JobEventSink``. Everything is written by id
(``get_partial_messageable``): archived threads are not in the cache, and a send unarchives
them. A deleted thread or channel (10003), a locked one, or one the bot may no longer post in
sends the post to the owner's DMs instead, and the job remembers it (``jobs.thread_gone``): later
posts go straight to the DMs, and only the first says why. When the DMs are closed too there is
nowhere left, and that is logged, not retried. Every message carries the event's nonce (Discord
drops a resend within minutes) and its marker (``post_marker``: the embed footer, or the last
line of a text message), which ``find_post`` looks for after a crash.

Each send or edit Discord refuses is counted in ``lorabot_discord_send_failures_total`` by
kind, and every line logged here carries the job's ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import discord
from discord.ext import commands

from bot.app import TrainerBot
from bot.jobs.events import (
    EpochReady,
    Notice,
    NoticeKind,
    SampleImage,
    carries_marker,
    dm_key,
    message_nonce,
    notice_key,
    post_marker,
)
from bot.logging_setup import about_job
from bot.render.shrink import shrink_to_fit
from cogs.job_buttons import DYNAMIC_ITEMS, download_select, epoch_view
from cogs.job_card import SIMULATED_BADGE, job_card_embed
from cogs.job_thread import open_job_thread
from cogs.replies import ERROR_COLOUR, INFO_COLOUR, OK_COLOUR
from storage import Store
from storage.models import Job

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # Discord's per-file limit without boosts
REQUEST_LIMIT = 25 * 1024 * 1024  # all files of one message together
MAX_FILES = 10
UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
CANNOT_DM = 50007
THREAD_LOCKED = 160005
# Losing the thread or the right to post in it sends posts to the owner instead.
FALLBACK_CODES = frozenset({UNKNOWN_CHANNEL, THREAD_LOCKED, 50001, 50013})
# Handled event: the owner was told (once) why the job's posts come to their DMs.
FALLBACK_TOLD = "thread:gone:told"
FALLBACK_NOTE = (
    "I can't post in this run's thread any more (it was deleted or locked, or I lost access), "
    "so I'm posting here instead.\n"
)
# How many recent messages of a channel ``find_post`` reads (one request: Discord's maximum).
SEARCH_DEPTH = 100

Build = Callable[[], dict[str, Any]]


def failure_kind(exc: Exception) -> str:
    """The ``kind`` label of a send or edit Discord refused (or that never reached it)."""
    if isinstance(exc, discord.HTTPException):
        if exc.code == CANNOT_DM:
            return "dm_closed"
        if exc.code == UNKNOWN_CHANNEL:
            return "thread_gone"
        if exc.code == UNKNOWN_MESSAGE:
            return "message_gone"
        if exc.code == THREAD_LOCKED:
            return "thread_locked"
        if isinstance(exc, discord.Forbidden):
            return "forbidden"
        if isinstance(exc, discord.NotFound):
            return "not_found"
        return "server_error" if exc.status >= 500 else "http_error"
    return "unreachable"


def simulated_suffix(job: Job) -> str:
    return f" · {SIMULATED_BADGE}" if job.simulated else ""


def jump_url(job: Job, message_id: int | None) -> str | None:
    channel = job.thread_id or job.card_channel_id
    if channel is None:
        return None
    suffix = f"/{message_id}" if message_id else ""
    return f"https://discord.com/channels/{job.guild_id}/{channel}{suffix}"


def shrink_all(samples: Sequence[SampleImage], limit: int) -> list[tuple[str, bytes]]:
    """``(filename, bytes)`` of each sample, re-encoded smaller when over the upload limit."""
    out = []
    for sample in samples:
        data, name = shrink_to_fit(sample.data, limit, filename=sample.filename)
        out.append((name, data))
    return out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _marked(text: str, job_id: str, key: str, limit: int = 2000) -> str:
    """``text`` with the post's marker as its last line (small print), clipped so it stays."""
    marker = f"\n-# {post_marker(job_id, key)}"
    return _clip(text, limit - len(marker)) + marker


class DiscordJobSink:
    def __init__(self, bot: TrainerBot) -> None:
        self.bot = bot

    @property
    def store(self) -> Store:
        return self.bot.services.store

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        """Count a send or edit that fails (the caller still decides what the failure means)."""
        try:
            yield
        except (discord.HTTPException, OSError, TimeoutError) as exc:
            self.bot.services.metrics.discord_send_failures.inc(kind=failure_kind(exc))
            raise

    # --- the card -------------------------------------------------------------------------------

    async def show_card(self, job: Job, epochs_done: int) -> None:
        with about_job(job):
            await self._show_card(job, epochs_done)

    async def _show_card(self, job: Job, epochs_done: int) -> None:
        if job.card_channel_id is None or job.card_message_id is None:
            return
        if not job.status.finished:
            stored = await self.store.jobs.get(job.id)
            if stored is not None and stored.status.finished:
                return  # a throttled edit arriving after the run ended (e.g. a /jobs cancel): stale
        channel = self.bot.get_partial_messageable(job.card_channel_id, guild_id=job.guild_id)
        try:
            with self._counted():
                await channel.get_partial_message(job.card_message_id).edit(
                    embed=job_card_embed(job, epochs_done=epochs_done)
                )
        except discord.NotFound:
            log.info("The card of job %s was deleted; not editing it", job.id)

    # --- posts ----------------------------------------------------------------------------------

    async def post_epoch(self, event: EpochReady) -> int | None:
        with about_job(event.job):
            return await self._post_epoch(event)

    async def _post_epoch(self, event: EpochReady) -> int | None:
        job = event.job
        samples = event.samples[:MAX_FILES]
        per_file = min(self._upload_limit(job), REQUEST_LIMIT // max(1, len(samples)) - 64 * 1024)
        files = await asyncio.to_thread(shrink_all, samples, per_file)
        embed = discord.Embed(title=_clip(f"Epoch {event.number}/{event.total} · {job.name}", 256), colour=INFO_COLOUR)
        if event.prompts:
            lines = [f"{i}. {_clip(prompt, 300)}" for i, prompt in enumerate(event.prompts, 1)]
            embed.description = _clip("**Sample prompts**\n" + "\n".join(lines), 3000)
        if event.air:
            embed.add_field(
                name="Use it on Civitai",
                value=f"`{event.air}`\nPaste this AIR into the `loras` field of a generation.",
                inline=False,
            )
        if event.missing_samples:
            embed.add_field(
                name="Samples", value=f"{event.missing_samples} sample image(s) could not be fetched from Civitai."
            )
        simulated = " · SIMULATED: generated, not trained" if job.simulated else ""
        embed.set_footer(text=post_marker(job.id, event.key) + simulated)

        def build() -> dict[str, Any]:
            return {
                "content": f"**Epoch {event.number}/{event.total}**{simulated_suffix(job)}",
                "embed": embed,
                "files": [discord.File(io.BytesIO(data), filename=name) for name, data in files],
                "view": epoch_view(job.id, event.number),
            }

        message = await self._post(job, event.key, build)
        return message.id if message else None

    def _upload_limit(self, job: Job) -> int:
        guild = self.bot.get_guild(job.guild_id)
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    async def post_notice(self, notice: Notice) -> int | None:
        with about_job(notice.job):
            return await self._post_notice(notice)

    async def _post_notice(self, notice: Notice) -> int | None:
        job = notice.job
        grid = None
        if notice.grid is not None:
            grid = await asyncio.to_thread(shrink_to_fit, notice.grid, self._upload_limit(job), filename="grid.png")
        embed = self._notice_embed(notice, grid_name=grid[1] if grid else None)
        view = download_select(job.id, notice.epochs) if notice.epochs else None

        def build() -> dict[str, Any]:
            kwargs: dict[str, Any] = {"content": self._headline(notice), "embed": embed}
            if grid is not None:
                kwargs["file"] = discord.File(io.BytesIO(grid[0]), filename=grid[1])
            if view is not None:
                kwargs["view"] = view
            return kwargs

        message = await self._post(job, f"notice:{notice.kind}", build)
        return message.id if message else None

    @staticmethod
    def _headline(notice: Notice) -> str:
        job = notice.job
        if notice.kind is NoticeKind.SUCCEEDED:
            text = f"✅ **{job.name}** finished training: {len(notice.epochs)} epochs to pick from."
        elif notice.kind is NoticeKind.UNDER_REVIEW:
            text = f"⏸️ **{job.name}** is waiting for a moderator."
        else:
            headline = notice.explanation.headline if notice.explanation else "The run stopped"
            mark = "❓" if notice.kind is NoticeKind.LOST else "❌"
            text = f"{mark} **{job.name}**: {headline}."
        return _clip(text, 1900) + simulated_suffix(job)

    @staticmethod
    def _notice_embed(notice: Notice, *, grid_name: str | None) -> discord.Embed:
        job = notice.job
        if notice.kind is NoticeKind.SUCCEEDED:
            embed = discord.Embed(
                title="Comparison grid",
                colour=OK_COLOUR,
                description="One row per epoch, one column per sample prompt. "
                "Pick the epoch you like below to download it.",
            )
            if grid_name is not None:
                embed.set_image(url=f"attachment://{grid_name}")
        else:
            explanation = notice.explanation
            colour = INFO_COLOUR if notice.kind is NoticeKind.UNDER_REVIEW else ERROR_COLOUR
            embed = discord.Embed(
                title=_clip(explanation.headline if explanation else "The run stopped", 256),
                description=explanation.detail if explanation else None,
                colour=colour,
            )
            if explanation is not None:
                embed.add_field(name="What to do", value=_clip(explanation.fix, 1024), inline=False)
            if notice.epochs and notice.kind.ends_run:
                done = ", ".join(str(n) for n in notice.epochs)
                embed.add_field(
                    name="Finished epochs",
                    value=_clip(f"Epoch(s) {done} finished before the run stopped; you can still download them.", 1024),
                    inline=False,
                )
        if notice.final_cost is not None and notice.kind.ends_run:
            embed.add_field(
                name="Cost", value=f"{notice.final_cost:,.0f} Buzz" + (" (simulated)" if job.simulated else "")
            )
        embed.set_footer(text=post_marker(job.id, notice_key(notice.kind)) + (" · SIMULATED" if job.simulated else ""))
        return embed

    async def send_dm(self, notice: Notice, message_id: int | None) -> None:
        with about_job(notice.job):
            await self._send_dm(notice, message_id)

    async def _send_dm(self, notice: Notice, message_id: int | None) -> None:
        job = notice.job
        if await self._thread_gone(job):
            return  # with the thread gone, the notice itself went to these DMs
        link = jump_url(job, message_id)
        text = self._headline(notice)
        if notice.explanation is not None:
            if notice.kind is NoticeKind.LOST:  # what happened and what was charged: no run left to look at
                text += f"\n{notice.explanation.detail}"
            text += f"\n{notice.explanation.fix}"
        if link:
            text += f"\nSee it here: {link}"
        try:
            with self._counted():
                dm = await self.bot.create_dm(discord.Object(job.user_id))
                content = _marked(text, job.id, dm_key(notice.kind))
                await dm.send(content, nonce=message_nonce(job.id, f"dm:{notice.kind}"))
        except discord.Forbidden as exc:
            if exc.code != CANNOT_DM:
                raise
            log.info("The owner of job %s does not accept DMs; saying so in the thread", job.id)
            await self._dms_closed(job, notice)

    async def _dms_closed(self, job: Job, notice: Notice) -> None:
        if await self._thread_gone(job):
            return  # the thread is gone and DMs are closed: nowhere left to say anything
        content = _marked(
            f"<@{job.user_id}>, I couldn't send you a DM about this run because your DMs are closed to me. "
            "Allow direct messages from server members to get them, or turn them off with "
            "`/settings notify dm:off`." + simulated_suffix(job),
            job.id,
            dm_key(notice.kind),  # it stands for the DM: found again in the thread after a crash
        )

        def build() -> dict[str, Any]:
            return {
                "content": content,
                "allowed_mentions": discord.AllowedMentions(users=[discord.Object(job.user_id)]),
            }

        await self._post(job, f"dm-closed:{notice.kind}", build, fall_back=False)

    async def reopen(self, job: Job) -> None:
        with about_job(job):
            await open_job_thread(self.bot, self.store, job)

    async def not_submitted(self, job: Job) -> None:
        """Said where the member ran ``/train`` (their confirmation said "checking"), else in DMs."""
        content = (
            f"<@{job.user_id}>, your run **{discord.utils.escape_markdown(job.name)}** (`{job.id}`) did not start: "
            "Civitai never created it, so nothing was charged for it. Run `/train flux1` again when you're ready."
            + simulated_suffix(job)
        )
        mention = discord.AllowedMentions(users=[discord.Object(job.user_id)])
        nonce = message_nonce(job.id, "not-submitted")
        with about_job(job):
            try:
                with self._counted():
                    channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
                    await channel.send(content, allowed_mentions=mention, nonce=nonce)
                return
            except discord.HTTPException as exc:
                if exc.code not in FALLBACK_CODES:
                    raise
            await self._to_owner(job, "not-submitted", lambda: {"content": content}, about_thread=False)

    # --- finding a post again ---------------------------------------------------------------------

    async def find_post(self, job: Job, key: str) -> int | None:
        with about_job(job):
            for channel in await self._places(job):
                found = await self._search(channel, job, key)
                if found is not None:
                    return found
            return None

    async def _places(self, job: Job) -> list[discord.abc.Messageable]:
        """Everywhere a post of the job could have gone: its thread (or card channel), the owner's DMs."""
        places: list[discord.abc.Messageable] = []
        channel_id = job.thread_id or job.card_channel_id
        if channel_id is not None:
            places.append(self.bot.get_partial_messageable(channel_id, guild_id=job.guild_id))
        try:
            places.append(await self.bot.create_dm(discord.Object(job.user_id)))
        except (discord.NotFound, discord.Forbidden):
            log.info("No DM channel with the owner of job %s to look in", job.id)
        return places

    async def _search(self, channel: discord.abc.Messageable, job: Job, key: str) -> int | None:
        """The bot's latest message in ``channel`` carrying the marker of ``key``, if any. A channel
        that is gone or closed to the bot holds nothing; any other failure propagates (try later)."""
        me = self.bot.user.id if self.bot.user else None
        try:
            async for message in channel.history(limit=SEARCH_DEPTH):
                if message.author.id != me:
                    continue
                texts = [message.content, *(embed.footer.text for embed in message.embeds)]
                if any(carries_marker(text, job.id, key) for text in texts):
                    return message.id
        except (discord.NotFound, discord.Forbidden) as exc:
            log.info("Cannot read channel %s for job %s (%s); the post is not there", channel, job.id, exc.code)
        return None

    # --- where posts go -------------------------------------------------------------------------

    async def _thread_gone(self, job: Job) -> bool:
        """Whether the job's posts go to its owner's DMs (read afresh: an earlier post of the same
        refresh may have found the thread gone)."""
        if job.thread_gone:
            return True
        stored = await self.store.jobs.get(job.id)
        return stored is not None and stored.thread_gone

    async def _post(self, job: Job, key: str, build: Build, *, fall_back: bool = True) -> discord.Message | None:
        """Post in the job's thread (else its card's channel), or to the owner when that is gone."""
        nonce = message_nonce(job.id, key)
        channel_id = job.thread_id or job.card_channel_id
        if channel_id is not None and not await self._thread_gone(job):
            channel = self.bot.get_partial_messageable(channel_id, guild_id=job.guild_id)
            try:
                with self._counted():
                    return await channel.send(nonce=nonce, **build())
            except discord.HTTPException as exc:
                if exc.code not in FALLBACK_CODES:
                    raise
                log.info("Cannot post in the thread of job %s (%s); its posts go to its owner", job.id, exc.code)
                await self.store.jobs.mark_thread_gone(job.id)
        if not fall_back:
            return None
        return await self._to_owner(job, key, build)

    async def _to_owner(
        self, job: Job, key: str, build: Build, *, about_thread: bool = True
    ) -> discord.Message | None:
        """Post to the owner's DMs; the first post that comes instead of the thread says why."""
        kwargs = build()
        explain = about_thread and not await self.store.events.is_handled(job.id, FALLBACK_TOLD)
        if explain:  # said once per job: later posts just come here
            kwargs["content"] = _clip(FALLBACK_NOTE + str(kwargs.get("content") or ""), 2000)
        try:
            with self._counted():
                dm = await self.bot.create_dm(discord.Object(job.user_id))
                message = await dm.send(nonce=message_nonce(job.id, f"owner:{key}"), **kwargs)
        except discord.Forbidden as exc:
            if exc.code != CANNOT_DM:
                raise
            log.warning("Job %s: its thread is gone and its owner's DMs are closed; %s not shown", job.id, key)
            return None
        if explain:
            await self.store.events.mark_handled(job.id, FALLBACK_TOLD)
        return message


async def setup(bot: commands.Bot) -> None:
    if not isinstance(bot, TrainerBot):
        raise RuntimeError("cogs.job_posts needs the TrainerBot (its services)")
    bot.add_dynamic_items(*DYNAMIC_ITEMS)
    tracker = bot.services.tracker
    tracker.attach(DiscordJobSink(bot))
    await tracker.start()
