"""The long-lived objects of one bot process, created once and shared by the cogs.

Nothing here imports discord: the services are the core, and the cogs reach them through
``TrainerBot.services``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.config import Settings, ensure_secret_key
from bot.logging_setup import register_secret
from storage import Store

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    store: Store

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        register_secret(ensure_secret_key(settings).get_secret_value())
        if settings.civitai_token is not None:
            register_secret(settings.civitai_token.get_secret_value())
        store = await Store.open(settings.database_path)
        return cls(settings=settings, store=store)

    async def close(self) -> None:
        await self.store.close()
