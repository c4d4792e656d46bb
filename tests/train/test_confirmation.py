"""The confirmation's buttons: Confirm exactly once, retries, expiry, someone else's click,
Edit sample prompts and Cancel."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.app import TrainerBot
from storage.models import JobStatus
from tests.stage import Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.train.helpers import (
    attachment,
    charges,
    confirmation,
    is_confirmation,
    only_job,
    press_as,
    simulator,
    submitted,
)


async def test_confirm_clicked_twice_fast_submits_and_charges_once(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    await alice.slash("train flux1", dataset=attachment(4), trigger_word="sks")
    shown = await confirmation(alice)
    await asyncio.gather(alice.click(shown, label="Confirm"), alice.click(shown, label="Confirm"))
    await alice.wait_ephemeral(submitted)
    await alice.wait_ephemeral(lambda m: "already being submitted" in m.text or "already submitted" in m.text)
    assert len(simulator(trainer).workflows) == 1
    assert [c["type"] for c in charges(trainer)] == ["debit"]
    job = await only_job(trainer, alice)
    assert job.status is JobStatus.SUBMITTED and job.card_message_id is not None
    cards = [m for m in stage.messages_in("general") if m.embeds]
    assert [m.id for m in cards] == [job.card_message_id]  # one card, one thread


async def test_a_5xx_the_client_retries_by_itself_submits_once(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    await alice.slash("train flux1", dataset=attachment(3))
    shown = await confirmation(alice)
    simulator(trainer).faults.fail_next(2, 503, route="submit")  # the third attempt goes through
    await alice.click(shown, label="Confirm")
    await alice.wait_ephemeral(submitted)
    assert len(simulator(trainer).workflows) == 1 and len(charges(trainer)) == 1


async def test_when_retries_are_exhausted_nothing_is_charged_and_confirm_works_again(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    await alice.slash("train flux1", dataset=attachment(3))
    shown = await confirmation(alice)
    simulator(trainer).faults.fail_next(3, 503, route="submit")  # every attempt of this click fails
    await alice.click(shown, label="Confirm")
    error = await alice.wait_ephemeral(lambda m: "Nothing was charged" in m.text)
    assert "try again" in error.text
    assert simulator(trainer).workflows == {} and charges(trainer) == []
    assert (await only_job(trainer, alice)).status is JobStatus.DRAFT

    again = await alice.wait_ephemeral(lambda m: m.id == shown.id and is_confirmation(m), since=0)
    await alice.click(again, label="Confirm")
    await alice.wait_ephemeral(submitted)
    assert len(simulator(trainer).workflows) == 1 and len(charges(trainer)) == 1


async def test_confirm_after_fifteen_minutes_says_expired_and_submits_nothing(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    await alice.slash("train flux1", dataset=attachment(3))
    shown = await confirmation(alice)
    trainer.services.clock.advance(minutes=16)
    stage.clock.advance(minutes=16)
    await alice.click(shown, label="Confirm")
    expired = await alice.wait_ephemeral(lambda m: "expired" in m.text)
    assert expired.id == shown.id and expired.buttons == [] and expired.attachments == []
    assert "nothing was submitted" in expired.text
    assert simulator(trainer).workflows == {} and charges(trainer) == []
    assert (await only_job(trainer, alice)).status is JobStatus.DISCARDED


async def test_another_member_cannot_confirm(
    stage: Stage, trainer: TrainerBot, alice: StageMember, bob: StageMember
) -> None:
    await alice.slash("train flux1", dataset=attachment(3))
    shown = await confirmation(alice)
    edits = shown.edit_count
    for label in ("Confirm", "Cancel"):
        await press_as(bob, shown, label)
        refusal = await bob.wait_ephemeral(lambda m: "Only the member who started this" in m.text)
        assert refusal.visible_to == bob.id
    assert shown.edit_count == edits and is_confirmation(shown)  # alice's confirmation untouched
    assert simulator(trainer).workflows == {}
    assert (await only_job(trainer, alice)).status is JobStatus.DRAFT


async def test_cancel_drops_the_run(stage: Stage, trainer: TrainerBot, alice: StageMember) -> None:
    await alice.slash("train flux1", dataset=attachment(3))
    await alice.click(await confirmation(alice), label="Cancel")
    cancelled = await alice.wait_ephemeral(lambda m: m.embed["title"] == "Cancelled")
    assert cancelled.buttons == [] and "Nothing was submitted" in cancelled.text
    assert (await only_job(trainer, alice)).status is JobStatus.DISCARDED
    assert simulator(trainer).workflows == {}


async def test_edit_sample_prompts_prices_again_and_is_what_gets_submitted(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    await alice.slash("train flux1", dataset=attachment(3), epochs=5, lr=0.001)
    shown = await confirmation(alice)
    assert "lr 0.001 is above" in shown.text
    before = (await only_job(trainer, alice)).price_quoted
    ix = await alice.click(shown, label="Edit sample prompts")
    modal = await ix.modal()
    assert modal.inputs[0]["value"].splitlines()[0] == "a photo of sks dog, pose 0"  # today's prompts
    prompts = ["sks dog, watercolor", "sks dog, pixel art", "sks dog, oil painting", "sks dog, neon", "sks dog, 3d"]
    await alice.submit_modal(modal, prompts="\n".join(prompts) + "\n\n")
    edited = await alice.wait_ephemeral(lambda m: m.id == shown.id and "5. sks dog, 3d" in m.text)
    after = (await only_job(trainer, alice)).price_quoted
    assert after is not None and before is not None and after > before  # more samples to render
    assert f"{after:,.0f} Buzz" in edited.text and "Dataset accepted" in edited.text
    assert "lr 0.001 is above" in edited.text  # the warnings stay
    assert edited.attachments  # the contact sheet too
    await alice.click(edited, label="Confirm")
    await alice.wait_ephemeral(submitted)
    sent = next(iter(simulator(trainer).workflows.values()))["steps"][0]["input"]
    assert sent["samples"]["prompts"] == prompts


async def test_every_button_says_expired_after_fifteen_minutes(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    for label in ("Edit sample prompts", "Cancel"):
        await alice.slash("train flux1", dataset=attachment(3))
        shown = await confirmation(alice)
        trainer.services.clock.advance(minutes=16)
        stage.clock.advance(minutes=16)
        ix = await alice.click(shown, label=label)
        expired = await alice.wait_ephemeral(lambda m, s=shown: m.id == s.id and "expired" in m.text)
        assert expired.buttons == [] and ix.record.modal is None
    assert simulator(trainer).workflows == {}
    assert {j.status for j in await trainer.services.store.jobs.list_for_user(alice.id)} == {JobStatus.DISCARDED}


async def test_buttons_keep_working_after_a_restart(stage: Stage, tmp_path: Path, alice: StageMember) -> None:
    data_dir = tmp_path / "restarting-bot"
    async with bot_in_process(stage, data_dir, command_cooldown_seconds=0) as first:
        await alice.slash("train flux1", dataset=attachment(3))
        shown = await confirmation(alice)
        job = await only_job(first, alice)
    async with bot_in_process(stage, data_dir, command_cooldown_seconds=0) as second:
        await alice.click(shown, label="Confirm")  # a fresh process: nothing in memory
        await alice.wait_ephemeral(submitted)
        assert (await only_job(second, alice)).id == job.id
        assert len(simulator(second).workflows) == 1


async def test_a_card_that_cannot_be_posted_still_says_submitted(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    await alice.slash("train flux1", dataset=attachment(3))
    shown = await confirmation(alice)
    stage.faults.error("POST /channels/{channel_id}/messages", status=403, code=50013, message="Missing Permissions")
    await alice.click(shown, label="Confirm")
    done = await alice.wait_ephemeral(submitted)
    assert "could not post its card" in done.content and "/jobs show" in done.content and done.buttons == []
    assert len(simulator(trainer).workflows) == 1 and len(charges(trainer)) == 1
