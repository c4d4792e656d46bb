"""/jobs list | show | cancel on the stage: a member's own runs, and only theirs."""

from __future__ import annotations

import re
from pathlib import Path

import discord

from bot.app import TrainerBot
from cogs.job_cancel import AskCancelButton, ConfirmCancelButton
from cogs.job_lists import JobQuery, MemberJobsPage
from storage.models import JobStatus
from tests.manage.helpers import dataset, insert_jobs, simulator, start_run, train
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


async def test_cancel_edits_the_card_and_says_so_in_the_thread(
    stage: Stage, bot_on_stage: TrainerBot, alice: StageMember, tmp_path: Path
) -> None:
    bot = bot_on_stage
    simulator(bot).speed = 0
    job = await train(bot, alice, name="dog")
    assert job.card_message_id and job.thread_id
    card, thread = stage.messages[job.card_message_id], stage.channel(job.thread_id)

    shown = await (await alice.slash("jobs show", job=job.id)).reply()
    link = shown.button(label="Open thread")
    assert link["url"] == f"https://discord.com/channels/{stage.guild.id}/{thread.id}" and shown.button(
        label="Cancel run"
    )
    in_dm = await (await alice.in_dm().slash("jobs list", status="running")).reply()
    assert job.id in in_dm.text  # a member's own jobs, wherever they ask

    prompt = await (await alice.slash("jobs cancel", job=job.id)).reply()
    await alice.click(prompt, label="Yes, cancel it")
    await alice.wait_ephemeral(lambda m: m.embed["title"] == "Cancelled dog")
    after = await (await alice.slash("jobs show", job=job.id)).reply()
    assert [b["label"] for b in after.buttons] == ["Open thread"]  # nothing left to cancel
    public = await stage.wait_message("general", lambda m: m.id == card.id and "Cancelled" in m.text)
    assert public.edit_count >= 1 and f"Job {job.id}" in public.embed["footer"]["text"]
    said = await stage.wait_message(thread.id, lambda m: "cancelled this run" in m.content)
    assert f"<@{alice.id}>" in said.content and "Refunds are Civitai's decision" in said.content

    entries = await bot.services.store.audit.recent(stage.guild.id)
    assert [(e.action, e.actor_id, e.details["job"]) for e in entries] == [
        ("job.cancel", alice.id, job.id),
        ("job.submit", alice.id, job.id),
    ]
    # Cancelling again is refused with the reason, and the prompt can be dismissed.
    again = await (await alice.slash("jobs cancel", job=job.id)).reply()
    await alice.click(again, label="Yes, cancel it")
    refusal = await alice.wait_ephemeral(lambda m: m.embed["title"] == "Can't cancel that")
    assert "already ended (canceled)" in refusal.embed["description"]


async def test_lists_page_and_filter(stage: Stage, bot_on_stage: TrainerBot, alice: StageMember) -> None:
    jobs = await insert_jobs(bot_on_stage, stage.guild.id, alice.id, 12)
    await bot_on_stage.services.store.jobs.update_state(jobs[0].id, JobStatus.SUCCEEDED, None, 1.0)
    first = await (await alice.slash("jobs list")).reply()
    assert first.embed["footer"]["text"].startswith("Page 1 of 2 · 12 job(s)")
    assert first.button(label="◀")["disabled"] and not first.button(label="▶").get("disabled")
    await alice.click(first, label="▶")
    second = await alice.wait_ephemeral(lambda m: m.id == first.id and "Page 2 of 2" in m.embed["footer"]["text"])
    shown = re.findall(r"`([a-z0-9]{10})`", first.embed["description"] + second.embed["description"])
    assert len(second.embed["description"].splitlines()) == 2 and len(set(shown)) >= 2
    await alice.click(second, label="◀")
    await alice.wait_ephemeral(lambda m: m.id == first.id and "Page 1 of 2" in m.embed["footer"]["text"])

    done = await (await alice.slash("jobs list", status="succeeded")).reply()
    assert re.findall(r"`([a-z0-9]{10})`", done.embed["description"]) == [jobs[0].id] and not done.buttons
    assert "No jobs match" in (await (await alice.slash("jobs list", status="failed")).reply()).embed["description"]


