"""Captioning pays and is followed like training, end to end on the stage with the simulator over
HTTP: the claim reserves its price against the caps atomically, a lost submit answer adopts the
workflow it created, callbacks drive it with PUBLIC_URL, and images travel as hosted links when
the server hosts its datasets."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import TrainerBot
from bot.jobs.policy import day_start
from bot.jobs.transport import fallback_key
from storage.captions import CaptionRunStatus
from tests.captioning.helpers import COLOUR_NAMES, assert_valid_captioning_requests, captioned_zip
from tests.captioning.test_captions_on_stage import caption_offer, captioning_bodies
from tests.stage import Attachment, Stage, StageMember
from tests.stage.model import Message
from tests.train.helpers import attachment, charges, confirmation, simulator, submitted

PUBLIC_URL = "https://bot.test"


def debits(trainer: TrainerBot) -> list[float]:
    return [c["amount"] for c in charges(trainer) if c["type"] == "debit"]


async def spent_today(trainer: TrainerBot, member: StageMember, stage: Stage) -> float:
    services = trainer.services
    return await services.store.ledger.spent_by_user(stage.guild.id, member.id, day_start(services.clock.now()))


def told_nothing_charged(stage: Stage) -> list[str]:
    return [m.text for m in stage.messages.values() if "nothing was charged" in m.text.lower()]


async def caption_offers(member: StageMember, count: int, images: int = 3) -> list[Message]:
    offers = []
    for n in range(count):
        await member.slash("dataset check", dataset=Attachment(f"d{n}.zip", captioned_zip(images + n)),
                           auto_caption="all")  # fmt: skip
        offers.append(await member.wait_ephemeral(caption_offer))
    return offers


async def test_two_caption_runs_at_once_never_beat_the_daily_cap(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    """Each fits the cap alone, both do not: the claim lets exactly one through, and the ledger
    (reservations included) never passes the cap."""
    offers = await caption_offers(alice, 2)  # 3 and 4 images: 6 and 8 Buzz
    run_ids = [offer.buttons[0]["custom_id"].split(":")[-1] for offer in offers]
    await trainer.services.store.guilds.update(stage.guild.id, user_daily_buzz_cap=10)
    simulator(trainer).faults.slow_next(2, 0.3, route="submit")  # a submit takes a while: both are in flight
    await asyncio.gather(*(alice.click(offer, label="Caption") for offer in offers))
    await alice.wait_ephemeral(lambda m: m.embeds and "generated" in m.text and not m.buttons)
    await alice.wait_ephemeral(lambda m: m.embeds and "caps each member" in m.text)
    assert len(captioning_bodies(trainer)) == 1 and len(debits(trainer)) == 1
    assert await spent_today(trainer, alice, stage) == sum(debits(trainer)) <= 10
    runs = [await trainer.services.store.captions.get(run_id) for run_id in run_ids]
    assert sorted(run.status.value for run in runs if run is not None) == ["draft", "succeeded"]


async def test_a_caption_run_and_a_training_confirm_at_once_never_beat_the_daily_cap(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    """Captioning counts against the same caps as training: a Confirm and a Caption racing near the
    cap cannot both pass, whichever claims first."""
    await alice.slash("train flux1", dataset=attachment(3))
    draft = await confirmation(alice)
    [job] = await trainer.services.store.jobs.list_for_user(alice.id)
    assert job.price_quoted is not None
    [offer] = await caption_offers(alice, 1)
    cap = int(job.price_quoted) + 3  # the run fits, the 6 Buzz of captions too, not both
    await trainer.services.store.guilds.update(stage.guild.id, user_daily_buzz_cap=cap)
    simulator(trainer).faults.slow_next(2, 0.3, route="submit")
    await asyncio.gather(alice.click(offer, label="Caption"), alice.click(draft, label="Confirm"))
    await alice.wait_ephemeral(lambda m: m.embeds and "caps each member" in m.text)
    await alice.wait_ephemeral(lambda m: submitted(m) or ("generated" in m.text and not m.buttons))
    assert len(simulator(trainer).workflows) == 1  # the run or the captions, never both
    assert await spent_today(trainer, alice, stage) <= cap


async def test_a_lost_caption_submit_answer_adopts_the_workflow_and_charges_once(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    """Every answer of the submit is lost after Civitai created (and charged) the workflow: the
    run is found by its tag and externalId and adopted, never returned to draft."""
    await alice.slash("train flux1", dataset=Attachment("d.zip", captioned_zip(4)), trigger_word="sks",
                      auto_caption="missing")  # fmt: skip
    offer = await alice.wait_ephemeral(caption_offer)
    simulator(trainer).faults.lose_next_answer(3, route="submit")  # created, then every answer lost
    await alice.click(offer, label="Caption")
    shown = await confirmation(alice)
    assert "0 kept · 4 generated · 0 replaced · 0 failed" in shown.text
    assert len(captioning_bodies(trainer)) == 1 and debits(trainer) == [8]
    [run_id] = [b["externalId"].split("-")[1] for b in captioning_bodies(trainer)]
    run = await trainer.services.store.captions.get(run_id)
    assert run is not None and run.status is CaptionRunStatus.SUCCEEDED
    assert await trainer.services.store.captions.spent(run_id) == 8 == await spent_today(trainer, alice, stage)
    assert told_nothing_charged(stage) == []


async def test_when_civitai_cannot_say_the_run_stays_submitting_until_a_lookup_knows(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    """Lost answers, and the lookup fails too: the member is told "checking" (never "nothing was
    charged"), the price stays reserved, and once nothing can still be on its way the lookup
    adopts the workflow; Caption then shows its captions, charged once."""
    services = trainer.services
    await alice.slash("dataset check", dataset=Attachment("d.zip", captioned_zip(3)), auto_caption="all")
    offer = await alice.wait_ephemeral(caption_offer)
    faults = simulator(trainer).faults
    faults.lose_next_answer(3, route="submit")
    faults.fail_next(3, 503, route="list")
    await alice.click(offer, label="Caption")
    checking = await alice.wait_ephemeral(lambda m: "Checking with Civitai" in m.text)
    assert "never charged twice" in checking.text and told_nothing_charged(stage) == []
    [run_id] = [b["externalId"].split("-")[1] for b in captioning_bodies(trainer)]
    run = await services.store.captions.get(run_id)
    assert run is not None and run.status is CaptionRunStatus.SUBMITTING and run.workflow_id is None
    assert await services.store.captions.spent(run_id) == 6  # reserved meanwhile
    assert await services.captioning.recheck(run_id) is None  # still within the grace: not yet
    services.clock.advance(seconds=31)  # the grace for a request still on its way ran out
    assert await services.captioning.recheck(run_id) is not None
    run = await services.store.captions.get(run_id)
    assert run is not None and run.status is CaptionRunStatus.SUCCEEDED
    assert run.workflow_id == next(iter(simulator(trainer).workflows))
    await alice.click(stage.messages[offer.id], label="Caption")
    report = await alice.wait_ephemeral(lambda m: "3 generated" in m.text and not m.buttons)
    assert "0 kept · 3 generated" in report.text
    assert len(captioning_bodies(trainer)) == 1 and debits(trainer) == [6] == [await spent_today(trainer, alice, stage)]
    assert told_nothing_charged(stage) == []


@pytest.mark.parametrize("bot_settings", [{"public_url": PUBLIC_URL, "dataset_transport": "blobs"}])
async def test_with_public_url_callbacks_drive_the_run_without_long_polls(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    sim = simulator(trainer)
    await alice.slash("train flux1", dataset=Attachment("d.zip", captioned_zip(6)), trigger_word="sks",
                      auto_caption="missing")  # fmt: skip
    await alice.click(await alice.wait_ephemeral(caption_offer), label="Caption")
    shown = await confirmation(alice)
    assert "0 kept · 6 generated" in shown.text
    [body] = captioning_bodies(trainer)
    assert_valid_captioning_requests([body])
    [callback] = body["callbacks"]
    assert callback["url"].startswith(f"{PUBLIC_URL}/hooks/civitai/cap")
    [workflow_id] = [w for w, b in sim.workflows.items() if b is body]
    assert sim.held_reads == []  # followed by its callbacks: not one long-poll
    delivered = [d for d in sim.callbacks.deliveries if d.payload.get("workflowId") == workflow_id]
    assert delivered and all(d.status == 200 for d in delivered)
    progress = [
        str(r.body.get("content")) for r in stage.requests
        if r.method == "PATCH" and isinstance(r.body, dict) and "Captioning" in str(r.body.get("content"))
    ]  # fmt: skip
    assert any(line.endswith("Captioning 6/6…") for line in progress)


@pytest.mark.parametrize("bot_settings", [{"public_url": PUBLIC_URL}])
async def test_a_hosting_server_sends_signed_links_to_its_images(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    """Datasets travel as hosted links on this server: so do the images to caption (nothing is
    uploaded), and Civitai fetches each one from the bot's web server."""
    await alice.slash("dataset check", dataset=Attachment("d.zip", captioned_zip(4)), auto_caption="all")
    await alice.click(await alice.wait_ephemeral(caption_offer), label="Caption")
    report = await alice.wait_ephemeral(lambda m: "generated" in m.text and not m.buttons)
    assert "0 kept · 4 generated · 0 replaced · 0 failed" in report.text
    [body] = captioning_bodies(trainer)
    assert_valid_captioning_requests([body])
    urls = [step["input"]["mediaUrl"] for step in body["steps"]]
    assert all(url.startswith(f"{PUBLIC_URL}/datasets/") and "/images/" in url for url in urls)
    lines = next(a.data for a in report.attachments if a.filename == "captions.txt").decode().splitlines()
    for n, line in enumerate(lines):  # the simulator saw each image itself: its colour is in its caption
        assert COLOUR_NAMES[n % 4] in line
    await alice.slash("train flux1", dataset=attachment(2))  # training on this server is hosted too
    await alice.click(await confirmation(alice), label="Confirm")
    await alice.wait_ephemeral(submitted)


@pytest.mark.parametrize("bot_settings", [{"public_url": PUBLIC_URL}])
async def test_links_civitai_will_not_fetch_switch_the_server_to_uploads(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    """The submit is refused for its hosted image links: the images are uploaded and the run sent
    again, and the server's datasets go as blobs from then on (training's fallback)."""
    sim = simulator(trainer)
    await alice.slash("dataset check", dataset=Attachment("d.zip", captioned_zip(3)), auto_caption="all")
    offer = await alice.wait_ephemeral(caption_offer)
    sim.faults.refuse_next({"steps[0].input.mediaUrl": ["The service could not fetch this URL."]})
    await alice.click(offer, label="Caption")
    report = await alice.wait_ephemeral(lambda m: "generated" in m.text and not m.buttons)
    assert "0 kept · 3 generated" in report.text
    [body] = captioning_bodies(trainer)
    assert_valid_captioning_requests([body])
    assert not any(step["input"]["mediaUrl"].startswith(PUBLIC_URL) for step in body["steps"])
    assert await trainer.services.store.get_meta(fallback_key(stage.guild.id)) == "blobs"
    assert debits(trainer) == [6]


async def test_a_submit_that_never_reached_civitai_is_sent_by_the_next_caption_press(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    """No answer and no workflow: "checking" first (the request may still be on its way); once it
    cannot be, pressing Caption again finds nothing at Civitai, releases the reservation and
    submits: captioned and charged once, and nobody was told anything that was not known."""
    services = trainer.services
    await alice.slash("dataset check", dataset=Attachment("d.zip", captioned_zip(3)), auto_caption="all")
    offer = await alice.wait_ephemeral(caption_offer)
    simulator(trainer).faults.drop_next(3, route="submit")
    await alice.click(offer, label="Caption")
    await alice.wait_ephemeral(lambda m: "Checking with Civitai" in m.text)
    assert captioning_bodies(trainer) == [] and await spent_today(trainer, alice, stage) == 6  # reserved
    await alice.click(stage.messages[offer.id], label="Caption")  # too early to know: nothing is sent
    await alice.wait_ephemeral(lambda m: "already being captioned" in m.text)
    assert captioning_bodies(trainer) == []
    services.clock.advance(seconds=31)
    await alice.click(stage.messages[offer.id], label="Caption")
    report = await alice.wait_ephemeral(lambda m: "3 generated" in m.text and not m.buttons)
    assert "0 kept · 3 generated" in report.text
    assert len(captioning_bodies(trainer)) == 1 and debits(trainer) == [6] == [await spent_today(trainer, alice, stage)]
    assert told_nothing_charged(stage) == []
