"""The long-lived objects of one bot process, created once and shared by the cogs.

Nothing here imports discord: the services are the core, and the cogs reach them through
``TrainerBot.services``. ``start`` opens them in dependency order and ``close`` shuts them in
reverse, so a half-started process never leaks a socket or a database handle.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import SecretStr

from bot.accounts import AccountService
from bot.audit import AuditTrail
from bot.captioning.service import CaptioningService
from bot.civitai.provision import Orchestrator, start_orchestrator
from bot.clock import Clock
from bot.config import Settings, ensure_secret_key
from bot.dataset.store import DatasetStore
from bot.jobs.cancel import JobCanceller
from bot.jobs.policy import Cooldowns
from bot.jobs.submission import TrainingService
from bot.jobs.tracker import Tracker
from bot.logging_setup import register_secret
from bot.metrics import BotMetrics, LoopLagMonitor
from bot.retention import Retention
from bot.secretbox import SecretBox
from bot.shared_folder import leave_marker
from bot.web.server import WebServer
from bot.web.signing import DatasetUrlSigner
from bot.web.sinks import CallbackRelay, CaptionRunCallbacks, StoreHookJobs, job_counts_by_status
from bot.web.wiring import build_web_server, start_web_server
from storage import Store
from storage.models import GuildDefaults

log = logging.getLogger(__name__)


def derived_key(secret_key: str, purpose: str) -> bytes:
    """A key for one purpose only, derived from SECRET_KEY."""
    return hmac.new(secret_key.encode(), f"lora-trainer-bot/{purpose}".encode(), hashlib.sha256).digest()


@dataclass
class Services:
    settings: Settings
    store: Store
    secretbox: SecretBox  # encrypts Civitai tokens before they reach the store
    # The store stamps rows with this same clock, so budget periods move with it in tests.
    clock: Clock
    datasets: DatasetStore
    metrics: BotMetrics
    # None when the HTTP port was busy and nothing needs the server (see start_web_server).
    web: WebServer | None
    orchestrator: Orchestrator
    training: TrainingService
    cooldowns: Cooldowns
    audit: AuditTrail  # store + log-channel lines for setting changes, submits, cancels, failures
    canceller: JobCanceller
    accounts: AccountService  # Civitai tokens of members and servers; forgetting a member
    # Removes expired datasets, delivery records, drafts and temp files in the background.
    retention: Retention
    # Follows submitted runs; started by the cog that shows its events (cogs.job_posts).
    tracker: Tracker
    # Auto-captioning pays, counts and is refused like training: built on its service.
    captioning: CaptioningService
    # Samples the event loop's lag into /metrics (lorabot_event_loop_lag_seconds).
    loop_lag: LoopLagMonitor

    @classmethod
    async def start(cls, settings: Settings, clock: Clock | None = None) -> Services:
        clock = clock or Clock()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        secret_key = ensure_secret_key(settings).get_secret_value()
        register_secret(secret_key)
        if settings.civitai_token is not None:
            register_secret(settings.civitai_token.get_secret_value())
        if settings.database_password:
            register_secret(settings.database_password)
        metrics = BotMetrics()
        datasets = DatasetStore.from_settings(settings)
        if settings.shard_scope is not None:
            leave_marker(settings)  # the doctor of every process sees this one shares the folder
        secretbox = SecretBox(SecretStr(secret_key))
        async with contextlib.AsyncExitStack() as stack:
            defaults = GuildDefaults(cooldown_seconds=settings.command_cooldown_seconds)
            store = await Store.open(settings.database_target, defaults=defaults, clock=clock.now)
            stack.push_async_callback(store.close)
            metrics.jobs.set_source(lambda: job_counts_by_status(store))
            relay = CallbackRelay()
            web = await start_web_server(
                build_web_server(
                    settings,
                    metrics=metrics,
                    jobs=StoreHookJobs(store),
                    target=relay,
                    datasets=datasets,
                    readiness=store_ready(store),
                )
            )
            if web is not None:
                stack.push_async_callback(web.stop)
            orchestrator = await start_orchestrator(
                settings, store, web_base_url=web.base_url if web else None, metrics=metrics.count_orchestrator_call
            )
            stack.push_async_callback(orchestrator.close)
            audit = AuditTrail(store)
            stack.push_async_callback(audit.close)
            training = TrainingService(
                settings=settings,
                store=store,
                secretbox=secretbox,
                clock=clock,
                orchestrator=orchestrator.client,
                datasets=datasets,
                signer=DatasetUrlSigner.from_settings(settings),
                hook_key=derived_key(secret_key, "hook-secrets"),
                simulated=orchestrator.simulated,
                audit=audit,
            )
            canceller = JobCanceller(
                store=store,
                secretbox=secretbox,
                orchestrator=orchestrator.client,
                operator_token=settings.civitai_token,
                audit=audit,
                simulated=orchestrator.simulated,
            )
            accounts = AccountService(
                store=store,
                secretbox=secretbox,
                orchestrator=orchestrator.client,
                audit=audit,
                canceller=canceller,
                datasets=datasets,
            )
            tracker = Tracker(
                settings=settings,
                store=store,
                secretbox=secretbox,
                client=orchestrator.client,
                clock=clock,
                metrics=metrics,
                simulated=orchestrator.simulated,
                audit=audit,
            )
            captioning = CaptioningService(training)
            relay.target = CaptionRunCallbacks(jobs=tracker, captions=captioning)
            training.recheck = tracker.recheck_later
            services = cls(
                settings=settings,
                store=store,
                secretbox=secretbox,
                clock=clock,
                datasets=datasets,
                metrics=metrics,
                web=web,
                orchestrator=orchestrator,
                training=training,
                cooldowns=Cooldowns(clock),
                audit=audit,
                canceller=canceller,
                accounts=accounts,
                retention=Retention(settings, store, datasets, clock, metrics=metrics),
                tracker=tracker,
                captioning=captioning,
                loop_lag=LoopLagMonitor(metrics.loop_lag),
            )
            services.retention.start()
            services.loop_lag.start()
            stack.pop_all()  # started: from now on close() owns the shutdown
        return services

    @property
    def simulated(self) -> bool:
        return self.orchestrator.simulated

    async def close(self) -> None:
        """Stop the clean-up and callbacks first, then the tracker, the orchestrator client, the database."""
        try:
            await self.loop_lag.stop()
            await self.audit.close()
            await self.captioning.stop()
            with contextlib.suppress(Exception):
                await self.retention.stop()
            if self.web is not None:
                await self.web.stop()
            await self.tracker.stop()
            with contextlib.suppress(Exception):
                await self.orchestrator.close()
        finally:
            await self.store.close()


def store_ready(store: Store) -> Callable[[], Awaitable[bool]]:
    """For /healthz: the database answers."""

    async def ready() -> bool:
        await store.get_meta("healthz")
        return True

    return ready
