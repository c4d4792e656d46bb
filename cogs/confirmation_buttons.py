"""Confirm, Edit sample prompts and Cancel on the ``/train`` confirmation.

They are ``JobButton``s (``ltb:confirm:<job>``…), so they work after a restart with nothing in
memory. Only the member who started the run can use them (``NotYourJob``); after 15 minutes
they say the confirmation expired and submit nothing.
"""

from __future__ import annotations

import contextlib
import logging

import discord
from discord.ext import commands

from bot.civitai.errors import OrchestratorValidationError
from bot.jobs.submission import (
    CONFIRMATION_TTL,
    ConfirmationClosed,
    ConfirmationExpired,
    DraftRevised,
    JobNotFound,
    NotYourJob,
    Quote,
    SubmitOutcomeUnknown,
    TrainingService,
)
from cogs.buttons import JOB_ID, JobButton
from cogs.confirmation import cancelled_embed, closed_embed, merge_warnings, shown_warnings, training_embed
from cogs.context import requester_from, services_of
from cogs.errors import report_error
from cogs.job_thread import open_job_thread
from storage.models import Job, JobStatus

log = logging.getLogger(__name__)

PROMPTS_INPUT_LIMIT = 4000  # Discord: a text input holds at most 4000 characters


def confirmation_view(job: Job, *, disabled: bool = False) -> discord.ui.View:
    """The confirmation's buttons; Confirm carries the draft revision shown with them."""
    view = discord.ui.View(timeout=None)
    for item in (ConfirmButton(f"{job.id}:{job.revision}"), PromptsButton(job.id), DiscardButton(job.id)):
        item.item.disabled = disabled
        view.add_item(item)
    return view


def where_to_follow(job: Job) -> str | None:
    """A link to the job's thread, else its card, once posted."""
    if job.thread_id:
        return f"<#{job.thread_id}>"
    if job.card_channel_id and job.card_message_id:
        return f"https://discord.com/channels/{job.guild_id}/{job.card_channel_id}/{job.card_message_id}"
    return None


async def close_confirmation(interaction: discord.Interaction, embed: discord.Embed) -> None:
    """Replace the confirmation (buttons and contact sheet included) by ``embed``."""
    if interaction.response.is_done():
        await interaction.edit_original_response(content=None, embed=embed, attachments=[], view=None)
    else:
        await interaction.response.edit_message(content=None, embed=embed, attachments=[], view=None)


