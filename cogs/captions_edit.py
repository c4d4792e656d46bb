"""Reviewing and editing a draft's captions before paying: the **Edit captions** button of the
training confirmation (pages of 5 images, each page's captions in one modal) and
`/dataset captions file:` (an edited `captions.txt`, or a zip of `.txt` files).

Every edit makes a new dataset (a new digest) for the draft and bumps its revision; the price
does not change (captions are free to edit).
"""

from __future__ import annotations

import asyncio
import io
import math

import discord
from discord.ext import commands

from bot.captioning.edits import MAX_UPLOAD_BYTES, DraftCaptions, EditedDraft, parse_upload, thumbnails, too_big
from bot.jobs.dataset_files import DatasetItem
from bot.jobs.submission import CONFIRMATION_TTL
from cogs.buttons import JOB_ID, JobButton, PersistentButton
from cogs.context import requester_from, services_of
from cogs.errors import report_error
from cogs.job_card import SIMULATED_BADGE
from cogs.replies import OK_COLOUR
from storage.models import Job

PAGE_SIZE = 5  # Discord: a modal holds at most 5 text inputs
CAPTION_INPUT_LIMIT = 4000
LABEL_LIMIT = 45  # Discord: a text input's label
PAGE_KEY = rf"{JOB_ID}\.\d{{1,4}}"


def drafts_of(interaction: discord.Interaction) -> DraftCaptions:
    return DraftCaptions(services_of(interaction).training)


def page_count(items: list[DatasetItem]) -> int:
    return max(1, math.ceil(len(items) / PAGE_SIZE))


