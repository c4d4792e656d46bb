"""``/cost``: what a run costs, from the formula, before there is any dataset."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.civitai import models as m
from bot.civitai.pricing import BUZZ_PER_SAMPLE_IMAGE, estimate_price
from bot.jobs.dataset_files import DEFAULT_PROMPTS_FROM_CAPTIONS
from cogs.context import services_of
from cogs.replies import INFO_COLOUR


class CostCog(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @app_commands.command(name="cost", description="Price of a Flux.1 LoRA run, without a dataset")
    @app_commands.describe(
        variant="Flux.1 model (default dev)", steps="Training steps (default 2000)", epochs="Epochs (default 10)"
    )
    @app_commands.choices(variant=[app_commands.Choice(name=v, value=v) for v in m.VARIANTS])
    async def cost(
        self,
        interaction: discord.Interaction,
        variant: str = "dev",
        steps: app_commands.Range[int, m.STEPS_MIN, m.STEPS_MAX] = m.STEPS_DEFAULT,
        epochs: app_commands.Range[int, m.EPOCHS_MIN, m.EPOCHS_MAX] = m.EPOCHS_DEFAULT,
    ) -> None:
        breakdown = estimate_price(steps, epochs)
        samples = estimate_price(steps, epochs, DEFAULT_PROMPTS_FROM_CAPTIONS)
        lines = [f"• {line}" for line in breakdown.lines()]
        embed = discord.Embed(
            title=f"≈ {breakdown.total:,} Buzz · Flux.1 {variant}, {steps} steps, {epochs} epochs",
            colour=INFO_COLOUR,
            description=(
                "**Estimate** from Civitai's published formula; `/train flux1` shows the exact price "
                "(Civitai prices the real run) before anything is charged.\n\n"
                + "\n".join(lines)
                + f"\n\n**Sample images are billed on top**: each sample prompt is rendered at every epoch "
                f"(≈ {BUZZ_PER_SAMPLE_IMAGE} Buzz per image). With the default {DEFAULT_PROMPTS_FROM_CAPTIONS} "
                f"prompts that is {samples.sample_images} images, ≈ {samples.samples_buzz:,} Buzz, "
                f"so ≈ {samples.total:,} Buzz in all."
            ),
        )
        notes = await self._server_caps(interaction, steps, epochs)
        if notes:
            embed.add_field(name="On this server", value="\n".join(notes), inline=False)
        if services_of(interaction).simulated:
            embed.set_footer(text="SIMULATED mode: runs here spend no Buzz.")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @staticmethod
    async def _server_caps(interaction: discord.Interaction, steps: int, epochs: int) -> list[str]:
        if interaction.guild_id is None:
            return []
        settings = await services_of(interaction).store.guilds.get(interaction.guild_id)
        notes = []
        if settings.max_steps is not None and steps > settings.max_steps:
            notes.append(f"at most {settings.max_steps} steps per run are allowed here")
        if settings.max_epochs is not None and epochs > settings.max_epochs:
            notes.append(f"at most {settings.max_epochs} epochs per run are allowed here")
        return notes


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(CostCog(bot))
