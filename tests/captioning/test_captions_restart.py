"""The bot stops in the middle of captioning; after a restart the run is followed again, never
submitted or charged twice, and pressing Caption once more shows the captions.

The simulator runs in the test process (an external orchestrator for the bot) so the workflow
outlives the first bot; its clock stands still until the second bot is up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.civitai.simulator import Simulator
from bot.civitai.simulator.captioning import is_captioning
from bot.config import CivitaiMode
from storage.captions import CaptionRunStatus
from tests.captioning.helpers import assert_valid_captioning_requests, captioned_zip
from tests.stage import Attachment, Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.train.helpers import confirmation, eventually

TOKEN = "operator-token"


@pytest.fixture
async def orchestrator() -> AsyncIterator[Simulator]:
    sim = Simulator(speed=0, accept_any_token=True)
    await sim.start()
    yield sim
    await sim.stop()


async def test_a_restart_mid_captioning_resumes_without_charging_twice(
    stage: Stage, alice: StageMember, tmp_path: Path, orchestrator: Simulator
) -> None:
    sim, data = orchestrator, tmp_path / "bot"
    assert sim.base_url is not None
    settings = {
        "civitai_mode": CivitaiMode.REAL, "orchestrator_url": sim.base_url, "civitai_token": SecretStr(TOKEN),
        "command_cooldown_seconds": 0,
    }  # fmt: skip
    async with bot_in_process(stage, data, **settings) as bot:
        await alice.slash("train flux1", dataset=Attachment("d.zip", captioned_zip(6)), trigger_word="sks",
                          auto_caption="missing")  # fmt: skip
        offer = await alice.wait_ephemeral(lambda m: any(b.get("label") == "Caption" for b in m.buttons))
        assert "SIMULATED" not in offer.text  # a real-mode bot, even if Civitai here is the simulator
        await alice.click(offer, label="Caption")
        await eventually(lambda: any(is_captioning(b) for b in sim.workflows.values()))
        runs = await bot.services.store.captions.unfinished()
        assert len(runs) == 1
        run_id = runs[0].id
        for _ in range(200):
            run = await bot.services.store.captions.get(run_id)
            if run is not None and run.status is CaptionRunStatus.RUNNING:
                break
            await asyncio.sleep(0.02)
    # The first bot is gone with the workflow half-way; the second one resumes it at start-up.
    sim.speed = 50_000
    async with bot_in_process(stage, data, **settings) as bot:
        store = bot.services.store
        for _ in range(500):
            run = await store.captions.get(run_id)
            if run is not None and run.status is CaptionRunStatus.SUCCEEDED:
                break
            await asyncio.sleep(0.02)
        assert run is not None and run.status is CaptionRunStatus.SUCCEEDED and run.result_digest
        await alice.click(stage.messages[offer.id], label="Caption")  # the member's message, as it was left
        shown = await confirmation(alice)
        assert "0 kept · 6 generated · 0 replaced · 0 failed" in shown.text
    bodies = [b for b in sim.workflows.values() if is_captioning(b)]
    assert len(bodies) == 1
    assert_valid_captioning_requests(bodies)
    debits = [c for c in sim.charges(TOKEN) if c["type"] == "debit"]
    assert [c["amount"] for c in debits] == [12]
