"""Posts each audit entry as one line in the server's log channel (``/admin log-channel``).

Anything in the bot audits through ``services.audit.record(...)``; this cog only listens.
Mentions in the line render as names but never ping anyone.
"""

from __future__ import annotations

import logging

import discord
from discord.ext import commands

from bot.app import TrainerBot
from bot.audit import describe
from storage.models import AuditEntry

log = logging.getLogger(__name__)


class AuditLogCog(commands.Cog):
    def __init__(self, bot: TrainerBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.services.audit.subscribe(self.post)

    async def cog_unload(self) -> None:
        self.bot.services.audit.unsubscribe(self.post)

    async def post(self, entry: AuditEntry) -> None:
        if entry.guild_id is None:
            return
        settings = await self.bot.services.store.guilds.get(entry.guild_id)
        targets = [settings.log_channel_id]
        if entry.action == "settings.log_channel":
            targets.append(entry.details.get("previous"))  # moving or stopping the log is said where it was
        line = describe(entry)
        for channel_id in dict.fromkeys(t for t in targets if isinstance(t, int)):
            await self._send(entry.guild_id, channel_id, line)

    async def _send(self, guild_id: int, channel_id: int, line: str) -> None:
        channel = self.bot.get_partial_messageable(channel_id, guild_id=guild_id)
        try:
            await channel.send(line, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            # A deleted channel or missing permission must not break the action being audited.
            log.warning("Could not post an audit line to channel %s of guild %s: %s %s",
                        channel_id, guild_id, exc.status, exc.code)  # fmt: skip


async def setup(bot: commands.Bot) -> None:
    assert isinstance(bot, TrainerBot)
    await bot.add_cog(AuditLogCog(bot))
