"""The discord.py client: the one place where the core is wired to Discord.

``setup_hook`` runs after login and before the gateway connects: it opens the store, builds
the services the cogs use, loads the cogs and syncs slash commands when their definition
changed (never on every boot: Discord allows 200 command creates a day per server).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import discord
import yarl
from discord.ext import commands

from bot.config import Settings
from bot.invite import PERMISSIONS, SCOPES, invite_url, permission_names
from bot.services import Services

log = logging.getLogger(__name__)

COMMAND_HASH_KEY = "command_tree_hash"


def point_discord_at(settings: Settings) -> None:
    """Send REST and gateway traffic where the settings say (a REST proxy, or the test stage).

    discord.py keeps these as class attributes, so this is process-wide, which matches one
    bot per process.
    """
    discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


class TrainerBot(commands.AutoShardedBot):
    """Sharded as the settings say: SHARD_IDS of SHARD_COUNT (one process of several), else every
    shard Discord recommends (GET /gateway/bot) in this one process."""

    def __init__(self, settings: Settings, services: Services | None = None) -> None:
        # The bot never joins voice: spare operators discord.py's warnings about voice libraries.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.none()
        intents.guilds = True
        sharding: dict[str, Any] = {"shard_count": settings.shard_count}
        if settings.shard_ids is not None:
            sharding["shard_ids"] = list(settings.shard_ids)
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, help_command=None, **sharding)
        self.settings = settings
        self._services = services

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("services are created in setup_hook")
        return self._services

    async def setup_hook(self) -> None:
        from cogs import EXTENSIONS

        if self._services is None:
            self._services = await Services.start(self.settings)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.sync_commands_if_changed()
        self.log_invite_url()

    def log_invite_url(self) -> None:
        """Tell the operator how to add the bot to a server (the application id is known after login)."""
        if self.application_id is None:
            return
        log.info(
            "Add the bot to a server with %s (scopes: %s; permissions %d: %s)",
            invite_url(self.application_id),
            " ".join(SCOPES),
            PERMISSIONS,
            permission_names(),
        )

    async def close(self) -> None:
        try:
            if self._services is not None:
                await self._services.close()
        finally:
            await super().close()

    def command_tree_hash(self) -> str:
        payload: list[Any] = [command.to_dict(self.tree) for command in self.tree.get_commands()]
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    async def sync_commands_if_changed(self) -> None:
        """Sync slash commands only when their definition differs from the last sync."""
        guild = discord.Object(self.settings.dev_guild_id) if self.settings.dev_guild_id else None
        scope = f"guild:{guild.id}" if guild else "global"
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        current = self.command_tree_hash()
        # Commands belong to an application: the same DATA_DIR pointed at a new one (a new
        # DISCORD_TOKEN) must sync again, or the new application is left with no commands.
        key = f"{COMMAND_HASH_KEY}:{self.application_id}:{scope}"
        if await self.services.store.get_meta(key) == current:
            log.info("Slash commands unchanged since the last sync (%s); not syncing", scope)
            return
        try:
            await self.tree.sync(guild=guild)
        except discord.HTTPException as exc:
            log.warning("Could not sync slash commands (%s): %s", scope, exc)
            return
        await self.services.store.set_meta(key, current)
        log.info("Synced slash commands (%s)", scope)
