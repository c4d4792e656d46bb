"""Getting a member's dataset in (attachment or link) and showing its report.

Shared by ``/train flux1`` and ``/dataset check``: both say the same thing about the same zip.
The attachment is streamed to disk while the command runs (its URL has no documented
lifetime) and never held in memory whole.
"""

from __future__ import annotations

import contextlib
import io

import discord

from bot.dataset.intake import intake_from_stream, intake_from_url
from bot.dataset.report import DatasetResult
from bot.dataset.sources import http_chunks
from bot.errors import UserFacingError
from bot.render.shrink import shrink_to_fit
from bot.services import Services
from cogs.progress import ProgressMessage
from cogs.replies import ERROR_COLOUR, OK_COLOUR

CONTACT_SHEET_NAME = "contact_sheet.png"
# The report shares its message with the confirmation's parameters and price (6000 characters
# for all embeds together): keep it well under half.
REPORT_TEXT_LIMIT = 2500


def require_one_source(dataset: discord.Attachment | None, dataset_url: str | None) -> None:
    url = (dataset_url or "").strip()
    if dataset is None and not url:
        raise UserFacingError(
            "Attach your images as a zip in the `dataset` option, or paste an https link to the zip in `dataset_url`.",
            title="No dataset given",
        )
    if dataset is not None and url:
        raise UserFacingError(
            "You gave both `dataset` and `dataset_url`: use one of the two, so it's clear which zip to train on.",
            title="Two datasets given",
        )


async def receive_dataset(
    services: Services,
    *,
    dataset: discord.Attachment | None,
    dataset_url: str | None,
    trigger_word: str | None,
    progress: ProgressMessage,
) -> DatasetResult:
    """Download, check and (when accepted) keep the dataset; raises ``DatasetError`` when it
    cannot even be read (too big, download failed)."""
    require_one_source(dataset, dataset_url)
    settings = services.settings
    await progress.show("⬇️ Downloading the dataset…")
    if dataset is not None:
        chunks = http_chunks(dataset.url, time_limit=settings.url_timeout_seconds)
        async with contextlib.aclosing(chunks):
            return await intake_from_stream(
                chunks,
                settings,
                trigger_word=trigger_word,
                store=services.datasets,
                source=dataset.filename,
                declared_size=dataset.size,
                progress=progress,
            )
    return await intake_from_url(
        (dataset_url or "").strip(), settings, trigger_word=trigger_word, store=services.datasets, progress=progress
    )


def dataset_embed(result: DatasetResult, *, image: str | None) -> discord.Embed:
    embed = discord.Embed(
        title="Dataset accepted" if result.accepted else "Dataset refused: nothing was submitted",
        description=result.to_text(REPORT_TEXT_LIMIT),
        colour=OK_COLOUR if result.accepted else ERROR_COLOUR,
    )
    if not result.accepted:
        embed.set_footer(text="Fix the problems listed above and run the command again with the new zip.")
    if image:
        embed.set_image(url=f"attachment://{image}")
    return embed


def contact_sheet_file(result: DatasetResult, limit: int) -> discord.File | None:
    """The contact sheet as an upload within the channel's size limit, or None without one."""
    if not result.contact_sheet:
        return None
    data, name = shrink_to_fit(result.contact_sheet, limit, filename=CONTACT_SHEET_NAME)
    return discord.File(io.BytesIO(data), filename=name)


async def show_dataset_report(interaction: discord.Interaction, result: DatasetResult) -> None:
    """Replace the progress lines by the report and its contact sheet."""
    sheet = contact_sheet_file(result, interaction.filesize_limit)
    await interaction.edit_original_response(
        content=None,
        embed=dataset_embed(result, image=sheet.filename if sheet else None),
        attachments=[sheet] if sheet else [],
    )