async def render_page(
    drafts: DraftCaptions, job: Job, items: list[DatasetItem], page: int, note: str = ""
) -> tuple[str, list[discord.Embed], list[discord.File]]:
    """The page's text, one embed per image (its thumbnail and caption) and the thumbnails."""
    page = min(max(page, 0), page_count(items) - 1)
    shown = items[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    images = await asyncio.to_thread(thumbnails, drafts.training.dataset_path(job), [i.name for i in shown])
    embeds, files = [], []
    for number, (item, data) in enumerate(zip(shown, images, strict=True)):
        filename = f"thumb_{number}.jpg"
        embed = discord.Embed(title=item.name, description=item.caption or "*(no caption)*", colour=OK_COLOUR)
        embed.set_thumbnail(url=f"attachment://{filename}")
        embeds.append(embed)
        files.append(discord.File(io.BytesIO(data), filename=filename))
    first = page * PAGE_SIZE + 1
    text = f"Captions {first}–{first + len(shown) - 1} of {len(items)} (page {page + 1}/{page_count(items)})"
    if job.simulated:
        text = f"{SIMULATED_BADGE} · {text}"
    return text + (f"\n{note}" if note else ""), embeds, files


def page_view(job: Job, page: int, pages: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    key = f"{job.id}.{page}"
    for button in (PreviousPage(key), EditPage(key), NextPage(key)):
        button.item.disabled = (button.kind == "capprev" and page == 0) or (
            button.kind == "capnext" and page >= pages - 1
        )
        view.add_item(button)
    # Confirm from the page that shows the captions as they are now: it carries the draft's
    # latest revision, which the confirmation shown before the edit no longer does.
    view.add_item(confirm_view(job).children[0])
    return view


async def show_page(interaction: discord.Interaction, job_id: str, page: int, note: str = "") -> None:
    """Edit the page message (the interaction's own) to show ``page``."""
    drafts = drafts_of(interaction)
    job = await drafts.draft(job_id, requester_from(interaction))
    items = await drafts.items(job)
    page = min(max(page, 0), page_count(items) - 1)
    text, embeds, files = await render_page(drafts, job, items, page, note)
    await interaction.edit_original_response(
        content=text, embeds=embeds, attachments=files, view=page_view(job, page, page_count(items))
    )


class EditCaptionsButton(JobButton, kind="captions", label="Edit captions", style=discord.ButtonStyle.secondary):
    async def clicked(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)  # a new message: the first page
        await show_page(interaction, self.job_id, 0)


class _PageButton(PersistentButton, key_pattern=PAGE_KEY):
    step = 0

    @property
    def job_and_page(self) -> tuple[str, int]:
        job_id, _, page = self.key.rpartition(".")
        return job_id, int(page)

    async def clicked(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        job_id, page = self.job_and_page
        await show_page(interaction, job_id, page + self.step)


class PreviousPage(_PageButton, kind="capprev", label="◀ Previous"):
    step = -1


class NextPage(_PageButton, kind="capnext", label="Next ▶"):
    step = 1


class EditPage(_PageButton, kind="capedit", label="Edit these captions", style=discord.ButtonStyle.primary):
    async def clicked(self, interaction: discord.Interaction) -> None:
        # A modal must be the first answer: only quick reads before it.
        drafts = drafts_of(interaction)
        job_id, page = self.job_and_page
        job = await drafts.draft(job_id, requester_from(interaction))
        items = (await drafts.items(job))[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        await interaction.response.send_modal(CaptionsModal(job.id, page, items))


class CaptionsModal(discord.ui.Modal):
    def __init__(self, job_id: str, page: int, items: list[DatasetItem]) -> None:
        super().__init__(
            title=f"Captions, page {page + 1}", custom_id=f"ltb:capmodal:{job_id}.{page}",
            timeout=CONFIRMATION_TTL.total_seconds(),
        )  # fmt: skip
        self.job_id, self.page = job_id, page
        self.fields: list[tuple[str, discord.ui.TextInput[CaptionsModal]]] = []
        for number, item in enumerate(items):
            field: discord.ui.TextInput[CaptionsModal] = discord.ui.TextInput(
                label=item.name[:LABEL_LIMIT], custom_id=f"caption{number}", style=discord.TextStyle.paragraph,
                default=(item.caption or "")[:CAPTION_INPUT_LIMIT], max_length=CAPTION_INPUT_LIMIT, required=False,
            )  # fmt: skip
            self.fields.append((item.name, field))
            self.add_item(field)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()  # a new dataset is written: answer first
        drafts = drafts_of(interaction)
        job = await drafts.draft(self.job_id, requester_from(interaction))
        edited = await drafts.apply(job, {name: field.value for name, field in self.fields})
        await show_page(interaction, self.job_id, self.page, saved_note(edited))

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:  # type: ignore[override]
        await report_error(interaction, error)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def saved_note(edited: EditedDraft, where: str = "shown here") -> str:
    return (
        f"✅ Saved: {plural(len(edited.changed), 'caption')} changed. Confirm here trains with the captions "
        f"{where}; the price is the same."
    )


def confirm_view(job: Job) -> discord.ui.View:
    """Confirm for the draft's current revision (the confirmation from before an edit asks again)."""
    # Imported here: the confirmation's view imports this module for its Edit captions button.
    from cogs.confirmation_buttons import ConfirmButton

    view = discord.ui.View(timeout=None)
    view.add_item(ConfirmButton(f"{job.id}:{job.revision}"))
    return view


async def upload_captions(interaction: discord.Interaction, file: discord.Attachment) -> None:
    """`/dataset captions file:`: apply an edited captions.txt (or zip of .txt) to the current draft."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    drafts = drafts_of(interaction)
    job = await drafts.latest_draft(requester_from(interaction))
    if file.size > MAX_UPLOAD_BYTES:
        raise too_big(file.filename)
    data = await file.read()
    captions = parse_upload(file.filename, data, [item.name for item in await drafts.items(job)])
    edited = await drafts.apply(job, captions)
    prefix = f"{SIMULATED_BADGE} · " if job.simulated else ""
    await interaction.edit_original_response(
        content=f"{prefix}{plural(len(captions), 'caption')} applied to your run **{job.name}**. "
        + saved_note(edited, "you sent"),
        view=confirm_view(edited.job),
    )


async def setup(bot: commands.Bot) -> None:
    bot.add_dynamic_items(EditCaptionsButton, PreviousPage, NextPage, EditPage)
