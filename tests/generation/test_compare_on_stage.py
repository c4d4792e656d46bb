"""Compare on the stage: one prompt, one seed, three epochs and the base model at strength 0,
one priced workflow, one grid with four labelled columns."""

from __future__ import annotations

from pathlib import Path

from bot.civitai.models import epoch_air
from tests.generation.helpers import finished_run, image_gen_requests, is_images
from tests.stage import Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.tracking.helpers import FAST, image_size, simulator

CELL, LABEL_WIDTH, GAP = 256, 110, 6  # bot.render.grid's layout


async def test_compare_three_epochs_and_the_base_model_in_one_grid(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST, command_cooldown_seconds=0) as bot:
        job, thread, _, grid = await finished_run(bot, stage, alice, tmp_path, epochs=4)
        sim = simulator(bot)
        models = [e["model"]["id"] for e in sim.workflow(job.workflow_id or "")["steps"][0]["output"]["epochs"]]

        modal = await (await alice.click(grid, label="Compare epochs")).modal()
        offer = await (
            await alice.submit_modal(modal, prompt="sks dog portrait", epochs=["1", "2", "4"], seed="99")
        ).reply()
        assert "Epoch 1 (strength 1), Epoch 2 (strength 1), Epoch 4 (strength 1), Base model (strength 0)" in offer.text
        priced = len(sim.whatif_requests)
        await (await alice.click(offer, label="Confirm")).reply(lambda m: "Submitted" in m.text)
        posted = await stage.wait_message(thread, is_images)
        assert len(sim.whatif_requests) == priced, "priced once, by the one whatif before the confirmation"

        body = image_gen_requests(sim)[-1]
        steps = [step["input"] for step in body["steps"]]
        assert [s["loras"] for s in steps] == [
            {epoch_air(models[0]): 1.0},
            {epoch_air(models[1]): 1.0},
            {epoch_air(models[3]): 1.0},
            {epoch_air(models[3]): 0.0},
        ]
        assert {(s["prompt"], s["seed"], s["quantity"]) for s in steps} == {("sks dog portrait", 99, 1)}

        files = stage.files(posted)
        assert list(files) == ["compare.png"]
        width, _ = image_size(files["compare.png"])
        assert width == LABEL_WIDTH + 4 * (CELL + GAP) + GAP, "four columns"
        assert "Base model" in posted.text and "99" in posted.text
