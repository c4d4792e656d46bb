"""/jobs list | show | cancel on the stage: a member's own runs, and only theirs."""

from __future__ import annotations

from pathlib import Path

from bot.app import TrainerBot
from storage.models import JobStatus
from tests.manage.helpers import dataset, simulator, start_run
from tests.stage import Stage, StageMember


async def test_list_show_and_cancel_own_run(
    stage: Stage, bot_on_stage: TrainerBot, alice: StageMember, tmp_path: Path
) -> None:
    bot = bot_on_stage
    sim = simulator(bot)
    sim.speed = 0  # the run stays queued until the test moves time on
    job = await start_run(bot, stage, alice, await dataset(bot, tmp_path))
    assert job.status is JobStatus.SUBMITTED and job.workflow_id

    listing = await (await alice.slash("jobs list")).reply()
    assert listing.ephemeral and job.id in listing.embed["description"]

    choices = await alice.autocomplete("jobs show", "job", "")
    assert [c["value"] for c in choices] == [job.id]

    card = await (await alice.slash("jobs show", job=job.id)).reply()
    assert card.embed["footer"]["text"].startswith(f"Job {job.id}")
    await alice.click(card, label="Cancel run")
    prompt = await alice.wait_ephemeral(lambda m: m.embed["title"].startswith("Cancel"))
    assert "Refunds are Civitai's decision" in prompt.text
    await alice.click(prompt, label="Yes, cancel it")
    done = await alice.wait_ephemeral(lambda m: m.embed["title"].startswith("Cancelled"))
    assert "Refunds are Civitai's decision" in done.text

    stored = await bot.services.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.CANCELED
    assert sim._records[job.workflow_id].status == "canceled"
