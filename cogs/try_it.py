"""Try it: generate with any epoch of a run, from its epoch message or the final grid.

**Try it** (``ltb:try:<job>:<n>``, and the grid's select ``ltb:trysel:<job>``) opens a modal:
prompt (prefilled with the trigger word), negative prompt, size and number of images, seed and
LoRA strength. The core (``bot.generation``) prices it with whatif and keeps a draft; the member
sees a small confirmation (prompt, epoch, price, who pays) with **Confirm** / **Cancel**
(``ltb:genok:<id>`` / ``ltb:genno:<id>``). Once submitted the core follows the workflow and
``DiscordGenerationSink`` posts the images in the run's thread with **Try again**
(``ltb:again:<id>``: same settings, a new seed, priced and confirmed again).
"""

from __future__ import annotations

import io
import logging
from typing import Any

import discord
from discord.ext import commands

from bot.app import TrainerBot
from bot.civitai.errors import OrchestratorValidationError
from bot.generation.options import (
    MAX_PROMPT,
    MAX_QUANTITY,
    GenerationOptions,
    Size,
    parse_prompt,
    parse_seed,
    parse_strength,
)
from bot.generation.service import (
    MAX_COMPARED,
    EpochModelExpired,
    GenerationConfirmationExpired,
    GenerationNotFound,
    GenerationQuote,
    GenerationService,
    NotYourGeneration,
)
from bot.jobs.continuation import job_epoch_airs
from bot.jobs.events import message_nonce
from bot.render.grid import comparison_grid
from cogs.buttons import JobButton
from cogs.common import is_admin
from cogs.confirmation import closed_embed
from cogs.confirmation_buttons import close_confirmation, tell
from cogs.context import requester_from
from cogs.epoch_items import MAX_SELECT_OPTIONS, EpochButton, EpochMenu
from cogs.errors import report_error
from cogs.job_access import job_for
from cogs.job_card import SIMULATED_BADGE
from cogs.replies import INFO_COLOUR, OK_COLOUR
from storage.generations import Generation, GenerationKind, GenerationStatus, TryItAccess
from storage.models import Job

log = logging.getLogger(__name__)

COG_NAME = "TryIt"
FIELD_LIMIT = 1024


def service_of(interaction: discord.Interaction) -> GenerationService:
    # BotBase: a Bot or an AutoShardedBot. By attribute, not class: discord.py loads an extension
    # as a fresh module object, so the cog's class differs from the one modules importing this file see.
    cog = interaction.client.get_cog(COG_NAME) if isinstance(interaction.client, commands.bot.BotBase) else None
    service = getattr(cog, "service", None)
    if not isinstance(service, GenerationService):
        raise RuntimeError("the Try it cog is not loaded")
    return service


TRY_IT_WORDS = {
    TryItAccess.OWNER: "only a run's owner (and server admins) may generate with its epochs",
    TryItAccess.MEMBERS: "every member may generate with any run's epochs, paying as the server's payer rule says",
}


async def try_it_access(interaction: discord.Interaction) -> TryItAccess:
    assert interaction.guild_id is not None
    return await service_of(interaction).repo.try_it_access(interaction.guild_id)


async def set_try_it_access(interaction: discord.Interaction, access: TryItAccess) -> None:
    assert interaction.guild_id is not None
    await service_of(interaction).repo.set_try_it_access(interaction.guild_id, access)


