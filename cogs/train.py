"""``/train flux1``: from a zip to a priced confirmation (DESIGN §3).

Defer first, then the cheap refusals (cooldown, who may train where, options, budget) before
anything is downloaded, then the dataset, the price and the confirmation. Every refusal
replaces the progress lines with its reason; a refused dataset shows its full report.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.civitai import models as m
from bot.civitai.training import TrainingOptions
from bot.jobs.continuation import finished_loras
from cogs.confirmation import fit_embeds, training_embed
from cogs.confirmation_buttons import confirmation_view
from cogs.context import requester_from, services_of
from cogs.intake import contact_sheet_file, dataset_embed, receive_dataset, show_dataset_report
from cogs.progress import ProgressMessage, replace_with_error

COMMAND = "train flux1"


def _choices(values: tuple[str, ...]) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=value, value=value) for value in values]


@app_commands.guild_only()
class TrainCog(commands.GroupCog, group_name="train", group_description="Train a LoRA on your images"):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="flux1", description="Train a Flux.1 LoRA on a zip of your images")
    @app_commands.describe(
        dataset="Zip of your images (captions as name.txt beside name.jpg)",
        dataset_url="Or an https link to the zip",
        variant="Flux.1 model to train on (default dev)",
        name="Name of the LoRA (default: the trigger word)",
        trigger_word="Word that calls up your subject in prompts",
        steps="Training steps (default 2000)",
        epochs="Checkpoints saved, each with sample images (default 10)",
        lr="Learning rate (default 0.0001)",
        network_dim="LoRA rank (default 16)",
        network_alpha="LoRA alpha (default: same as network_dim)",
        lr_scheduler="Learning rate schedule (default cosine)",
        optimizer="Optimizer (default adamw8bit)",
        noise_offset="Noise offset, 0 to 1 (default 0)",
        flip_augmentation="Also train on mirrored images",
        shuffle_tokens="Shuffle caption tags",
        keep_tokens="Tags kept in place when shuffling (0 to 10)",
        train_text_encoder="Also train the text encoder",
        sample_prompts="Prompts rendered at every epoch, separated by |",
        negative_prompt="Negative prompt for the sample images",
        sample_cfg="CFG scale of the sample images",
        sample_strength="LoRA strength in the sample images",
        continue_from="Train further from one of your LoRAs (or paste a flux1 LoRA AIR)",
    )
    @app_commands.choices(
        variant=_choices(m.VARIANTS), lr_scheduler=_choices(m.LR_SCHEDULERS), optimizer=_choices(m.OPTIMIZERS)
    )
    async def flux1(
        self,
        interaction: discord.Interaction,
        dataset: discord.Attachment | None = None,
        dataset_url: str | None = None,
        variant: str | None = None,
        name: app_commands.Range[str, 1, 100] | None = None,
        trigger_word: app_commands.Range[str, 1, 100] | None = None,
        steps: app_commands.Range[int, m.STEPS_MIN, m.STEPS_MAX] | None = None,
        epochs: app_commands.Range[int, m.EPOCHS_MIN, m.EPOCHS_MAX] | None = None,
        lr: app_commands.Range[float, m.LR_MIN, m.LR_MAX] | None = None,
        network_dim: app_commands.Range[int, m.NETWORK_MIN, m.NETWORK_MAX] | None = None,
        network_alpha: app_commands.Range[int, m.NETWORK_MIN, m.NETWORK_MAX] | None = None,
        lr_scheduler: str | None = None,
        optimizer: str | None = None,
        noise_offset: app_commands.Range[float, m.NOISE_OFFSET_MIN, m.NOISE_OFFSET_MAX] | None = None,
        flip_augmentation: bool | None = None,
        shuffle_tokens: bool | None = None,
        keep_tokens: app_commands.Range[int, m.KEEP_TOKENS_MIN, m.KEEP_TOKENS_MAX] | None = None,
        train_text_encoder: bool | None = None,
        sample_prompts: str | None = None,
        negative_prompt: str | None = None,
        sample_cfg: float | None = None,
        sample_strength: float | None = None,
        continue_from: str | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        progress = ProgressMessage(interaction)
        try:
            services = services_of(interaction)
            requester = requester_from(interaction)
            user_id = requester.member.user_id
            guild = await services.store.guilds.get(requester.guild_id)
            services.cooldowns.check(COMMAND, requester.guild_id, user_id, guild.cooldown_seconds)
            guild = await services.training.check_requester(requester)
            options = TrainingOptions.from_user(
                variant=variant,
                steps=steps,
                epochs=epochs,
                lr=lr,
                network_dim=network_dim,
                network_alpha=network_alpha,
                lr_scheduler=lr_scheduler,
                optimizer=optimizer,
                noise_offset=noise_offset,
                flip_augmentation=flip_augmentation,
                shuffle_tokens=shuffle_tokens,
                keep_tokens=keep_tokens,
                train_text_encoder=train_text_encoder,
                trigger_word=trigger_word,
                continue_from=continue_from,
                sample_prompts=sample_prompts,
                negative_prompt=negative_prompt,
                sample_cfg=sample_cfg,
                sample_strength=sample_strength,
                max_steps=guild.max_steps,
                max_epochs=guild.max_epochs,
            )
            await services.training.precheck(requester, options)
            # Only a request that passed the cheap checks costs a cooldown: a member refused for
            # the channel, a limit or a block corrects it and tries again at once.
            services.cooldowns.start(COMMAND, requester.guild_id, user_id)
            result = await receive_dataset(
                services,
                dataset=dataset,
                dataset_url=dataset_url,
                trigger_word=options.trigger_word,
                progress=progress,
            )
            if not result.accepted:
                await show_dataset_report(interaction, result)
                return
            await progress.show("💰 Pricing…")
            quote = await services.training.quote(requester, options, result, name=name)
            sheet = contact_sheet_file(result, interaction.filesize_limit)
            embeds = [
                dataset_embed(result, image=sheet.filename if sheet else None),
                # The dataset's own warnings are in its report just above.
                training_embed(quote, warnings=[w for w in quote.warnings if w not in result.warnings]),
            ]
            await interaction.edit_original_response(
                content=None,
                embeds=fit_embeds(embeds),
                attachments=[sheet] if sheet else [],
                view=confirmation_view(quote.job),
            )
        except Exception as exc:
            await replace_with_error(interaction, exc)

    @flux1.autocomplete("continue_from")
    async def continue_from_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        store = services_of(interaction).store
        choices = await finished_loras(store, interaction.user.id, current)
        return [app_commands.Choice(name=choice.label, value=choice.air) for choice in choices]


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(TrainCog(bot))
