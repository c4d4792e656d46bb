"""The long-lived objects of one bot process, created once and shared by the cogs.

Nothing here imports discord: the services are the core, and the cogs reach them through
``TrainerBot.services``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.clock import Clock
from bot.config import Settings, ensure_secret_key
from bot.logging_setup import register_secret
from bot.metrics import BotMetrics
from bot.secretbox import SecretBox
from bot.web.server import WebServer
from bot.web.sinks import StoreHookJobs, job_counts_by_status
from bot.web.wiring import start_web_server
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
    metrics: BotMetrics = field(default_factory=BotMetrics)
    # None when the HTTP port was busy and nothing needs the server (see start_web_server).
    web: WebServer | None = None

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
        services = cls(settings=settings, store=store, secretbox=SecretBox(secret_key), clock=clock)
        services.metrics.jobs.set_source(lambda: job_counts_by_status(store))
        try:
            services.web = await start_web_server(
                settings, metrics=services.metrics, jobs=StoreHookJobs(store), readiness=services.ready
            )
        except BaseException:
            await store.close()
            raise
        return services

    async def ready(self) -> bool:
        """For /healthz: the database answers."""
        await self.store.get_meta("healthz")
        return True

    async def close(self) -> None:
        try:
            if self.web is not None:
                await self.web.stop()
        finally:
            await self.store.close()
