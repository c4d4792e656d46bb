"""Every way /train can fail has its own message, and nothing is submitted or charged."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import TrainerBot
from bot.civitai.pricing import estimate_price
from bot.jobs.submission import SHORT_OF_BUZZ_PREFIX
from storage.models import JobStatus
from tests.dataset_helpers import image_bytes, make_zip
from tests.stage import Attachment, Stage, StageMember
from tests.train.helpers import (
    TOKEN,
    assert_nothing_submitted,
    attachment,
    charges,
    confirmation,
    is_confirmation,
    only_job,
    refused,
    simulator,
    submitted,
)


async def test_a_refused_dataset_shows_its_report_and_contact_sheet(
    stage: Stage, trainer: TrainerBot, alice: StageMember, tmp_path: Path
) -> None:
    files = {f"img{n}.png": image_bytes("PNG", size=(128, 128)) for n in range(3)}
    files["broken.jpg"] = image_bytes(size=(128, 128))[:200]  # truncated
    data = make_zip(tmp_path / "d.zip", files).read_bytes()
    reply = await refused(alice, dataset=Attachment("d.zip", data))
    assert reply.embed["title"] == "Dataset refused: nothing was submitted"
    assert "`broken.jpg`" in reply.embed["description"]
    assert [a.filename for a in reply.attachments] == ["contact_sheet.png"]
    await assert_nothing_submitted(trainer, alice)
    assert await trainer.services.store.jobs.list_for_user(alice.id) == []

    reply = await refused(alice, dataset=Attachment("notes.zip", b"these are not images"))
    assert "Dataset refused" in reply.embed["title"] and "zip" in reply.embed["description"]


async def test_no_dataset_or_two_datasets(stage: Stage, trainer: TrainerBot, alice: StageMember) -> None:
    ix = await alice.slash("train flux1", steps=100)
    assert (await ix.reply(lambda m: m.embeds)).embed["title"] == "No dataset given"
    reply = await refused(alice, dataset_url="https://example.com/d.zip")
    assert reply.embed["title"] == "Two datasets given"


async def test_an_http_dataset_url_is_refused_with_the_reason(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    ix = await alice.slash("train flux1", dataset_url="http://example.com/d.zip")
    reply = await ix.reply(lambda m: m.embeds)
    assert reply.embed["title"] == "Dataset problem" and "https" in reply.embed["description"]


async def test_invalid_options_are_listed_one_by_one(stage: Stage, trainer: TrainerBot, alice: StageMember) -> None:
    reply = await refused(alice, lr=0.0, sample_cfg=50.0, continue_from="urn:air:sdxl:lora:civitai:101@202")
    text = reply.embed["description"]
    assert reply.embed["title"] == "Invalid training options"
    assert "lr must be greater than 0 and at most 1 (you gave 0)" in text
    assert "sample_cfg must be at least 0 and at most 30 (you gave 50)" in text
    assert "is for sdxl: a LoRA of another base model cannot be trained further on Flux.1" in text
    await assert_nothing_submitted(trainer, alice)


async def test_a_field_civitai_refuses_is_named_and_the_confirmation_closes(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    sim = simulator(trainer)
    # Refused when pricing: the member learns it before any confirmation.
    sim.faults.refuse_next({"steps[0].input.networkDim": ["The field networkDim must be at most 128."]})
    reply = await refused(alice, network_dim=200)
    assert "network_dim: The field network_dim must be at most 128." in reply.embed["description"]
    # Refused at Confirm: the same request would fail again, so the confirmation closes.
    await alice.slash("train flux1", dataset=attachment(3))
    shown = await confirmation(alice)
    sim.faults.refuse_next({"steps[0].input.lr": ["The field lr is out of range."]})
    await alice.click(shown, label="Confirm")
    closed = await alice.wait_ephemeral(lambda m: "Civitai refused" in m.text)
    assert closed.id == shown.id and closed.buttons == [] and "lr: The field lr is out of range." in closed.text
    await assert_nothing_submitted(trainer, alice)
    assert {j.status for j in await trainer.services.store.jobs.list_for_user(alice.id)} == {JobStatus.DISCARDED}


async def test_not_enough_buzz_is_said_with_the_price(stage: Stage, trainer: TrainerBot, alice: StageMember) -> None:
    sim = simulator(trainer)
    sim.add_account(TOKEN, 10)
    await alice.slash("train flux1", dataset=attachment(3))
    shown = await confirmation(alice)
    assert SHORT_OF_BUZZ_PREFIX in shown.text  # warned before confirming
    price = (await only_job(trainer, alice)).price_quoted
    await alice.click(shown, label="Confirm")
    error = await alice.wait_ephemeral(lambda m: "Not enough Buzz" in m.text)
    assert f"for the {price:,.0f} Buzz this run costs" in error.text and "Nothing was charged" in error.text
    await assert_nothing_submitted(trainer, alice)
    # Once the account has Buzz, the same confirmation works.
    sim.add_account(TOKEN, 100_000)
    again = await alice.wait_ephemeral(lambda m: m.id == shown.id and is_confirmation(m), since=0)
    await alice.click(again, label="Confirm")
    await alice.wait_ephemeral(submitted)
    assert len(sim.workflows) == 1 and len(charges(trainer)) == 1


async def test_civitai_unreachable_prices_by_formula_and_charges_nothing(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    sim = simulator(trainer)
    sim.faults.fail_next(50, 503)
    await alice.slash("train flux1", dataset=attachment(3), steps=1000, epochs=2)
    shown = await confirmation(alice)
    formula = estimate_price(1000, 2, sample_prompts=3).total  # three prompts from the captions
    assert f"≈ {formula:,} Buzz**, an estimate" in shown.text
    await alice.click(shown, label="Confirm")
    error = await alice.wait_ephemeral(lambda m: "Civitai is having trouble" in m.text)
    assert "Nothing was charged" in error.text and "try again" in error.text
    await assert_nothing_submitted(trainer, alice)
    sim.faults.clear()
    again = await alice.wait_ephemeral(lambda m: m.id == shown.id and is_confirmation(m), since=0)
    await alice.click(again, label="Confirm")
    await alice.wait_ephemeral(submitted)
    assert len(sim.workflows) == 1 and len(charges(trainer)) == 1




@pytest.mark.parametrize("bot_settings", [{"max_zip_bytes": 20_000}])
async def test_a_zip_over_the_cap_is_refused_from_its_declared_size(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    data = attachment(12, size=(400, 300)).data
    assert len(data) > 20_000
    reply = await refused(alice, dataset=Attachment("big.zip", data))
    assert reply.embed["title"] == "Dataset problem" and "larger than" in reply.embed["description"]
    await assert_nothing_submitted(trainer, alice)
