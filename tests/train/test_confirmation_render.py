"""The confirmation stays within Discord's limits whatever the member typed."""

from __future__ import annotations

from datetime import UTC, datetime

import discord

from bot.civitai.pricing import estimate_price
from bot.civitai.training import MAX_PROMPT_LENGTH, MAX_SAMPLE_PROMPTS, TrainingOptions
from bot.jobs.submission import Quote, short_of_buzz_warning
from cogs.confirmation import (
    EMBEDS_LIMIT,
    fit_embeds,
    merge_warnings,
    shown_warnings,
    training_embed,
)
from storage.models import Job, JobStatus, Payer, TokenSource, Variant


def quote_for(options: TrainingOptions, *, estimate: bool = False) -> Quote:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    job = Job(
        id="abc123", guild_id=1, channel_id=2, user_id=3, name="x" * 300, variant=Variant.DEV,
        params=options.as_dict(), dataset_digest="d" * 64, image_count=40, payer=Payer.OPERATOR,
        token_source=TokenSource.OPERATOR, external_id="e", hook_secret_hash=None, workflow_id=None,
        status=JobStatus.DRAFT, price_estimate=None, price_quoted=None, price_charged=None, final_cost=None,
        last_state=None, last_state_at=None, progress=None, card_channel_id=None, card_message_id=None,
        thread_id=None, simulated=False, created_at=now, updated_at=now, submitted_at=None, finished_at=None,
    )  # fmt: skip
    breakdown = estimate_price(options.steps, options.epochs, len(options.sample_prompts))
    return Quote(job, options, breakdown.total, estimate, breakdown, "the bot operator's Civitai account",
                 ["w" * 500] * 5, simulated=False)  # fmt: skip


def test_longest_inputs_fit_in_one_message() -> None:
    options = TrainingOptions.from_user(
        sample_prompts=["p" * MAX_PROMPT_LENGTH] * MAX_SAMPLE_PROMPTS, negative_prompt="n" * 2000,
        trigger_word="t" * 100, continue_from="urn:air:flux1:lora:civitai:" + "1" * 80 + "@2",
    )  # fmt: skip
    quote = quote_for(options, estimate=True)
    report = discord.Embed(title="Dataset accepted", description="r" * 2500)
    embeds = fit_embeds([report, training_embed(quote, warnings=quote.warnings)])
    assert sum(len(e) for e in embeds) <= EMBEDS_LIMIT
    assert all(len(field.value or "") <= 1024 for e in embeds for field in e.fields)
    assert len(embeds[1].title or "") <= 256 and "an estimate" in str(embeds[1].fields[2].value)


def test_warnings_survive_a_repricing_but_a_stale_shortfall_does_not() -> None:
    quote = quote_for(TrainingOptions.from_user())
    shown = ["only 3 images", short_of_buzz_warning(1700)]
    embed = training_embed(quote, warnings=shown)
    assert shown_warnings(embed) == shown
    assert merge_warnings(shown_warnings(embed), ["lr is high"]) == ["only 3 images", "lr is high"]
    assert merge_warnings(shown, [short_of_buzz_warning(1900)]) == ["only 3 images", short_of_buzz_warning(1900)]
