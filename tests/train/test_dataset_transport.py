"""How the dataset reaches Civitai, end to end on the stage: a refused hosted link falls back to
blob uploads (whatif and submit, told once, remembered per server), and an image refused by the
upload's moderation is named to the member before anything is paid."""

from __future__ import annotations

import pytest

from bot.app import TrainerBot
from bot.jobs.transport import FALLBACK_NOTE, fallback_key
from storage.models import JobStatus
from tests.stage import Stage, StageMember
from tests.train.helpers import (
    assert_nothing_submitted,
    attachment,
    charges,
    confirmation,
    only_job,
    simulator,
    submitted,
)

PUBLIC_URL = "https://bot.test"


def _sent_data(trainer: TrainerBot, index: int = -1) -> dict[str, object]:
    bodies = list(simulator(trainer).workflows.values())
    data: dict[str, object] = bodies[index]["steps"][0]["input"]["trainingData"]
    return data


@pytest.mark.parametrize("bot_settings", [{"public_url": PUBLIC_URL}])
@pytest.mark.parametrize("form", ["field", "prefixed", "detail"])
async def test_a_refused_hosted_link_falls_back_to_blobs_told_once_and_remembered_per_server(
    stage: Stage, trainer: TrainerBot, alice: StageMember, bob: StageMember, form: str
) -> None:
    sim = simulator(trainer)
    sim.faults.refuse_sources(1, form=form)  # the whatif of the first quote is refused
    await alice.slash("train flux1", dataset=attachment(3), trigger_word="sks", steps=200, epochs=2)
    shown = await confirmation(alice)
    assert FALLBACK_NOTE in shown.text
    job = await only_job(trainer, alice)
    assert job.price_quoted is not None  # whatif priced it again with blobs: not an estimate
    assert sim.whatif_requests[-1]["steps"][0]["input"]["trainingData"]["type"] == "blobs"
    await alice.click(shown, label="Confirm")
    await alice.wait_ephemeral(submitted)
    data = _sent_data(trainer)
    assert data["type"] == "blobs" and len(data["items"]) == 3  # type: ignore[arg-type]
    assert sim.dataset_fetches == [] and len(charges(trainer)) == 1
    assert await trainer.services.store.get_meta(fallback_key(job.guild_id)) == "blobs"

    # The next member of the same server goes straight to uploads, and is not told again.
    await bob.slash("train flux1", dataset=attachment(2), trigger_word="sks", steps=200, epochs=2)
    again = await confirmation(bob)
    assert FALLBACK_NOTE not in again.text
    assert sim.whatif_requests[-1]["steps"][0]["input"]["trainingData"]["type"] == "blobs"
    assert [w["steps"][0]["input"]["trainingData"]["type"] for w in sim.whatif_requests] == ["blobs", "blobs"]


@pytest.mark.parametrize("bot_settings", [{"public_url": PUBLIC_URL}])
async def test_a_submit_refused_for_its_hosted_link_is_sent_again_with_blobs(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    sim = simulator(trainer)
    await alice.slash("train flux1", dataset=attachment(3), trigger_word="sks", steps=200, epochs=2)
    shown = await confirmation(alice)
    assert FALLBACK_NOTE not in shown.text  # the whatif took the link (it does not fetch it)
    sim.faults.refuse_sources(1)  # the real submit is refused: the service could not fetch it
    await alice.click(shown, label="Confirm")
    await alice.wait_ephemeral(submitted)
    assert _sent_data(trainer)["type"] == "blobs" and len(charges(trainer)) == 1
    job = await only_job(trainer, alice)
    assert job.status is not JobStatus.DRAFT and job.workflow_id in sim.workflows
    assert await trainer.services.store.get_meta(fallback_key(job.guild_id)) == "blobs"


@pytest.mark.parametrize("bot_settings", [{"public_url": PUBLIC_URL}])
async def test_a_simulator_refusing_foreign_hosts_makes_every_run_use_blobs(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    sim = simulator(trainer)
    sim.refuse_foreign_sources = True
    await alice.slash("train flux1", dataset=attachment(3), trigger_word="sks", steps=200, epochs=2)
    shown = await confirmation(alice)
    assert FALLBACK_NOTE in shown.text
    await alice.click(shown, label="Confirm")
    await alice.wait_ephemeral(submitted)
    assert _sent_data(trainer)["type"] == "blobs" and sim.dataset_fetches == []


@pytest.mark.parametrize("as_blob", [False, True], ids=["422", "blocked-blob"])
async def test_an_image_refused_at_upload_is_named_before_paying(
    stage: Stage, trainer: TrainerBot, alice: StageMember, as_blob: bool
) -> None:
    sim = simulator(trainer)
    sim.faults.block_uploads("img1.jpg", reason="It shows a minor", as_blob=as_blob)
    ix = await alice.slash("train flux1", dataset=attachment(3), trigger_word="sks")
    reply = await ix.reply(lambda m: m.embeds)
    assert reply.ephemeral and not reply.buttons
    assert reply.embed["title"] == "Image refused by Civitai"
    assert "img1.jpg" in reply.embed["description"] and "It shows a minor" in reply.embed["description"]
    await assert_nothing_submitted(trainer, alice)
