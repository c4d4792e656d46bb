"""What the member saw is what they pay, under the interleavings real users produce: a Confirm
racing a prompt edit, two Confirms near a cap, a lost submit answer, a slow upload watched by
recovery, and refusals that must not cost a cooldown. Each ran against the stage and the
simulator over sockets, with the bot's real SQLite file."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import bot.jobs.submission as submission
from bot.app import TrainerBot
from bot.jobs.transport import UploadedDatasets
from storage.models import JobStatus
from tests.stage import Stage, StageMember
from tests.train.helpers import attachment, charges, confirmation, is_confirmation, refused, simulator, submitted

PROMPTS = "sks dog, watercolor|sks dog, pixel art|sks dog, oil painting"


async def until(check: object, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def ledger_total(bot: TrainerBot, member: StageMember) -> float:
    jobs = await bot.services.store.jobs.list_for_user(member.id, limit=100)
    return sum([await bot.services.store.ledger.spent_for_job(job.id) for job in jobs])


def charged(bot: TrainerBot) -> float:
    return sum(c["amount"] if c["type"] == "debit" else -c["amount"] for c in charges(bot))


async def test_confirm_pressed_while_an_edit_is_priced_submits_nothing_and_shows_the_current_draft(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    """Defect 1: the run went out with the old prompts and the old price."""
    store = trainer.services.store
    await alice.slash("train flux1", dataset=attachment(3), sample_prompts=PROMPTS)
    shown = await confirmation(alice)
    [job] = await store.jobs.list_for_user(alice.id)
    simulator(trainer).faults.slow_next(1, delay=1.0, route="submit")  # the re-pricing whatif
    modal = await (await alice.click(shown, label="Edit sample prompts")).modal()
    edit = await alice.submit_modal(modal, prompts="sks dog, neon\nsks dog, 3d")
    await edit.response()  # acknowledged: the new prompts are being priced (for a second)
    await asyncio.sleep(0.2)
    assert "1. sks dog, watercolor" in shown.text  # the member still looks at the old revision
    await alice.click(shown, label="Confirm")
    again = await alice.wait_ephemeral(lambda m: m.id == shown.id and "changed since" in m.text)
    assert simulator(trainer).workflows == {} and charges(trainer) == []
    assert (await store.jobs.get(job.id)).status is JobStatus.DRAFT  # type: ignore[union-attr]
    assert "sks dog, neon" in again.text and is_confirmation(again)

    priced = await alice.wait_ephemeral(lambda m: m.id == shown.id and "Buzz" in m.text and "changed" not in m.text)
    latest = await store.jobs.get(job.id)
    assert latest is not None and latest.price_quoted is not None
    assert f"{latest.price_quoted:,.0f} Buzz" in priced.text
    await alice.click(priced, label="Confirm")
    await alice.wait_ephemeral(submitted)
    [sent] = simulator(trainer).workflows.values()
    assert sent["steps"][0]["input"]["samples"]["prompts"] == ["sks dog, neon", "sks dog, 3d"]
    assert charged(trainer) == latest.price_quoted == await ledger_total(trainer, alice)


async def test_two_confirms_at_once_never_beat_the_daily_cap(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    """Defect 2: two Confirms under a daily cap for one run both went through."""
    simulator(trainer).speed = 0  # runs stay queued: nothing settles meanwhile
    drafts = []
    for _ in range(2):
        await alice.slash("train flux1", dataset=attachment(3))
        drafts.append(await confirmation(alice))
    [job, _] = await trainer.services.store.jobs.list_for_user(alice.id)
    price = job.price_quoted
    assert price is not None
    await trainer.services.store.guilds.update(stage.guild.id, user_daily_buzz_cap=int(price * 1.5))
    await asyncio.gather(*(alice.click(draft, label="Confirm") for draft in drafts))
    await alice.wait_ephemeral(submitted)
    refusal = await alice.wait_ephemeral(lambda m: m.embeds and "caps each member" in m.embed.get("description", ""))
    assert "You have spent" in refusal.embed["description"]
    assert len(simulator(trainer).workflows) == 1
    assert charged(trainer) == await ledger_total(trainer, alice) <= price * 1.5


async def test_two_confirms_at_once_never_beat_the_runs_at_a_time_limit(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    """Defect 2: two Confirms with a limit of one run at a time started two."""
    simulator(trainer).speed = 0
    await trainer.services.store.guilds.update(stage.guild.id, max_concurrent_jobs_per_user=1)
    drafts = []
    for _ in range(2):
        await alice.slash("train flux1", dataset=attachment(3))
        drafts.append(await confirmation(alice))
    await asyncio.gather(*(alice.click(draft, label="Confirm") for draft in drafts))
    await alice.wait_ephemeral(submitted)
    await alice.wait_ephemeral(lambda m: m.embeds and "allows 1 at a time" in m.embed.get("description", ""))
    assert len(simulator(trainer).workflows) == 1
    jobs = await trainer.services.store.jobs.list_for_user(alice.id)
    assert sorted(j.status.value for j in jobs) == ["draft", "submitted"]
    assert charged(trainer) == await ledger_total(trainer, alice)


async def test_a_submit_whose_every_answer_is_lost_adopts_the_workflow_it_created(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    """Defect 3: the job went back to draft saying "Nothing was charged" while it trained on."""
    await alice.slash("train flux1", dataset=attachment(3))
    shown = await confirmation(alice)
    simulator(trainer).faults.lose_next_answer(3, route="submit")  # created, then every answer lost
    await alice.click(shown, label="Confirm")
    await alice.wait_ephemeral(submitted)
    assert not [m for m in stage.messages.values() if "Nothing was charged" in m.text]
    [workflow_id] = simulator(trainer).workflows
    [job] = await trainer.services.store.jobs.list_for_user(alice.id)
    assert job.status is not JobStatus.DRAFT and job.workflow_id == workflow_id
    assert charged(trainer) == await ledger_total(trainer, alice) > 0


async def test_a_5xx_after_the_workflow_was_created_adopts_it(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    await alice.slash("train flux1", dataset=attachment(3))
    shown = await confirmation(alice)
    simulator(trainer).faults.lose_next_answer(3, status=503, route="submit")
    await alice.click(shown, label="Confirm")
    await alice.wait_ephemeral(submitted)
    assert len(simulator(trainer).workflows) == 1
    assert charged(trainer) == await ledger_total(trainer, alice) > 0


async def test_when_civitai_cannot_say_the_job_stays_submitting_until_recovery_knows(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    """Lost answers, and the lookup fails too: nobody is told "nothing was charged", the price
    stays reserved, and once the lease ran out recovery adopts the workflow and posts its card."""
    services = trainer.services
    await alice.slash("train flux1", dataset=attachment(3))
    shown = await confirmation(alice)
    faults = simulator(trainer).faults
    faults.lose_next_answer(3, route="submit")
    faults.fail_next(3, 503, route="list")
    await alice.click(shown, label="Confirm")
    checking = await alice.wait_ephemeral(lambda m: m.id == shown.id and "checking" in m.text)
    assert "no need to press Confirm again" in checking.text and not is_confirmation(checking)
    assert "Nothing was charged" not in checking.text
    [job] = await services.store.jobs.list_for_user(alice.id)
    assert job.status is JobStatus.SUBMITTING and job.workflow_id is None
    assert await ledger_total(trainer, alice) == job.price_quoted  # reserved meanwhile
    services.clock.advance(seconds=31)  # the grace for a request still on its way ran out
    await services.tracker.refresh(job.id)
    recovered = await services.store.jobs.get(job.id)
    assert recovered is not None and recovered.status is JobStatus.SUBMITTED
    assert recovered.workflow_id == next(iter(simulator(trainer).workflows))
    await stage.wait_for(lambda: recovered.card_message_id or [m for m in stage.messages_in("general") if m.embeds],
                         "the recovered run's card")  # fmt: skip
    assert charged(trainer) == await ledger_total(trainer, alice)


async def test_a_submit_lost_before_it_reached_civitai_is_released_and_told_once_known(
    stage: Stage, trainer: TrainerBot, alice: StageMember
) -> None:
    """No answer and no workflow: "checking" first (it may still come), then, once the lease ran
    out and Civitai still has nothing, the reservation is dropped and the member told so."""
    services = trainer.services
    await alice.slash("train flux1", dataset=attachment(3))
    shown = await confirmation(alice)
    simulator(trainer).faults.drop_next(3, route="submit")
    await alice.click(shown, label="Confirm")
    await alice.wait_ephemeral(lambda m: m.id == shown.id and "checking" in m.text)
    [job] = await services.store.jobs.list_for_user(alice.id)
    assert job.status is JobStatus.SUBMITTING and await ledger_total(trainer, alice) > 0
    services.clock.advance(seconds=31)
    await services.tracker.refresh(job.id)
    told = await stage.wait_message(stage.channel("general"), lambda m: "did not start" in m.content)
    assert f"<@{alice.id}>" in told.content and "nothing was charged" in told.content
    assert (await services.store.jobs.get(job.id)).status is JobStatus.DISCARDED  # type: ignore[union-attr]
    assert await ledger_total(trainer, alice) == 0 and simulator(trainer).workflows == {} and charges(trainer) == []
    await services.tracker.refresh(job.id)
    assert len([m for m in stage.messages_in("general") if "did not start" in m.content]) == 1


async def test_a_slow_upload_keeps_its_lease_and_is_never_recovered_while_it_runs(
    stage: Stage, trainer: TrainerBot, alice: StageMember, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 5: after an hour of uploads the job was discarded while its submit was on its way."""
    monkeypatch.setattr(submission, "LEASE_RENEW_EVERY", timedelta(seconds=0.02), raising=False)
    services = trainer.services
    await alice.slash("train flux1", dataset=attachment(4))
    shown = await confirmation(alice)
    # Pricing uploaded the images and the submit would reuse them: forget them, so the submit
    # uploads again (as after a restart), slowly.
    services.training.uploads = UploadedDatasets()
    simulator(trainer).faults.slow_next(4, delay=1.5, route="upload_blob")
    await alice.click(shown, label="Confirm")
    [job] = await services.store.jobs.list_for_user(alice.id)

    async def claimed() -> bool:
        current = await services.store.jobs.get(job.id)
        return current is not None and current.status is JobStatus.SUBMITTING

    await until(claimed)
    services.clock.advance(hours=2)  # the uploads "took" two hours

    async def renewed() -> bool:
        current = await services.store.jobs.get(job.id)
        return current is not None and current.lease_until is not None and current.lease_until > services.clock.now()

    await until(renewed)
    await services.tracker.refresh(job.id)  # recovery looks while the uploads still run
    assert (await services.store.jobs.get(job.id)).status is JobStatus.SUBMITTING  # type: ignore[union-attr]
    await alice.wait_ephemeral(submitted)
    assert len(simulator(trainer).workflows) == 1
    cards = [m for m in stage.messages_in("general") if m.embeds]
    assert len(cards) == 1


async def test_a_refused_train_costs_no_cooldown(stage: Stage, trainer: TrainerBot, alice: StageMember) -> None:
    """Defect 7: refused for the channel, the member moved and was told "Slow down a little"."""
    training = stage.channel("training")
    await trainer.services.store.guilds.update(stage.guild.id, cooldown_seconds=600)
    await trainer.services.store.guilds.add_channel(stage.guild.id, training.id)
    reply = await refused(alice)
    assert "only allowed in" in reply.embed["description"]
    reply = await refused(alice)  # corrected nothing yet: told the rule again, not a cooldown
    assert "only allowed in" in reply.embed["description"]
    await alice.in_channel("training").slash("train flux1", dataset=attachment(3))
    await confirmation(alice)
    reply = await refused(alice.in_channel("training"))  # a request that passed the checks did cost one
    assert "Slow down a little" in reply.embed["description"]
