"""A PUBLIC_URL the orchestrator would refuse (http://, a port) with DATASET_TRANSPORT=auto.

Before, the bot started silently and every /train ended in "This is a bug on our side" (the
dataset link failed the orchestrator's AIR pattern). Now it says so once at start-up, with the
fix, and runs as without PUBLIC_URL: datasets go as blobs, jobs are followed by polling.
"""

from __future__ import annotations

from pathlib import Path

from tests.stage import Stage, StageMember
from tests.stage.bots import BotProcess
from tests.train.helpers import attachment, confirmation, submitted


async def test_a_bad_public_url_is_a_warning_and_training_still_works(
    stage: Stage, tmp_path: Path, alice: StageMember
) -> None:
    process = BotProcess(stage, tmp_path / "data", PUBLIC_URL="http://bot.example.com:8080", SIMULATOR_SPEED="20000")
    await process.start()
    try:
        await alice.slash("train flux1", dataset=attachment(3), name="Rex", steps=100, epochs=1)
        await alice.click(await confirmation(alice), label="Confirm")
        await alice.wait_ephemeral(submitted)
        card = await stage.wait_message("general", lambda m: "Rex" in m.embed["title"])
        await stage.wait_message(card, lambda m: "finished training" in m.content, timeout=15)
    finally:
        assert await process.stop() == 0
    log = process.log_path.read_text(errors="replace")
    warnings = [line for line in log.splitlines() if "Ignoring PUBLIC_URL" in line]
    assert len(warnings) == 1 and " WARNING " in warnings[0], log
    assert "must start with https://" in warnings[0] and "has a port" in warnings[0]
    assert "polling" in warnings[0] and "blobs" in warnings[0]
    assert "Traceback" not in log and "bug on our side" not in log
