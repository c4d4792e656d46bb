"""Auto-captioning in Discord: the `auto_caption` / `caption_style` options of `/train flux1` and
`/dataset check`, the captioning confirmation ("Caption 120 images for N Buzz?"), its progress
("Captioning 37/120…"), and the "Captions" section with `captions.txt` that follows.

The captioning run is stored (``caption_runs``) with what the command needs to carry on, so its
buttons work from the custom id alone, like the training confirmation's.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.captioning.options import AutoCaption, CaptionOptions, CaptionStyle
from bot.captioning.service import CaptionOutcome, CaptionQuote
from bot.captioning.summary import CAPTIONS_FILE, CaptionSummary
from bot.civitai.training import TrainingOptions
from bot.dataset.report import DatasetResult
from bot.jobs.submission import Requester
from cogs.buttons import PersistentButton
from cogs.confirmation import fit_embeds
from cogs.confirmation_buttons import close_confirmation, tell
from cogs.context import requester_from, services_of
from cogs.intake import contact_sheet_file, dataset_embed
from cogs.job_card import SIMULATED_BADGE
from cogs.progress import ProgressMessage
from cogs.replies import OK_COLOUR

log = logging.getLogger(__name__)

RUN_ID = r"cap[0-9a-f]{1,32}"
AUTO_CAPTION_HELP = "Caption images with AI first: missing (only uncaptioned ones) or all (default off)"
CAPTION_STYLE_HELP = "sentences (JoyCaption, default) or tags (WD tagger)"
AUTO_CAPTION_CHOICES = [app_commands.Choice(name=v.value, value=v.value) for v in AutoCaption]
CAPTION_STYLE_CHOICES = [app_commands.Choice(name=v.value, value=v.value) for v in CaptionStyle]
STYLE_WORDS = {
    CaptionStyle.SENTENCES.value: "sentences written by JoyCaption",
    CaptionStyle.TAGS.value: "tags from the WD tagger",
}
MODE_WORDS = {AutoCaption.MISSING.value: "images without a caption", AutoCaption.ALL.value: "every image"}
PROGRESS_INTERVAL_SECONDS = 1.0


def _badge(simulated: bool, text: str) -> str:
    return f"{SIMULATED_BADGE} · {text}" if simulated else text


def offer_embed(quote: CaptionQuote) -> discord.Embed:
    run = quote.run
    price = f"{quote.price:,} Buzz" + (
        " (estimate: Civitai could not price it just now)" if quote.price_is_estimate else ""
    )
    embed = discord.Embed(
        title=_badge(quote.simulated, f"Caption {quote.count} images for {quote.price:,} Buzz?"),
        description=(
            f"Auto-captioning {MODE_WORDS[run.mode]} with {STYLE_WORDS[run.style]}"
            + (f", `{run.trigger_word}` first in each caption" if run.trigger_word else "")
            + f".\n**Price**: {price}\n**Who pays**: {quote.payer}\n"
            "Nothing is spent until you press **Caption**; you can read and edit every caption "
            "before training, for free."
            + ("\nSIMULATED: no Buzz is spent, captions are generated." if quote.simulated else "")
        ),
        colour=OK_COLOUR,
    )
    return embed


EDIT_HINT = "Read and change them with **Edit captions** below, or send an edited file with `/dataset captions`."


def captions_embed(summary: CaptionSummary, *, simulated: bool, editable: bool) -> discord.Embed:
    lines = summary.lines() + ([EDIT_HINT] if editable else [])
    return discord.Embed(title=_badge(simulated, "Captions"), description="\n".join(lines)[:3000], colour=OK_COLOUR)


def captions_file(summary: CaptionSummary) -> discord.File:
    return discord.File(io.BytesIO(summary.captions_txt().encode("utf-8")), filename=CAPTIONS_FILE)


class CaptionProgress(ProgressMessage):
    """ "Captioning 37/120…", at most one edit a second (the last count always shown)."""

    def __init__(self, interaction: discord.Interaction, *, simulated: bool) -> None:
        super().__init__(interaction, min_interval=PROGRESS_INTERVAL_SECONDS)
        self.simulated = simulated

    async def captioning(self, done: int, total: int) -> None:
        if done < total and time.monotonic() - self._last_edit < self.min_interval:
            return
        await self.show(_badge(self.simulated, f"✍️ Captioning {done}/{total}…"))


def offer_view(run_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CaptionButton(run_id))
    view.add_item(CaptionCancelButton(run_id))
    return view


async def offer_captions(
    interaction: discord.Interaction,
    progress: ProgressMessage,
    requester: Requester,
    result: DatasetResult,
    options: CaptionOptions,
    context: dict[str, Any],
) -> bool:
    """Price captioning and ask (or run it at once under the server's free threshold); False when
    there is nothing to caption and the command goes on as without captioning."""
    if not options.enabled:
        return False
    await progress.show("💰 Pricing the captions…")
    quote = await services_of(interaction).captioning.quote(requester, options, result, context)
    if quote is None:
        return False
    if quote.free:
        await run_and_carry_on(interaction, requester, quote.run.id)
        return True
    sheet = contact_sheet_file(result, interaction.filesize_limit)
    await interaction.edit_original_response(
        content=None,
        embeds=fit_embeds([dataset_embed(result, image=sheet.filename if sheet else None), offer_embed(quote)]),
        attachments=[sheet] if sheet else [],
        view=offer_view(quote.run.id),
    )
    return True


async def run_and_carry_on(interaction: discord.Interaction, requester: Requester, run_id: str) -> None:
    services = services_of(interaction)
    run = await services.captioning.own_run(run_id, requester)
    progress = CaptionProgress(interaction, simulated=run.simulated)
    await progress.show(_badge(run.simulated, f"✍️ Captioning 0/{len(run.images)}…"))
    outcome = await services.captioning.run(run_id, requester, progress.captioning)
    if outcome is None:  # pressed again, or after a restart: follow the run, or show its result
        outcome = await services.captioning.attach(run_id, requester, progress.captioning)
    if outcome is None:
        await tell(interaction, "⏳ These images are already being captioned.")
        return
    await carry_on(interaction, progress, requester, outcome)


async def carry_on(
    interaction: discord.Interaction, progress: ProgressMessage, requester: Requester, outcome: CaptionOutcome
) -> None:
    """What the command does with the captioned dataset: the training confirmation, or the report."""
    context, result = outcome.run.context, outcome.dataset
    train = context.get("command") == "train"
    section = captions_embed(outcome.summary, simulated=outcome.run.simulated, editable=train)
    if train:
        # Imported here: /train imports this module for its options and the captioning offer.
        from cogs.train import present_training

        options = TrainingOptions.from_user(**context["options"])
        await present_training(interaction, progress, requester, options, result, name=context.get("name"),
                               extra_embeds=[section], extra_files=[captions_file(outcome.summary)])  # fmt: skip
        return
    sheet = contact_sheet_file(result, interaction.filesize_limit)
    await interaction.edit_original_response(
        content=None,
        embeds=fit_embeds([dataset_embed(result, image=sheet.filename if sheet else None), section]),
        attachments=([sheet] if sheet else []) + [captions_file(outcome.summary)],
        view=None,
    )


class CaptionButton(PersistentButton, kind="caption-run", label="Caption", style=discord.ButtonStyle.success,
                    key_pattern=RUN_ID):  # fmt: skip
    async def clicked(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()  # uploads and captioning take a while: answer first
        await run_and_carry_on(interaction, requester_from(interaction), self.key)


class CaptionCancelButton(PersistentButton, kind="caption-cancel", label="Cancel", style=discord.ButtonStyle.danger,
                          key_pattern=RUN_ID):  # fmt: skip
    async def clicked(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        if await services_of(interaction).captioning.discard(self.key, requester_from(interaction)):
            embed = discord.Embed(title="Cancelled", description="No image was captioned and nothing was spent.")
            await close_confirmation(interaction, embed)
        else:
            await tell(interaction, "These images are already being captioned (or were): it can't be cancelled now.")


class CaptionResume(commands.Cog):
    """Finishes, at start-up, the captioning runs a restart interrupted: the workflow is followed
    again (never submitted or charged again) and its result stored, so pressing **Caption** once
    more on the member's message shows the captions."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.task: asyncio.Task[int] | None = None

    async def cog_load(self) -> None:
        services = getattr(self.bot, "services", None)
        if services is not None:
            self.task = asyncio.create_task(services.captioning.resume(), name="caption-resume")
            self.task.add_done_callback(_log_resume)

    async def cog_unload(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()


def _log_resume(task: asyncio.Task[int]) -> None:
    if task.cancelled():
        return
    if (error := task.exception()) is not None:
        log.warning("Resuming captioning runs failed: %s", type(error).__name__)
    elif task.result():
        log.info("Resumed %d captioning run(s) interrupted by a restart", task.result())


async def setup(bot: commands.Bot) -> None:
    bot.add_dynamic_items(CaptionButton, CaptionCancelButton)
    await bot.add_cog(CaptionResume(bot))
