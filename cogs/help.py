"""/help: what the bot does and the rules in force here."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from cogs.replies import INFO_COLOUR


class HelpCog(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @app_commands.command(name="help", description="What this bot does and the limits in this server")
    async def help(self, interaction: discord.Interaction) -> None:
        embed = discord.Embed(
            title="LoRA Trainer",
            colour=INFO_COLOUR,
            description=(
                "Train a **Flux.1 LoRA** on your own images with Civitai, without leaving Discord.\n\n"
                "1. `/train flux1` with a zip of your images (captions as `name.txt` beside `name.jpg`).\n"
                "2. Read the dataset report and the exact Buzz price, then press **Confirm**.\n"
                "3. Follow the run in its thread: sample images for every epoch, download buttons, "
                "and a final comparison grid.\n\n"
                "`/dataset check` checks a zip without training; `/cost` prices a run."
            ),
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(HelpCog(bot))
