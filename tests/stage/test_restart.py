"""The bot as operators run it (python -m bot), killed with SIGKILL and started again."""

from __future__ import annotations

from tests.stage import Stage, StageMember
from tests.stage.bots import BotProcess


async def test_the_killed_bot_comes_back_and_answers_again(
    stage: Stage, bot_process: BotProcess, alice: StageMember
) -> None:
    assert (await (await alice.slash("help")).reply()).embed["title"] == "LoRA Trainer"
    syncs = [r for r in stage.requests if r.route.startswith("PUT /applications")]

    await bot_process.kill()
    await stage.wait_for(lambda: not stage.gateway.connected or None, "the dead bot's connection to drop")
    await bot_process.start()  # waits for a new IDENTIFY and READY

    assert stage.gateway.identify_count == 2
    assert (await (await alice.slash("help")).reply()).embed["title"] == "LoRA Trainer"
    # Commands were unchanged, so the restarted bot did not sync them again.
    assert [r for r in stage.requests if r.route.startswith("PUT /applications")] == syncs
