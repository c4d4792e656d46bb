"""The ephemeral confirmation of ``/train flux1`` (DESIGN §3.6) and what its buttons say.

The message holds two embeds: the dataset report (with the contact sheet) and the run itself
(parameters, sample prompts, price with its breakdown, who pays, warnings). Its buttons live in
``cogs.confirmation_buttons``; this module only renders.
"""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.civitai.training import TrainingOptions
from bot.errors import UserFacingError
from bot.jobs.policy import relative_time
from bot.jobs.submission import CONFIRMATION_TTL, SHORT_OF_BUZZ_PREFIX, Quote
from cogs.job_card import SIMULATED_BADGE
from cogs.replies import INFO_COLOUR, error_embed

FIELD_LIMIT = 1024
EMBEDS_LIMIT = 6000  # characters in all embeds of one message together
WARNINGS_FIELD = "Warnings"
BULLET = "• "


def _bullets(lines: Sequence[str], limit: int = FIELD_LIMIT) -> str:
    text = "\n".join(BULLET + line for line in lines)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def parameters_text(options: TrainingOptions, image_count: int) -> str:
    o = options
    lines = [
        f"Flux.1 **{o.variant}** · **{o.steps}** steps · **{o.epochs}** epochs · {image_count} images",
        f"lr {o.lr:g} ({o.lr_scheduler}) · optimizer {o.optimizer}",
        f"network dim {o.network_dim} · alpha {o.network_alpha} · noise offset {o.noise_offset:g}",
        f"flip augmentation {_on_off(o.flip_augmentation)} · shuffle tokens {_on_off(o.shuffle_tokens)}"
        f" (keep {o.keep_tokens}) · train text encoder {_on_off(o.train_text_encoder)}",
        f"trigger word: `{o.trigger_word}`" if o.trigger_word else "trigger word: none",
    ]
    if o.continue_from:
        lines.append(f"continues from `{o.continue_from}`")
    text = "\n".join(lines)
    return text if len(text) <= FIELD_LIMIT else text[: FIELD_LIMIT - 1] + "…"


def prompts_text(options: TrainingOptions) -> str:
    extras = []
    if options.negative_prompt:
        extras.append(f"negative: {options.negative_prompt}")
    if options.sample_cfg is not None:
        extras.append(f"cfg {options.sample_cfg:g}")
    if options.sample_strength is not None:
        extras.append(f"strength {options.sample_strength:g}")
    tail = ("\n" + " · ".join(extras))[:300] if extras else ""
    room = FIELD_LIMIT - len(tail)
    lines = [f"{n}. {prompt}" for n, prompt in enumerate(options.sample_prompts, 1)] or ["(none)"]
    text = "\n".join(lines)
    if len(text) > room:
        text = text[: room - 1] + "…"
    return text + tail


def price_text(quote: Quote) -> str:
    if quote.price_is_estimate:
        head = (
            f"**≈ {quote.price:,} Buzz**, an estimate: Civitai's pricing could not be reached, "
            "so the charge may differ a little"
        )
    else:
        head = f"**{quote.price:,} Buzz**, as Civitai priced it"
    breakdown = "\n".join(f"{BULLET}{line}" for line in quote.breakdown.lines())
    note = "\nSIMULATED: nothing is charged." if quote.simulated else ""
    return f"{head}\nFormula: {quote.breakdown.total:,} Buzz\n{breakdown}{note}"[:FIELD_LIMIT]


def training_embed(quote: Quote, *, warnings: Sequence[str]) -> discord.Embed:
    job = quote.job
    title = f"Train {job.name}? · Flux.1 {job.variant.value} LoRA"
    if quote.simulated:
        title = f"{SIMULATED_BADGE} · {title}"
    expires = relative_time(job.created_at + CONFIRMATION_TTL)
    embed = discord.Embed(
        title=title[:256],
        colour=INFO_COLOUR,
        description=(
            f"Nothing is charged until you press **Confirm**. This confirmation expires {expires}.\n"
            "**Edit sample prompts** changes the prompts rendered at every epoch; **Cancel** drops it."
        ),
    )
    embed.add_field(name="Parameters", value=parameters_text(quote.options, job.image_count), inline=False)
    embed.add_field(name="Sample prompts", value=prompts_text(quote.options), inline=False)
    embed.add_field(name="Price", value=price_text(quote), inline=False)
    embed.add_field(name="Who pays", value=quote.payer[:FIELD_LIMIT], inline=False)
    if warnings:
        embed.add_field(name=WARNINGS_FIELD, value=_bullets(warnings), inline=False)
    footer = f"Job {job.id}"
    if quote.simulated:
        footer += " · SIMULATED: no Buzz is spent, results are generated"
    embed.set_footer(text=footer)
    return embed


def shown_warnings(embed: discord.Embed) -> list[str]:
    """The warnings an earlier rendering showed (the dataset's among them, which only the
    first quote knows), so a re-priced confirmation keeps them."""
    for field in embed.fields:
        if field.name == WARNINGS_FIELD and field.value:
            return [line.removeprefix(BULLET) for line in field.value.splitlines() if line.startswith(BULLET)]
    return []


def merge_warnings(shown: Sequence[str], fresh: Sequence[str]) -> list[str]:
    """Earlier warnings (less a stale Buzz shortfall) plus any new one."""
    kept = [w for w in shown if not w.startswith(SHORT_OF_BUZZ_PREFIX)]
    return kept + [w for w in fresh if w not in kept]


def fit_embeds(embeds: list[discord.Embed]) -> list[discord.Embed]:
    """Shorten the first embed's description (the dataset report) until all fit in one message."""
    excess = sum(len(e) for e in embeds) - EMBEDS_LIMIT
    first = embeds[0]
    if excess > 0 and first.description:
        keep = max(0, len(first.description) - excess - 1)
        first.description = first.description[:keep] + "…"
    return embeds


def closed_embed(reason: UserFacingError) -> discord.Embed:
    return error_embed(reason.title, reason.user_message)


def cancelled_embed() -> discord.Embed:
    return discord.Embed(
        title="Cancelled",
        description="Nothing was submitted and nothing was charged. Run `/train flux1` whenever you like.",
        colour=discord.Colour.dark_grey(),
    )
