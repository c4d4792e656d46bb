"""Auto-captioning end to end: the real bot on the stage (fake Discord over sockets), the
simulator over HTTP and a real SQLite file, from an uncaptioned zip to the training request."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from bot.app import TrainerBot
from bot.civitai.simulator.captioning import is_captioning
from tests.captioning.helpers import COLOUR_NAMES, assert_valid_captioning_requests, captioned_zip
from tests.manage.test_forget import rows_naming
from tests.stage import Attachment, Stage, StageMember
from tests.stage.model import Message
from tests.train.helpers import charges, confirmation, only_job, simulator, submitted


def caption_offer(message: Message) -> bool:
    return any(b.get("label") == "Caption" for b in message.buttons)


def captioning_bodies(trainer: TrainerBot) -> list[dict[str, Any]]:
    return [body for body in simulator(trainer).workflows.values() if is_captioning(body)]


def training_body(trainer: TrainerBot) -> dict[str, Any]:
    bodies = [body for body in simulator(trainer).workflows.values() if not is_captioning(body)]
    assert len(bodies) == 1
    return bodies[0]


def progress_lines(stage: Stage) -> list[str]:
    return [
        str(r.body.get("content")) for r in stage.requests
        if r.method == "PATCH" and isinstance(r.body, dict) and "Captioning" in str(r.body.get("content"))
    ]  # fmt: skip


def file_of(message: Message, name: str) -> bytes:
    return next(a.data for a in message.attachments if a.filename == name)


async def test_caption_review_edit_and_train_with_exactly_those_captions(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    zip_data = captioned_zip(12)
    ix = await alice.slash(
        "train flux1", dataset=Attachment("dog.zip", zip_data), trigger_word="sks", auto_caption="missing",
        steps=500, epochs=2,
    )  # fmt: skip
    assert await ix.response() == 5
    offer = await alice.wait_ephemeral(caption_offer)
    assert "Caption 12 images for 24 Buzz?" in offer.text and "SIMULATED" in offer.text
    assert "JoyCaption" in offer.text and captioning_bodies(trainer) == [] and charges(trainer) == []

    await alice.click(offer, label="Caption")
    shown = await confirmation(alice)
    assert any(line.endswith("Captioning 12/12…") and "SIMULATED" in line for line in progress_lines(stage))
    text = shown.text
    assert "0 kept · 12 generated · 0 replaced · 0 failed" in text and "SIMULATED" in text
    assert "`img00.jpg`: sks, A landscape photograph in red" in text and "/dataset captions" in text
    listed = file_of(shown, "captions.txt").decode().splitlines()
    assert len(listed) == 12
    first_name, first_caption = listed[0].split("\t")
    assert first_name == "img00.jpg" and first_caption.startswith("sks, ")
    # One captioning workflow, a step per image, valid against the published document; charged once.
    assert_valid_captioning_requests(captioning_bodies(trainer))
    assert len(captioning_bodies(trainer)) == 1 and len(captioning_bodies(trainer)[0]["steps"]) == 12
    assert [c["amount"] for c in charges(trainer) if c["type"] == "debit"] == [24]
    job = await only_job(trainer, alice)
    assert job.revision == 1

    # Review: 5 images a page, their thumbnails, and a modal with the page's 5 captions.
    await alice.click(shown, label="Edit captions")
    page = await alice.wait_ephemeral(lambda m: "Captions 1–5 of 12" in m.content)
    assert "SIMULATED" in page.content and page.button(label="Confirm")  # confirm from what is shown
    assert len(page.embeds) == 5 and [a.filename for a in page.attachments] == [f"thumb_{n}.jpg" for n in range(5)]
    assert all(e["thumbnail"]["url"] == f"attachment://thumb_{n}.jpg" for n, e in enumerate(page.embeds))
    ix = await alice.click(page, label="Edit these captions")
    modal = await ix.modal()
    assert [i["label"] for i in modal.inputs] == [f"img{n:02d}.jpg" for n in range(5)]
    assert modal.inputs[0]["value"] == first_caption
    edited = "sks, my dog on a red blanket, edited by hand"
    await alice.submit_modal(modal, caption0=edited)
    await alice.wait_ephemeral(lambda m: m.id == page.id and "1 caption changed" in m.content and edited in m.text)
    job = await only_job(trainer, alice)
    assert job.revision == 2  # the edit bumped the draft's revision; the price did not change

    # The confirmation shown before the edit no longer submits (it showed other captions) ...
    await alice.click(stage.messages[shown.id], label="Confirm")
    await alice.wait_ephemeral(lambda m: m.id == shown.id and "changed since" in m.text)
    assert [b for b in simulator(trainer).workflows.values() if not is_captioning(b)] == []
    # ... the page showing the edited captions does.
    await alice.click(stage.messages[page.id], label="Confirm")
    await alice.wait_ephemeral(submitted)
    items = training_body(trainer)["steps"][0]["input"]["trainingData"]["items"]
    captions = [item["caption"] for item in items]
    assert len(captions) == 12 and captions[0] == edited
    assert captions[1:] == [line.split("\t")[1] for line in listed[1:]]
    for n, caption in enumerate(captions):
        assert caption.startswith("sks, ") and caption.count("sks") == 1
        if n:
            assert COLOUR_NAMES[n % 4] in caption


async def test_all_with_tags_replaces_captions_and_the_report_says_so(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    data = captioned_zip(4, {0: "sks, mine", 1: "mine too"})
    await alice.slash("dataset check", dataset=Attachment("d.zip", data), auto_caption="all", caption_style="tags")
    offer = await alice.wait_ephemeral(caption_offer)
    assert "Caption 4 images for 4 Buzz?" in offer.text and "WD tagger" in offer.text
    await alice.click(offer, label="Caption")
    report = await alice.wait_ephemeral(lambda m: "replaced" in m.text and not m.buttons)
    assert "0 kept · 2 generated · 2 replaced · 0 failed" in report.text
    lines = file_of(report, "captions.txt").decode().splitlines()
    assert lines[0].startswith("img00.jpg\tred theme, landscape, photo")
    assert_valid_captioning_requests(captioning_bodies(trainer))
    assert captioning_bodies(trainer)[0]["steps"][0]["$type"] == "wdTagging"


async def test_missing_keeps_captions_and_a_refused_image_is_named(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    simulator(trainer).captioning.refuse["img02.jpg"] = "blocked"
    data = captioned_zip(4, {0: "sks, mine"})
    await alice.slash("train flux1", dataset=Attachment("d.zip", data), trigger_word="sks", auto_caption="missing")
    await alice.click(await alice.wait_ephemeral(caption_offer), label="Caption")
    shown = await confirmation(alice)
    assert "1 kept · 2 generated · 0 replaced · 1 failed" in shown.text
    assert "`img02.jpg`: refused by moderation (blocked); left uncaptioned" in shown.text
    assert "img02.jpg\t\n" in file_of(shown, "captions.txt").decode() + "\n"


async def test_a_failed_captioning_workflow_explains_itself(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    simulator(trainer).captioning.fail_workflow = "no_provider_available"
    await alice.slash("train flux1", dataset=Attachment("d.zip", captioned_zip(3)), auto_caption="all")
    await alice.click(await alice.wait_ephemeral(caption_offer), label="Caption")
    failed = await alice.wait_ephemeral(lambda m: "Captioning failed" in m.text)
    assert "no_provider_available" in failed.text and "given back" in failed.text and "SIMULATED" in failed.text
    assert await trainer.services.store.jobs.list_for_user(alice.id) == []  # no training draft


async def test_uploaded_captions_apply_to_the_current_draft(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    await alice.slash("train flux1", dataset=Attachment("d.zip", captioned_zip(3)), trigger_word="sks")
    shown = await confirmation(alice)
    upload = "img00.jpg\tsks, first\nimg02\tsks, third\n"
    ix = await alice.slash("dataset captions", file=Attachment("captions.txt", upload.encode()))
    assert "2 captions applied" in (await ix.reply(lambda m: "applied" in m.content)).content
    bad = await alice.slash("dataset captions", file=Attachment("captions.txt", b"img09.jpg\tnope\nno tab here\n"))
    refused = await bad.reply(lambda m: m.embeds)
    assert "`img09`, which is not an image" in refused.text and "line 2 has no TAB" in refused.text
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("img01.txt", "sks, second")
    ix = await alice.slash("dataset captions", file=Attachment("caps.zip", zipped.getvalue()))
    applied = await ix.reply(lambda m: "applied" in m.content)
    assert "1 caption applied" in applied.content and (await only_job(trainer, alice)).revision == 3
    await alice.click(shown, label="Confirm")  # shown before the uploads: it asks again instead
    await alice.wait_ephemeral(lambda m: m.id == shown.id and "changed since" in m.text)
    await alice.click(stage.messages[applied.id], label="Confirm")
    await alice.wait_ephemeral(submitted)
    items = training_body(trainer)["steps"][0]["input"]["trainingData"]["items"]
    assert [item.get("caption") for item in items] == ["sks, first", "sks, second", "sks, third"]


async def test_under_the_servers_caption_buzz_it_runs_without_asking_and_counts_against_caps(
    stage: Stage, trainer: TrainerBot, alice: StageMember, admin: StageMember
) -> None:
    said = await (await admin.slash("admin limits", caption_buzz=10)).reply()
    assert "auto-captioning without asking, up to (Buzz): 0 → **10**" in said.text
    await alice.slash("train flux1", dataset=Attachment("d.zip", captioned_zip(4)), auto_caption="missing")
    shown = await confirmation(alice)  # straight to training: 8 Buzz of captions is under 10
    assert "0 kept · 4 generated" in shown.text
    assert [c["amount"] for c in charges(trainer) if c["type"] == "debit"] == [8]

    # Those 8 Buzz count against the member's daily cap, like training: 4 more would pass 10.
    await (await admin.slash("admin limits", user_daily_buzz=10)).reply()
    ix = await alice.slash("dataset check", dataset=Attachment("e.zip", captioned_zip(2)), auto_caption="missing")
    refused = await ix.reply(lambda m: m.embeds and "day" in m.text and not m.buttons)
    assert "10" in refused.text and "8" in refused.text
    assert len(captioning_bodies(trainer)) == 1 and len(charges(trainer)) == 1


async def test_cancel_on_the_caption_offer_spends_nothing(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    await alice.slash("dataset check", dataset=Attachment("d.zip", captioned_zip(3)), auto_caption="all")
    offer = await alice.wait_ephemeral(caption_offer)
    await alice.click(offer, label="Cancel")
    cancelled = await alice.wait_ephemeral(lambda m: m.id == offer.id and "Cancelled" in m.text)
    assert cancelled.buttons == [] and "nothing was spent" in cancelled.text
    assert captioning_bodies(trainer) == [] and charges(trainer) == []


async def test_forgetting_a_member_deletes_their_captioning_runs_and_images(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    await alice.slash("dataset check", dataset=Attachment("d.zip", captioned_zip(3)), auto_caption="all")
    await alice.click(await alice.wait_ephemeral(caption_offer), label="Caption")
    await alice.wait_ephemeral(lambda m: "generated" in m.text and not m.buttons)
    store = trainer.services.store
    [(run,)] = await store.db.all("SELECT id FROM caption_runs WHERE user_id = ?", (alice.id,))
    digests = await store.captions.datasets_of_user(alice.id)
    assert len(digests) == 2 and all(trainer.services.datasets.path_for(d) for d in digests)  # upload, result

    prompt = await (await alice.slash("account forget")).reply()
    await alice.click(prompt, label="Delete all my data")
    await alice.wait_ephemeral(lambda m: m.embed["title"] == "Your data is deleted")
    assert await rows_naming(store, alice.id) == {}
    assert await store.captions.get(run) is None
    assert [d for d in digests if trainer.services.datasets.path_for(d)] == []  # her images are gone
