"""Which orchestrator this process talks to: Civitai's, or the built-in simulator.

Simulated mode (``CIVITAI_MODE=simulate``, and the default when no Civitai token is
configured anywhere) serves the whole flow in-process at a quick but realistic pace, so an
admin can see everything before spending Buzz, and the tests run against the same code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.civitai.client import CallMetrics, OrchestratorClient
from bot.civitai.simulator import Simulator
from bot.config import CivitaiMode, Settings
from storage import Store

log = logging.getLogger(__name__)
SIMULATOR_DIR = "simulator"


@dataclass
class Orchestrator:
    client: OrchestratorClient
    simulator: Simulator | None

    @property
    def simulated(self) -> bool:
        return self.simulator is not None

    async def close(self) -> None:
        await self.client.close()
        if self.simulator is not None:
            await self.simulator.stop()


async def wants_simulation(settings: Settings, store: Store) -> bool:
    if settings.civitai_mode is not CivitaiMode.AUTO:
        return settings.civitai_mode is CivitaiMode.SIMULATE
    return settings.civitai_token is None and not await store.guilds.any_server_token()


async def start_orchestrator(
    settings: Settings, store: Store, *, web_base_url: str | None, metrics: CallMetrics | None = None
) -> Orchestrator:
    if not await wants_simulation(settings, store):
        log.info("Using the Civitai orchestrator at %s", settings.orchestrator_url)
        return Orchestrator(OrchestratorClient(settings.orchestrator_url, metrics=metrics), None)
    # Its state lives beside the bot's: a restarted bot finds its simulated runs where the
    # simulated time (which went on meanwhile) has taken them.
    simulator = Simulator(
        speed=settings.simulator_speed, accept_any_token=True, data_dir=settings.data_dir / SIMULATOR_DIR
    )
    # No access log: the bot's client already logs each call (at DEBUG, with the job's ids); the
    # simulator's lines would repeat them at INFO, signed blob URLs included.
    base_url = await simulator.start("127.0.0.1", 0, access_log=False)
    if settings.public_url and web_base_url:
        # The simulator runs beside the bot: reach PUBLIC_URL's host (hosted datasets,
        # callbacks) directly on the embedded web server instead of through the internet.
        simulator.route_host(urlsplit(settings.public_url).hostname or "", web_base_url)
    why = (
        "CIVITAI_MODE=simulate"
        if settings.civitai_mode is CivitaiMode.SIMULATE
        else "no Civitai token is configured (CIVITAI_TOKEN or a server token)"
    )
    log.warning(
        "SIMULATED mode (%s): training runs against the built-in orchestrator simulator at %s. Nothing is "
        "charged and results are generated; every job says SIMULATED. Set CIVITAI_TOKEN to train for real.",
        why,
        base_url,
    )
    return Orchestrator(OrchestratorClient(base_url, metrics=metrics), simulator)
