"""The bot process is killed mid-run while callbacks fail; after a restart it catches up.

The simulator runs in the test process (an EXTERNAL orchestrator for the bot: CIVITAI_MODE=real)
so the run goes on while the bot is dead. Every missed epoch is posted once after the restart,
none twice, and the card ends right.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.civitai.simulator import Simulator
from bot.config import CivitaiMode
from cogs.job_card import status_label
from storage.models import JobStatus
from tests.stage import Stage, StageMember
from tests.stage.bots import BotProcess, bot_in_process
from tests.tracking.helpers import PUBLIC_URL, epoch_messages, eventually, start_run

TOKEN = "operator-token"
EPOCHS = 6
SPEED = 100.0  # an epoch every ~0.4 s
LISTENING = re.compile(r"Web server listening on 127\.0\.0\.1:(\d+)")


@pytest.fixture
async def orchestrator() -> AsyncIterator[Simulator]:
    # Callbacks to a dead bot fail fast instead of retrying for a minute.
    sim = Simulator(speed=0, accept_any_token=True, callback_attempts=2, callback_backoff=0.05)
    await sim.start()
    yield sim
    await sim.stop()


def bot_port(process: BotProcess) -> int:
    """The port the bot's web server took (HTTP_PORT=0), from its latest start in the log."""
    ports = LISTENING.findall(process.log_path.read_text(errors="replace"))
    assert ports, f"no web server port in the log:\n{process.log_tail()}"
    return int(ports[-1])


async def test_a_killed_bot_catches_up_every_missed_epoch_once(
    stage: Stage, alice: StageMember, tmp_path: Path, orchestrator: Simulator
) -> None:
    sim, data = orchestrator, tmp_path / "bot"
    assert sim.base_url is not None
    settings = {
        "civitai_mode": CivitaiMode.REAL,
        "orchestrator_url": sim.base_url,
        "civitai_token": SecretStr(TOKEN),
        "public_url": PUBLIC_URL,
        "dataset_transport": "blobs",
    }
    # Submit and open the thread with the bot in this process (the simulator's clock stands still).
    async with bot_in_process(stage, data, **settings) as bot:
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=EPOCHS, steps=120)
        assert not job.simulated and job.workflow_id is not None
    record = sim.record(job.workflow_id)

    env = {
        "CIVITAI_MODE": "real",
        "ORCHESTRATOR_URL": sim.base_url,
        "CIVITAI_TOKEN": TOKEN,
        "PUBLIC_URL": PUBLIC_URL,
        "DATASET_TRANSPORT": "blobs",
        "POLL_DELAYS_SECONDS": "[0.05]",
        "CARD_EDIT_INTERVAL_SECONDS": "0.2",
    }
    process = BotProcess(stage, data, **env)
    await process.start()
    try:
        sim.route_host("bot.test", f"http://127.0.0.1:{bot_port(process)}")
        sim.speed = SPEED
        await stage.wait_message(thread, lambda m: m.content.startswith("**Epoch 2/"), timeout=20)

        await process.kill()
        # The run goes on; its callbacks find nobody.
        await eventually(lambda: sum(e.available for e in record.epochs) >= 4, "epochs while the bot is dead")
        sim.speed = 0
        await sim.settle()
        failed = [d for d in sim.callbacks.deliveries if d.status is None]
        assert failed, "callbacks were meant to fail while the bot was dead"
        missed = sum(e.available for e in record.epochs)

        await process.start()
        sim.route_host("bot.test", f"http://127.0.0.1:{bot_port(process)}")
        # The start-up reconcile posts what was missed, before anything new happens.
        await stage.wait_message(thread, lambda m: m.content.startswith(f"**Epoch {missed}/"), timeout=20)
        sim.speed = SPEED
        await stage.wait_message(thread, lambda m: "finished training" in m.content, timeout=30)
        await alice.wait_dm()

        card_id = job.card_message_id or stage.messages_in("general")[-1].id
        await stage.wait_message("general", lambda m: m.id == card_id and status_label(JobStatus.SUCCEEDED) in m.text)
    finally:
        await process.stop()

    numbers = [m.content.split(" ")[1] for m in epoch_messages(stage, thread)]
    assert numbers == [f"{n}/{EPOCHS}**" for n in range(1, EPOCHS + 1)], numbers
    assert len([m for m in stage.messages_in(thread) if "finished training" in m.content]) == 1
    assert len(stage.messages_in(alice.in_dm().channel)) == 1
    card = stage.messages[card_id]
    assert "100%" in card.text and f"epoch {EPOCHS}/{EPOCHS}" in card.text
    log = process.log_path.read_text(errors="replace")
    assert "Traceback" not in log and " ERROR " not in log, process.log_tail()
