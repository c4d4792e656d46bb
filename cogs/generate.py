"""/generate: priced, confirmed image generation with up to three of a member's LoRAs.

For runs whose thread is gone, or to use two LoRAs together. ``lora`` autocompletes over the
caller's finished epochs like ``/train continue_from`` (a pasted flux1 LoRA AIR also works);
the confirmation and the results are Try it's (``cogs.try_it``), posted in this channel.
"""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.generation.choosing import picked_first
from bot.generation.options import MAX_PROMPT, GenerationOptions, Size, parse_prompt, parse_seed, parse_strength
from bot.jobs.continuation import finished_loras
from cogs.context import requester_from, services_of
from cogs.errors import report_error
from cogs.try_it import confirmation, service_of


class GenerateCog(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @app_commands.command(name="generate", description="Generate images with your trained LoRAs (priced, confirmed)")
    @app_commands.guild_only()
    @app_commands.describe(
        lora="One of your trained epochs, or a pasted flux1 LoRA AIR",
        prompt="What to draw (put your trigger word in it)",
        lora2="A second LoRA used together with the first",
        lora3="A third LoRA",
        negative_prompt="What to keep out of the picture",
        size="square 1024×1024 (default), portrait 832×1216 or landscape 1216×832",
        seed="0 to 4294967295; leave empty for a random one",
        strength="How strongly the LoRAs apply (default 1.0)",
        quantity="Images to make, 1 to 4 (default 1)",
    )
    async def generate(
        self,
        interaction: discord.Interaction,
        lora: str,
        prompt: app_commands.Range[str, 1, MAX_PROMPT],
        lora2: str | None = None,
        lora3: str | None = None,
        negative_prompt: app_commands.Range[str, 1, MAX_PROMPT] | None = None,
        size: Literal["square", "portrait", "landscape"] = "square",
        seed: app_commands.Range[int, 0, 4_294_967_295] | None = None,
        strength: app_commands.Range[float, -2.0, 2.0] = 1.0,
        quantity: app_commands.Range[int, 1, 4] = 1,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            options = GenerationOptions(
                prompt=parse_prompt(prompt) or "",
                negative_prompt=parse_prompt(negative_prompt or "", name="negative prompt", required=False),
                size=Size(size),
                seed=parse_seed(seed),
                quantity=quantity,
                variant="dev",
            )
            loras = [air for air in (lora, lora2, lora3) if air]
            quote = await service_of(interaction).quote_generate(
                requester_from(interaction), options, loras, parse_strength(strength)
            )
            await interaction.followup.send(ephemeral=True, **confirmation(quote, None))
        except Exception as exc:
            await report_error(interaction, exc)

    @generate.autocomplete("lora")
    @generate.autocomplete("lora2")
    @generate.autocomplete("lora3")
    async def lora_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await lora_choices(interaction, current)


async def lora_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """The caller's trained epochs (picked ones first, starred), for /generate and /train continue_from."""
    store = services_of(interaction).store
    choices = await finished_loras(store, interaction.user.id, current)
    choices = await picked_first(service_of(interaction).repo, store, interaction.user.id, choices)
    return [app_commands.Choice(name=choice.label, value=choice.air) for choice in choices]


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(GenerateCog(bot))
