"""The long-lived objects of one bot process, created once and shared by the cogs.

Nothing here imports discord: the services are the core, and the cogs reach them through
``TrainerBot.services``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.clock import Clock
from bot.config import Settings, ensure_secret_key
from bot.logging_setup import register_secret
from bot.secretbox import SecretBox
from storage import Store
from storage.models import GuildDefaults

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    store: Store
    secretbox: SecretBox  # encrypts Civitai tokens before they reach the store
    # The store stamps rows with this same clock, so budget periods move with it in tests.
    clock: Clock

    @classmethod
    async def start(cls, settings: Settings, clock: Clock | None = None) -> Services:
        clock = clock or Clock()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        secret_key = ensure_secret_key(settings)
        register_secret(secret_key.get_secret_value())
        if settings.civitai_token is not None:
            register_secret(settings.civitai_token.get_secret_value())
        defaults = GuildDefaults(cooldown_seconds=settings.command_cooldown_seconds)
        store = await Store.open(settings.database_path, defaults=defaults, clock=clock.now)
        return cls(settings=settings, store=store, secretbox=SecretBox(secret_key), clock=clock)

    async def close(self) -> None:
        await self.store.close()
