"""/generate: the caller's trained epochs in autocomplete, two LoRAs together, clear refusals."""

from __future__ import annotations

from pathlib import Path

from tests.generation.helpers import finished_run, image_gen_requests, is_images
from tests.stage import Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.tracking.helpers import FAST, simulator


async def test_generate_with_two_of_my_epochs_posts_in_this_channel(
    stage: Stage, alice: StageMember, bob: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST, command_cooldown_seconds=0) as bot:
        job, _, _, _ = await finished_run(bot, stage, alice, tmp_path)
        choices = await alice.autocomplete("generate", "lora", "epoch")
        airs = {c["name"].split(" · ")[1]: c["value"] for c in choices}
        assert set(airs) == {"epoch 1/3", "epoch 2/3", "epoch 3/3"} and all(job.name in c["name"] for c in choices)
        assert await bob.autocomplete("generate", "lora", "") == [], "only the caller's own runs"

        offer = await (
            await alice.in_channel("training").slash(
                "generate",
                lora=airs["epoch 3/3"],
                lora2=airs["epoch 1/3"],
                prompt="sks dog and a cat",
                size="landscape",
                strength=0.7,
                quantity=2,
                seed=5,
            )
        ).reply()
        assert "dog · epoch 3/3 + dog · epoch 1/3 (strength 0.7, 0.7)" in offer.text and "Buzz" in offer.text
        await (await alice.click(offer, label="Confirm")).reply(lambda m: "Submitted" in m.text)
        posted = await stage.wait_message("training", is_images)
        assert "sks dog and a cat" in posted.text and len(posted.attachments) == 2
        sent = image_gen_requests(simulator(bot))[-1]["steps"][0]["input"]
        assert sent["loras"] == {airs["epoch 3/3"]: 0.7, airs["epoch 1/3"]: 0.7}
        assert (sent["width"], sent["height"], sent["seed"], sent["quantity"]) == (1216, 832, 5, 2)

        wrong = await (await alice.slash("generate", lora="urn:air:sdxl:lora:civitai:1@2", prompt="x")).reply()
        assert "is not a flux1 LoRA AIR" in wrong.text and "urn:air:flux1:lora:" in wrong.text