async def test_a_member_cannot_see_or_cancel_anothers_job_by_any_path(
    stage: Stage, bot_on_stage: TrainerBot, alice: StageMember, bob: StageMember, tmp_path: Path
) -> None:
    bot = bot_on_stage
    simulator(bot).speed = 0
    job = await start_run(bot, stage, alice, await dataset(bot, tmp_path))
    assert await bob.autocomplete("jobs show", "job", "") == []
    assert await bob.autocomplete("jobs cancel", "job", job.id[:3]) == []
    assert await bob.autocomplete("jobs cancel", "job", "dog") == []
    assert job.id not in (await (await bob.slash("jobs list")).reply()).text
    for command in ("jobs show", "jobs cancel"):
        reply = await (await bob.slash(command, job=job.id)).reply()
        assert reply.embed["title"] == "Unknown job" and "dog" not in reply.text, command

    # Buttons carry the job id: posted where bob can press them, they still refuse him.
    view = discord.ui.View(timeout=None)
    for item in (AskCancelButton(job.id), ConfirmCancelButton(job.id), MemberJobsPage(JobQuery(alice.id))):
        view.add_item(item)
    channel = bot.get_channel(stage.channel("general").id)
    assert isinstance(channel, discord.TextChannel)
    posted = await channel.send("buttons", view=view)
    message = stage.messages[posted.id]
    for label in ("Cancel run", "Yes, cancel it"):
        await bob.click(message, label=label)
        refusal = await bob.wait_ephemeral(lambda m: m.embed["title"] == "Unknown job")
        assert "dog" not in refusal.text
    await bob.click(message, label="▶")
    assert "another member" in (await bob.wait_ephemeral(lambda m: m.embed["title"] == "Not allowed")).text

    # /admin with the command opened to everyone: the bot refuses, autocomplete offers nothing.
    stage.override_command_permissions("admin")
    assert await bob.autocomplete("admin cancel", "job", "") == []
    reply = await (await bob.slash("admin cancel", job=job.id)).reply()
    assert reply.embed["title"] == "Not allowed"
    stored = await bot.services.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.SUBMITTED
    assert simulator(bot)._records[job.workflow_id or ""].status != "canceled"


async def test_an_admin_cancels_any_job_of_their_server(
    stage: Stage, bot_on_stage: TrainerBot, alice: StageMember, admin: StageMember, tmp_path: Path
) -> None:
    bot = bot_on_stage
    simulator(bot).speed = 0
    job = await train(bot, alice, name="dog")
    assert [c["value"] for c in await admin.autocomplete("admin cancel", "job", "")] == [job.id]
    assert await admin.autocomplete("jobs cancel", "job", "") == []  # /jobs stays about their own runs
    listing = await (await admin.slash("admin jobs", member="alice", status="running")).reply()
    assert job.id in listing.text and f"<@{alice.id}>" in listing.text

    prompt = await (await admin.slash("admin cancel", job=job.id)).reply()
    assert f"started by <@{alice.id}>" in prompt.text
    await admin.click(prompt, label="Yes, cancel it")
    await admin.wait_ephemeral(lambda m: m.embed["title"] == "Cancelled dog")
    stored = await bot.services.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.CANCELED
    entry = (await bot.services.store.audit.recent(stage.guild.id))[0]
    assert (entry.action, entry.actor_id, entry.subject_id) == ("job.cancel", admin.id, alice.id)
    # The owner hears about it: pinged in the thread, and by DM.
    said = await stage.wait_message(job.thread_id, lambda m: "cancelled this run" in m.content)
    assert said.content.startswith(f"🚫 <@{alice.id}>, a server admin (<@{admin.id}>)")
    posted = [
        r for r in stage.requests if r.method == "POST" and r.path.endswith(f"/channels/{job.thread_id}/messages")
    ]
    assert [int(u) for u in posted[-1].body["allowed_mentions"]["users"]] == [alice.id]
    dm = await alice.wait_dm(lambda m: "cancelled your run" in m.content)
    assert f"`{job.id}`" in dm.content and "Refunds are Civitai's decision" in dm.content
