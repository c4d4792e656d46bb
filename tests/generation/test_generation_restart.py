"""A restart between the claim and the recorded submit: the generation is submitted once, charged
once and its images posted once. The simulator runs outside the bot (CIVITAI_MODE=real), so the
workflow the lost answer created is still there after the restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.civitai.simulator import Simulator
from bot.config import CivitaiMode
from bot.generation.options import GenerationOptions
from bot.generation.template import build_template
from tests.generation.helpers import finished_run, generation_service, image_gen_requests, is_images
from tests.stage import Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.tracking.helpers import FAST

TOKEN = "operator-token"


@pytest.fixture
async def orchestrator() -> AsyncIterator[Simulator]:
    sim = Simulator(speed=400, accept_any_token=True)
    await sim.start()
    yield sim
    await sim.stop()


async def test_a_restart_mid_submit_submits_charges_and_posts_once(
    stage: Stage, alice: StageMember, tmp_path: Path, orchestrator: Simulator
) -> None:
    sim, data = orchestrator, tmp_path / "bot"
    assert sim.base_url is not None
    settings = FAST | {
        "civitai_mode": CivitaiMode.REAL,
        "orchestrator_url": sim.base_url,
        "civitai_token": SecretStr(TOKEN),
        "dataset_transport": "blobs",
        "command_cooldown_seconds": 0,
    }
    async with bot_in_process(stage, data, **settings) as bot:
        _, thread, epochs, _ = await finished_run(bot, stage, alice, tmp_path, epochs=2)
        modal = await (await alice.click(epochs[1], label="Try it")).modal()
        offer = await (await alice.submit_modal(modal, prompt="sks dog at night", seed="77")).reply()
        generation_id = offer.embed["footer"]["text"].split()[1]
        # The crash: Confirm claimed the generation and its submit reached Civitai, but the answer
        # was lost before the bot recorded it.
        repo = generation_service(bot).repo
        assert (await repo.claim(generation_id)).refusal is None
        generation = await repo.get(generation_id)
        assert generation is not None
        template = build_template(
            GenerationOptions.from_dict(generation.params),
            external_id=generation.external_id,
            generation_id=generation_id,
        )
        await bot.services.orchestrator.client.session(SecretStr(TOKEN)).submit(template)
    assert not [m for m in stage.messages_in(thread) if is_images(m)]

    async with bot_in_process(stage, data, **settings) as bot:
        posted = await stage.wait_message(thread, is_images)
        assert "sks dog at night" in posted.text and "77" in posted.text
        await generation_service(bot).idle()
        created = [b for b in sim.workflows.values() if b["steps"][0]["$type"] == "imageGen"]
        assert len(created) == 1 and created[0]["externalId"] == generation.external_id, "the replay made none"
        assert len(image_gen_requests(sim)) == 2, "the whatif and the one workflow, both valid"
        stored = await generation_service(bot).repo.get(generation_id)
        assert stored is not None and stored.status.value == "posted" and stored.message_id == posted.id
        assert await generation_service(bot).repo.spent(generation_id) == stored.price_charged
    assert len([m for m in stage.messages_in(thread) if is_images(m)]) == 1
