"""Simulated mode survives the bot being killed: ``python -m bot`` with its in-process simulator,
SIGKILLed mid-run and started again on the same DATA_DIR. The simulator's state (workflows,
blobs, its clock) is in DATA_DIR, so the run is found where simulated time has taken it, every
epoch is posted exactly once and the run ends with its grid; when the bot was down for longer
than the run, the end is told once on start."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.civitai.provision import SIMULATOR_DIR
from bot.civitai.simulator.persistence import FILENAME
from tests.stage import Channel, Stage, StageMember
from tests.stage.bots import BotProcess
from tests.tracking.helpers import epoch_messages, image_size
from tests.train.helpers import attachment, confirmation, submitted

EPOCHS = 6
STEPS = 120
# ~42 simulated seconds before training, then ~38 per epoch (120 steps, 2 prompts): at ×100 a run
# lasts about 2.7 s of real time.
ENV = {
    "SIMULATOR_SPEED": "100",
    "POLL_DELAYS_SECONDS": "[0.05, 0.1]",
    "POLL_INTERVAL_SECONDS": "0.2",
    "CARD_EDIT_INTERVAL_SECONDS": "0.2",
    "COMMAND_COOLDOWN_SECONDS": "0",
}


def is_final(message: object) -> bool:
    return "finished training" in getattr(message, "content", "")


async def _submit(stage: Stage, alice: StageMember) -> Channel:
    """/train and Confirm, as a member does; the run's thread."""
    await alice.slash("train flux1", dataset=attachment(3), trigger_word="sks", steps=STEPS, epochs=EPOCHS,
                      sample_prompts="sks dog on a beach | sks dog in snow")  # fmt: skip
    await alice.click(await confirmation(alice), label="Confirm")
    await alice.wait_ephemeral(submitted)
    return await stage.wait_thread(lambda t: True, parent="general")


def _assert_told_once(stage: Stage, thread: Channel, alice: StageMember, process: BotProcess) -> None:
    numbers = [m.content.split(" ")[1] for m in epoch_messages(stage, thread)]
    assert numbers == [f"{n}/{EPOCHS}**" for n in range(1, EPOCHS + 1)], numbers
    finals = [m for m in stage.messages_in(thread) if is_final(m)]
    assert len(finals) == 1
    width, height = image_size(stage.files(finals[0])["grid.png"])
    assert height > EPOCHS * 64 and width > 0  # a row per epoch
    assert len([m for m in stage.messages_in(alice.in_dm().channel) if is_final(m)]) == 1
    assert not [m for m in stage.messages_in(thread) if "not found on Civitai" in m.text]
    log = process.log_path.read_text(errors="replace")
    assert "Traceback" not in log and " ERROR " not in log, process.log_tail()


async def _kill_and_restart(
    stage: Stage, alice: StageMember, data: Path, *, after_epoch: int, down_for: float
) -> int:
    """Submit, SIGKILL the bot once epoch ``after_epoch`` is posted, start it again after
    ``down_for`` seconds and wait for the end; checks everything was told once. Returns how
    many epochs were posted before the kill."""
    process = BotProcess(stage, data, **ENV)
    await process.start()
    try:
        thread = await _submit(stage, alice)
        await stage.wait_message(thread, lambda m: m.content.startswith(f"**Epoch {after_epoch}/"), timeout=30)
        await process.kill()
        posted = len(epoch_messages(stage, thread))
        await asyncio.sleep(down_for)
        await process.start()
        await stage.wait_message(thread, is_final, timeout=60)
        await alice.wait_dm(is_final)
        await asyncio.sleep(0.5)  # time for a duplicate to show, were one coming
    finally:
        await process.stop()
    _assert_told_once(stage, thread, alice, process)
    return posted


async def test_killed_mid_run_the_simulated_run_goes_on_after_the_restart(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    await _kill_and_restart(stage, alice, tmp_path / "bot", after_epoch=2, down_for=0)
    assert (tmp_path / "bot" / SIMULATOR_DIR / FILENAME).exists()


async def test_a_run_that_ended_while_the_bot_was_down_is_told_once_on_start(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    # Down for longer than what was left of the run: it ends meanwhile.
    posted = await _kill_and_restart(stage, alice, tmp_path / "bot", after_epoch=1, down_for=4.0)
    assert posted < EPOCHS