async def tell(interaction: discord.Interaction, text: str) -> None:
    """A short ephemeral note to the member that leaves the confirmation as it is."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


async def answer_not_a_draft(interaction: discord.Interaction, training: TrainingService, job: Job) -> None:
    """What a button says when its confirmation is no longer waiting (sent, cancelled, expired)."""
    if job.status is JobStatus.DRAFT or (job.status is JobStatus.DISCARDED and training.expired(job)):
        await close_confirmation(interaction, closed_embed(ConfirmationExpired()))
    elif job.status is JobStatus.DISCARDED:
        await close_confirmation(interaction, closed_embed(ConfirmationClosed()))
    elif job.status is JobStatus.SUBMITTING:
        await tell(interaction, "⏳ This run is already being submitted: its card will appear in a moment.")
    else:
        where = where_to_follow(job)
        await tell(
            interaction,
            "This run was already submitted"
            + (f": follow it in {where}." if where else ".")
            + " To stop it, use `/jobs cancel`.",
        )


# ``<job id>:<draft revision>``; a Confirm from before revisions existed has none and is never
# the current revision (it shows the draft again instead of submitting).
REVISED_JOB = rf"{JOB_ID}(?::\d{{1,9}})?"


class ConfirmButton(
    JobButton, kind="confirm", label="Confirm", style=discord.ButtonStyle.success, key_pattern=REVISED_JOB
):
    @property
    def job_id(self) -> str:
        return self.key.partition(":")[0]

    @property
    def revision(self) -> int:
        shown = self.key.partition(":")[2]
        return int(shown) if shown else 0

    async def clicked(self, interaction: discord.Interaction) -> None:
        # The submit (and blob uploads) may take longer than Discord's 3 s: answer first.
        await interaction.response.defer()
        await confirm(interaction, self.job_id, self.revision)


async def confirm(interaction: discord.Interaction, job_id: str, revision: int) -> None:
    services = services_of(interaction)
    training = services.training
    requester = requester_from(interaction)
    claimed: Job | None = None

    async def show_submitting(job: Job) -> None:
        nonlocal claimed
        claimed = job
        with contextlib.suppress(discord.HTTPException):
            await interaction.edit_original_response(
                content="⏳ Submitting to Civitai…", view=confirmation_view(job, disabled=True)
            )

    try:
        submission = await training.submit_draft(job_id, requester, revision=revision, on_claimed=show_submitting)
    except (NotYourJob, JobNotFound):
        raise  # someone else's confirmation: leave it exactly as it is
    except (ConfirmationExpired, ConfirmationClosed) as exc:
        await close_confirmation(interaction, closed_embed(exc))
        return
    except DraftRevised as exc:
        await show_quote(interaction, await training.current_quote(exc.job, requester), note=exc.user_message)
        return
    except SubmitOutcomeUnknown as exc:
        # The run may have started: Confirm stays off, and recovery tells the member what happened.
        view = confirmation_view(claimed, disabled=True) if claimed else None
        await interaction.edit_original_response(content=f"⏳ {exc.user_message}", view=view)
        return
    except OrchestratorValidationError as exc:
        # The same request would be refused again: the member changes options and starts over.
        await training.discard(job_id, requester)
        await close_confirmation(interaction, closed_embed(exc))
        return
    except Exception:
        # Nothing was submitted and the draft is back (not enough Buzz, a cap, Civitai sure it
        # has no such run…): Confirm stays usable, and the error says what to do.
        current = await training.store.jobs.get(job_id)
        if claimed and current is not None and current.status is JobStatus.DRAFT:
            with contextlib.suppress(discord.HTTPException):
                await interaction.edit_original_response(content=None, view=confirmation_view(current))
        raise
    job = submission.job
    if not submission.submitted_now:
        await answer_not_a_draft(interaction, training, job)
        return
    simulated = " (SIMULATED: no Buzz is spent)" if job.simulated else ""
    try:
        card, thread = await open_job_thread(interaction.client, services.store, job)
    except (discord.DiscordException, RuntimeError) as exc:
        # Submitted and charged all the same: say so, and where else to follow it.
        log.warning("Job %s was submitted but its card could not be posted: %s", job.id, exc)
        await interaction.edit_original_response(
            content=f"✅ Submitted{simulated}, job `{job.id}`, but I could not post its card in <#{job.channel_id}> "
            "(check my permissions there). Follow it with `/jobs show`.",
            embeds=[],
            attachments=[],
            view=None,
        )
        return
    where = thread.mention if thread is not None else card.jump_url
    await interaction.edit_original_response(
        content=f"✅ Submitted{simulated}: follow it in {where}", embeds=[], attachments=[], view=None
    )


async def show_quote(interaction: discord.Interaction, quote: Quote, *, note: str | None = None) -> None:
    """Show ``quote`` in place of the confirmation's training embed, with its revision's buttons;
    the dataset report, contact sheet and warnings shown before stay."""
    embeds = list(interaction.message.embeds) if interaction.message else []
    shown = shown_warnings(embeds[-1]) if embeds else []
    fresh = training_embed(quote, warnings=merge_warnings(shown, quote.warnings))
    await interaction.edit_original_response(
        content=f"⚠️ {note}" if note else None, embeds=[*embeds[:-1], fresh], view=confirmation_view(quote.job)
    )


class PromptsButton(JobButton, kind="prompts", label="Edit sample prompts", style=discord.ButtonStyle.secondary):
    async def clicked(self, interaction: discord.Interaction) -> None:
        # A modal must be the first answer, so only quick database reads come before it.
        training = services_of(interaction).training
        requester = requester_from(interaction)
        job = await training.own_job(self.job_id, requester)
        if job.status is JobStatus.DRAFT and training.expired(job):
            await training.discard(job.id, requester)
        if job.status is not JobStatus.DRAFT or training.expired(job):
            await answer_not_a_draft(interaction, training, job)
            return
        await interaction.response.send_modal(PromptsModal(job.id, list(job.params.get("sample_prompts") or [])))


class PromptsModal(discord.ui.Modal):
    def __init__(self, job_id: str, prompts: list[str]) -> None:
        super().__init__(
            title="Edit sample prompts",
            custom_id=f"ltb:prompts-modal:{job_id}",
            timeout=CONFIRMATION_TTL.total_seconds(),
        )
        self.job_id = job_id
        self.prompts: discord.ui.TextInput[PromptsModal] = discord.ui.TextInput(
            label="Sample prompts, one per line",
            custom_id="prompts",
            style=discord.TextStyle.paragraph,
            default="\n".join(prompts)[:PROMPTS_INPUT_LIMIT],
            placeholder="Leave empty to use captions from your dataset",
            max_length=PROMPTS_INPUT_LIMIT,
            required=False,
        )
        self.add_item(self.prompts)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()  # re-pricing asks Civitai: answer first
        training = services_of(interaction).training
        lines = [line.strip() for line in self.prompts.value.splitlines() if line.strip()]
        requester = requester_from(interaction)
        quote = await training.update_sample_prompts(self.job_id, requester, lines)
        if quote is None:
            job = await training.store.jobs.get(self.job_id)
            if job is not None and job.status is JobStatus.DRAFT:
                quote = await training.current_quote(job, requester)  # changed again meanwhile
            elif job is not None:
                await answer_not_a_draft(interaction, training, job)
                return
            else:
                return
        await show_quote(interaction, quote)

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:  # type: ignore[override]
        if isinstance(error, ConfirmationExpired):
            await close_confirmation(interaction, closed_embed(error))
            return
        await report_error(interaction, error)


class DiscardButton(JobButton, kind="discard", label="Cancel", style=discord.ButtonStyle.danger):
    async def clicked(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        training = services_of(interaction).training
        requester = requester_from(interaction)
        job = await training.own_job(self.job_id, requester)
        if job.status is JobStatus.DRAFT and training.expired(job):
            await training.discard(job.id, requester)
            await close_confirmation(interaction, closed_embed(ConfirmationExpired()))
        elif await training.discard(job.id, requester):
            await close_confirmation(interaction, cancelled_embed())
        else:
            current = await training.store.jobs.get(job.id)
            await answer_not_a_draft(interaction, training, current or job)


async def setup(bot: commands.Bot) -> None:
    bot.add_dynamic_items(ConfirmButton, PromptsButton, DiscardButton)
