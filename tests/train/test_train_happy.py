"""/train flux1 from a zip to a submitted run: what the member sees and what Civitai receives."""

from __future__ import annotations

import pytest

from bot.app import TrainerBot
from bot.civitai import models as m
from storage.models import JobStatus
from tests.stage import Stage, StageMember
from tests.train.helpers import attachment, charges, confirmation, eventually, only_job, simulator, submitted


async def test_dev_run_with_every_option_reaches_civitai_exactly_as_chosen(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    ix = await alice.slash(
        "train flux1",
        dataset=attachment(5),
        variant="dev",
        name="Rex",
        trigger_word="sks",
        steps=1200,
        epochs=3,
        lr=0.0002,
        network_dim=32,
        network_alpha=8,
        lr_scheduler="linear",
        optimizer="prodigy",
        noise_offset=0.1,
        flip_augmentation=True,
        shuffle_tokens=True,
        keep_tokens=1,
        train_text_encoder=True,
        sample_prompts="sks dog on a beach | sks dog in snow",
        negative_prompt="blurry",
        sample_cfg=3.5,
        sample_strength=0.9,
    )
    assert await ix.response() == 5  # deferred first
    shown = await confirmation(alice)
    assert shown.ephemeral and not stage.member("bob").can_see(shown)
    text = shown.text
    quote = (await only_job(trainer, alice)).price_quoted
    assert quote is not None and f"{quote:,.0f} Buzz" in text
    assert "SIMULATED" in text and "Dataset accepted" in text and "5 images" in text
    assert shown.attachments and shown.attachments[0].filename == "contact_sheet.png"
    assert charges(trainer) == []  # the price was shown and nothing was charged yet

    await alice.click(shown, label="Confirm")
    done = await alice.wait_ephemeral(submitted)
    assert done.buttons == []

    sim = simulator(trainer)
    assert len(sim.workflows) == 1
    sent = next(iter(sim.workflows.values()))["steps"][0]["input"]
    assert {k: sent[k] for k in ("modelVariant", "steps", "epochs", "lr", "networkDim", "networkAlpha")} == {
        "modelVariant": "dev", "steps": 1200, "epochs": 3, "lr": 0.0002, "networkDim": 32, "networkAlpha": 8,
    }  # fmt: skip
    assert (sent["lrScheduler"], sent["optimizerType"], sent["noiseOffset"]) == ("linear", "prodigy", 0.1)
    assert (sent["flipAugmentation"], sent["shuffleTokens"], sent["keepTokens"], sent["trainTextEncoder"]) == (
        True, True, 1, True,
    )  # fmt: skip
    assert sent["triggerWord"] == "sks"
    assert sent["samples"] == {
        "prompts": ["sks dog on a beach", "sks dog in snow"], "negativePrompt": "blurry", "cfgScale": 3.5,
        "strength": 0.9,
    }  # fmt: skip
    items = sent["trainingData"]["items"]
    assert sent["trainingData"]["type"] == "blobs" and len(items) == 5
    # Without PUBLIC_URL the images went up as blobs, and they are there.
    for item in items:
        blob_id = item["air"].rsplit("@", 1)[1]
        assert sim.blobs.read(blob_id)[:2] == b"\xff\xd8"
    assert len(charges(trainer)) == 1

    job = await only_job(trainer, alice)
    assert job.status is not JobStatus.DRAFT and job.workflow_id in sim.workflows
    card = await stage.wait_message("general", lambda msg: "Rex" in msg.embed["title"])
    assert card.id == job.card_message_id
    thread = stage.channel(job.thread_id)
    assert f"<#{thread.id}>" in done.content
    await stage.wait_message(thread, lambda msg: "your training was submitted" in msg.content)


async def test_schnell_run_with_defaults(stage: Stage, trainer: TrainerBot, alice: StageMember) -> None:
    await alice.slash("train flux1", dataset=attachment(3), variant="schnell", trigger_word="sks")
    await alice.click(await confirmation(alice), label="Confirm")
    await alice.wait_ephemeral(submitted)
    sent = next(iter(simulator(trainer).workflows.values()))["steps"][0]["input"]
    assert (sent["modelVariant"], sent["steps"], sent["epochs"]) == ("schnell", m.STEPS_DEFAULT, m.EPOCHS_DEFAULT)
    assert len(sent["trainingData"]["items"]) == 3
    # Default sample prompts come from the captions.
    assert sent["samples"]["prompts"][0].startswith("a photo of sks dog")


@pytest.mark.parametrize("bot_settings", [{"public_url": "https://bot.test"}])
async def test_with_public_url_civitai_fetches_the_signed_dataset_url(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    await alice.slash("train flux1", dataset=attachment(4), trigger_word="sks", steps=200, epochs=2)
    await alice.click(await confirmation(alice), label="Confirm")
    await alice.wait_ephemeral(submitted)
    sim = simulator(trainer)
    (workflow_id, body), *others = sim.workflows.items()
    assert others == []
    data = body["steps"][0]["input"]["trainingData"]
    assert data["type"] == "zip" and data["count"] == 4
    assert data["sourceUrl"].startswith("https://bot.test/datasets/")
    assert body["callbacks"][0]["url"].startswith("https://bot.test/hooks/civitai/")
    await eventually(lambda: sim.dataset_fetches)
    assert sim.dataset_fetches == [data["sourceUrl"]]
    # The fetch worked: the run trains (a dataset it could not read would fail it).
    await eventually(lambda: sim.record(workflow_id).status in {"processing", "succeeded"})
    assert sim.record(workflow_id).status != "failed"