def _clip(text: str, limit: int = FIELD_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the modal ------------------------------------------------------------------------------------


TextInput = discord.ui.TextInput[discord.ui.Modal]


def prompt_inputs(job: Job) -> tuple[TextInput, TextInput]:
    """The prompt (prefilled with the run's trigger word) and the optional negative prompt."""
    trigger = job.params.get("trigger_word")
    prompt: TextInput = discord.ui.TextInput(
        label="Prompt",
        custom_id="prompt",
        style=discord.TextStyle.paragraph,
        default=f"{trigger}, " if isinstance(trigger, str) and trigger else None,
        max_length=MAX_PROMPT,
    )
    negative: TextInput = discord.ui.TextInput(
        label="Negative prompt (optional)",
        custom_id="negative",
        style=discord.TextStyle.paragraph,
        required=False,
        max_length=MAX_PROMPT,
    )
    return prompt, negative


class TryItModal(discord.ui.Modal):
    """Prompt, negative prompt, size × images, seed and strength for one epoch."""

    def __init__(self, job: Job, epoch: int) -> None:
        super().__init__(
            title=_clip(f"Try epoch {epoch} of {job.name}", 45), custom_id=f"ltb:trymodal:{job.id}:{epoch}"
        )
        self.job_id, self.epoch = job.id, epoch
        self.prompt, self.negative = prompt_inputs(job)
        self.shape: discord.ui.Select[TryItModal] = discord.ui.Select(
            custom_id="shape",
            options=[
                discord.SelectOption(
                    label=f"{size.label} · {n} image{'s' if n > 1 else ''}",
                    value=f"{size.value}:{n}",
                    default=size is Size.SQUARE and n == 1,
                )
                for size in Size
                for n in range(1, MAX_QUANTITY + 1)
            ],
        )
        self.seed: discord.ui.TextInput[TryItModal] = discord.ui.TextInput(
            label="Seed (blank: random)", custom_id="seed", required=False, max_length=10, placeholder="random"
        )
        self.strength: discord.ui.TextInput[TryItModal] = discord.ui.TextInput(
            label="LoRA strength", custom_id="strength", default="1.0", max_length=5
        )
        self.add_item(self.prompt)
        self.add_item(self.negative)
        self.add_item(discord.ui.Label(text="Size and number of images", component=self.shape))
        self.add_item(self.seed)
        self.add_item(self.strength)

    def options(self) -> tuple[GenerationOptions, float]:
        size, _, count = (self.shape.values or [f"{Size.SQUARE.value}:1"])[0].partition(":")
        options = GenerationOptions(
            prompt=parse_prompt(self.prompt.value) or "",
            negative_prompt=parse_prompt(self.negative.value, name="negative prompt", required=False),
            size=Size(size),
            seed=parse_seed(self.seed.value),
            quantity=int(count),
            variant="dev",  # the core sets the run's own variant
        )
        return options, parse_strength(self.strength.value)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            options, strength = self.options()
            job = await job_for(interaction, self.job_id)
            quote = await service_of(interaction).quote_try(
                job, self.epoch, requester_from(interaction), options, strength, is_admin=is_admin(interaction)
            )
            await interaction.followup.send(ephemeral=True, **confirmation(quote, job))
        except Exception as exc:
            await report_error(interaction, exc)


async def open_try_it(interaction: discord.Interaction, job_id: str, epoch: int) -> None:
    """The access check first (a modal only for those who may), then the modal."""
    try:
        job = await job_for(interaction, job_id)
        await service_of(interaction).check_try_access(job, interaction.user.id, is_admin=is_admin(interaction))
        await interaction.response.send_modal(TryItModal(job, epoch))
    except Exception as exc:
        await report_error(interaction, exc)


class TryItButton(EpochButton, kind="try", label="Try it"):
    async def clicked(self, interaction: discord.Interaction) -> None:
        await open_try_it(interaction, self.job_id, self.number)


class TryItSelect(EpochMenu, kind="trysel", placeholder="Try an epoch…", option_label="Try epoch {}", emoji="🎨"):
    """The final grid's menu: try any epoch."""

    async def chosen(self, interaction: discord.Interaction, number: int) -> None:
        await open_try_it(interaction, self.job_id, number)


class CompareModal(discord.ui.Modal):
    """One prompt, one seed, the chosen epochs and the base model side by side."""

    def __init__(self, job: Job, epochs: list[int]) -> None:
        super().__init__(title=_clip(f"Compare epochs of {job.name}", 45), custom_id=f"ltb:cmpmodal:{job.id}")
        self.job_id = job.id
        self.prompt, self.negative = prompt_inputs(job)
        shown = epochs[-MAX_SELECT_OPTIONS:]
        self.epochs: discord.ui.Select[CompareModal] = discord.ui.Select(
            custom_id="epochs",
            min_values=1,
            max_values=min(MAX_COMPARED, len(shown)),
            options=[discord.SelectOption(label=f"Epoch {n}", value=str(n)) for n in shown],
        )
        self.size: discord.ui.Select[CompareModal] = discord.ui.Select(
            custom_id="size",
            options=[discord.SelectOption(label=s.label, value=s.value, default=s is Size.SQUARE) for s in Size],
        )
        self.seed: discord.ui.TextInput[CompareModal] = discord.ui.TextInput(
            label="Seed (blank: random, the same for all)", custom_id="seed", required=False, max_length=10
        )
        self.add_item(self.prompt)
        self.add_item(self.negative)
        self.add_item(discord.ui.Label(text=f"Epochs to compare (up to {MAX_COMPARED})", component=self.epochs))
        self.add_item(discord.ui.Label(text="Size", component=self.size))
        self.add_item(self.seed)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            options = GenerationOptions(
                prompt=parse_prompt(self.prompt.value) or "",
                negative_prompt=parse_prompt(self.negative.value, name="negative prompt", required=False),
                size=Size((self.size.values or [Size.SQUARE.value])[0]),
                seed=parse_seed(self.seed.value),
                quantity=1,
                variant="dev",  # the core sets the run's own variant
            )
            job = await job_for(interaction, self.job_id)
            epochs = [int(v) for v in self.epochs.values]
            quote = await service_of(interaction).quote_compare(
                job, epochs, requester_from(interaction), options, is_admin=is_admin(interaction)
            )
            await interaction.followup.send(ephemeral=True, **confirmation(quote, job))
        except Exception as exc:
            await report_error(interaction, exc)


class CompareButton(JobButton, kind="compare", label="Compare epochs", style=discord.ButtonStyle.secondary):
    async def clicked(self, interaction: discord.Interaction) -> None:
        job = await job_for(interaction, self.job_id)
        await service_of(interaction).check_try_access(job, interaction.user.id, is_admin=is_admin(interaction))
        epochs = sorted(n for n, _ in job_epoch_airs(job))
        await interaction.response.send_modal(CompareModal(job, epochs))


class OpenRunButton(JobButton, kind="tryopen", label="Let everyone try it", style=discord.ButtonStyle.secondary):
    """The owner's switch: every member may Try it / Compare on this run (pressing again undoes it)."""

    async def clicked(self, interaction: discord.Interaction) -> None:
        job = await job_for(interaction, self.job_id)
        opened = await service_of(interaction).open_run(job, interaction.user.id)
        text = (
            "🎨 Every member can now try this run (they pay as the server's payer rule says). Press again to undo."
            if opened
            else "🔒 Only you and server admins can try this run again (unless the server lets members try every run)."
        )
        await interaction.response.send_message(
            text + (f" · {SIMULATED_BADGE}" if job.simulated else ""), ephemeral=True
        )


# --- the confirmation -----------------------------------------------------------------------------


def describe_columns(options: GenerationOptions) -> str:
    parts = []
    for column in options.columns:
        strengths = ", ".join(f"{s:g}" for s in column.loras.values())
        parts.append(f"{column.label} (strength {strengths})" if strengths else f"{column.label} (no LoRA)")
    return ", ".join(parts)


def settings_fields(embed: discord.Embed, options: GenerationOptions) -> None:
    embed.add_field(name="Prompt", value=_clip(options.prompt), inline=False)
    if options.negative_prompt:
        embed.add_field(name="Negative prompt", value=_clip(options.negative_prompt), inline=False)
    embed.add_field(name="Epoch", value=_clip(describe_columns(options)))
    embed.add_field(name="Seed", value=str(options.seed))
    embed.add_field(name="Size", value=f"{options.size.label} · {options.quantity} image(s) each")


def confirmation(quote: GenerationQuote, job: Job | None) -> dict[str, Any]:
    options = quote.options
    title = f"🎨 Generate with {job.name}?" if job else "🎨 Generate?"
    if quote.simulated:
        title = f"{SIMULATED_BADGE} · {title}"
    embed = discord.Embed(
        title=_clip(title, 256),
        colour=INFO_COLOUR,
        description="Nothing is charged until you press **Confirm**. This confirmation expires in 15 minutes.",
    )
    settings_fields(embed, options)
    price = f"≈ {quote.price:,} Buzz (an estimate)" if quote.price_is_estimate else f"{quote.price:,} Buzz"
    embed.add_field(name="Price", value=price + (" · SIMULATED: nothing is charged" if quote.simulated else ""))
    embed.add_field(name="Who pays", value=_clip(quote.payer), inline=False)
    embed.set_footer(text=f"Generation {quote.generation.id}" + (" · SIMULATED" if quote.simulated else ""))
    view = discord.ui.View(timeout=None)
    view.add_item(ConfirmGenerationButton(quote.generation.id))
    view.add_item(CancelGenerationButton(quote.generation.id))
    return {"embed": embed, "view": view}


class ConfirmGenerationButton(JobButton, kind="genok", label="Confirm", style=discord.ButtonStyle.success):
    async def clicked(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        service = service_of(interaction)
        try:
            generation, now = await service.confirm(self.job_id, requester_from(interaction))
        except (NotYourGeneration, GenerationNotFound):
            raise
        except GenerationConfirmationExpired as exc:
            await close_confirmation(interaction, closed_embed(exc))
            return
        except (EpochModelExpired, OrchestratorValidationError) as exc:
            # The same request would be refused again: close it with the reason.
            await service.discard(self.job_id, requester_from(interaction))
            await close_confirmation(interaction, closed_embed(exc))
            return
        if not now:
            await tell(interaction, _not_a_draft(generation))
            return
        embed = discord.Embed(
            title="Submitted",
            colour=OK_COLOUR,
            description=f"Generating now: the images will appear in <#{generation.channel_id}>."
            + (" (SIMULATED)" if generation.simulated else ""),
        )
        await close_confirmation(interaction, embed)


def _not_a_draft(generation: Generation) -> str:
    if generation.status is GenerationStatus.DISCARDED:
        return "This confirmation was cancelled; nothing was submitted. Press Try it again."
    return f"These images were already submitted: they appear in <#{generation.channel_id}>."


class CancelGenerationButton(JobButton, kind="genno", label="Cancel", style=discord.ButtonStyle.secondary):
    async def clicked(self, interaction: discord.Interaction) -> None:
        service = service_of(interaction)
        if await service.discard(self.job_id, requester_from(interaction)):
            embed = discord.Embed(
                title="Cancelled", description="Nothing was submitted and nothing was charged.", colour=INFO_COLOUR
            )
            await close_confirmation(interaction, embed)
            return
        generation = await service.repo.get(self.job_id)
        assert generation is not None  # discard found it
        await tell(interaction, _not_a_draft(generation))


class TryAgainButton(JobButton, kind="again", label="Try again", style=discord.ButtonStyle.secondary):
    """Same settings, a new seed; priced and confirmed for whoever presses."""

    async def clicked(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            service = service_of(interaction)
            quote = await service.quote_again(self.job_id, requester_from(interaction), is_admin=is_admin(interaction))
            job = await service.store.jobs.get(quote.generation.job_id) if quote.generation.job_id else None
            await interaction.followup.send(ephemeral=True, **confirmation(quote, job))
        except Exception as exc:
            await report_error(interaction, exc)


# --- the results ----------------------------------------------------------------------------------


class DiscordGenerationSink:
    """Posts a generation's images in the channel it was asked from (the run's thread)."""

    def __init__(self, bot: TrainerBot) -> None:
        self.bot = bot

    async def post_images(self, generation: Generation, images: list[list[tuple[str, bytes]]]) -> int | None:
        options = GenerationOptions.from_dict(generation.params)
        job = await self.bot.services.store.jobs.get(generation.job_id) if generation.job_id else None
        name = job.name if job else "your LoRA"
        badge = f" · {SIMULATED_BADGE}" if generation.simulated else ""
        embed = discord.Embed(colour=OK_COLOUR, title=_clip(f"🎨 {name}: {describe_columns(options)}", 256))
        settings_fields(embed, options)
        embed.set_footer(
            text=f"Generation {generation.id}"
            + (" · SIMULATED: generated, not rendered" if generation.simulated else "")
        )
        if generation.kind is GenerationKind.COMPARE:
            labels = [column.label for column in options.columns]
            grid = comparison_grid({1: [files[0][1] if files else None for files in images]}, labels, row_label="")
            files = [discord.File(io.BytesIO(grid), filename="compare.png")]
            embed.set_image(url="attachment://compare.png")
        else:
            files = [discord.File(io.BytesIO(data), filename=name) for column in images for name, data in column][:10]
        view = discord.ui.View(timeout=None)
        view.add_item(TryAgainButton(generation.id))
        kwargs = {
            "content": f"🎨 <@{generation.user_id}> tried **{_clip(name, 100)}**{badge}",
            "embed": embed,
            "files": files,
            "view": view,
            "nonce": message_nonce(generation.id, "images"),
            "allowed_mentions": discord.AllowedMentions.none(),
        }
        message = await self._send(generation, kwargs)
        return message.id if message else None

    async def _send(self, generation: Generation, kwargs: dict[str, Any]) -> discord.Message | None:
        """In the channel asked from; to the member who asked when it is gone or closed to the bot;
        nowhere (logged) when their DMs are closed too."""
        channel = self.bot.get_partial_messageable(generation.channel_id, guild_id=generation.guild_id)
        try:
            return await channel.send(**kwargs)
        except (discord.NotFound, discord.Forbidden) as exc:
            log.info("Cannot post generation %s where it was asked (%s); sending it to its member", generation.id, exc)
        for file in kwargs.get("files", []):
            file.reset()
        try:
            dm = await self.bot.create_dm(discord.Object(generation.user_id))
            return await dm.send(**kwargs)
        except discord.Forbidden:
            log.warning("Generation %s: its channel is gone and its member's DMs are closed", generation.id)
            return None

    async def post_failure(self, generation: Generation, reason: str) -> None:
        badge = f" · {SIMULATED_BADGE}" if generation.simulated else ""
        text = f"❌ <@{generation.user_id}>, the generation did not work: {reason}"
        await self._send(
            generation,
            {
                "content": _clip(text, 1900) + badge,
                "nonce": message_nonce(generation.id, "failed"),
                "allowed_mentions": discord.AllowedMentions(users=[discord.Object(generation.user_id)]),
            },
        )


class TryItCog(commands.Cog, name=COG_NAME):
    def __init__(self, bot: TrainerBot) -> None:
        services = bot.services
        self.service = GenerationService(
            store=services.store,
            secretbox=services.secretbox,
            clock=services.clock,
            orchestrator=services.orchestrator.client,
            operator_token=services.settings.civitai_token,
            simulated=services.simulated,
            cooldowns=services.cooldowns,
            audit=services.audit,
            shards=services.settings.shard_scope,
        )
        self.sink = DiscordGenerationSink(bot)

    async def cog_unload(self) -> None:
        await self.service.stop()


DYNAMIC_ITEMS = (
    TryItButton,
    TryItSelect,
    CompareButton,
    ConfirmGenerationButton,
    CancelGenerationButton,
    TryAgainButton,
)


async def setup(bot: commands.Bot) -> None:
    if not isinstance(bot, TrainerBot):
        raise RuntimeError("cogs.try_it needs the TrainerBot (its services)")
    cog = TryItCog(bot)
    await bot.add_cog(cog)
    bot.add_dynamic_items(*DYNAMIC_ITEMS)
    await cog.service.start(cog.sink)
