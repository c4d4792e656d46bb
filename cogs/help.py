"""/help: what the bot does, the rules in force in this server and who pays."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.jobs.limits import describe_limits
from bot.jobs.payer import describe_payer
from cogs.context import services_of
from cogs.replies import INFO_COLOUR

SIMULATED_NOTE = (
    "🧪 **SIMULATED mode**: this bot is not connected to a Civitai account, so runs go to a built-in "
    "simulator. Nothing is charged, and the LoRAs and sample images are generated stand-ins."
)


class HelpCog(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @app_commands.command(name="help", description="What this bot does and the limits in this server")
    async def help(self, interaction: discord.Interaction) -> None:
        services = services_of(interaction)
        embed = discord.Embed(
            title="LoRA Trainer",
            colour=INFO_COLOUR,
            description=(
                "Train a **Flux.1 LoRA** on your own images with Civitai, without leaving Discord.\n\n"
                "1. `/train flux1` with a zip of your images (captions as `name.txt` beside `name.jpg`).\n"
                "2. Read the dataset report and the exact Buzz price, then press **Confirm**.\n"
                "3. Follow the run in its thread: sample images for every epoch, download buttons, "
                "and a final comparison grid.\n\n"
                "`/dataset check` checks a zip without training; `/cost` prices a run; "
                "`/jobs list` shows your runs."
                + (f"\n\n{SIMULATED_NOTE}" if services.simulated else "")
            ),
        )
        if interaction.guild_id is not None:
            settings = await services.store.guilds.get(interaction.guild_id)
            channels = await services.store.guilds.list_channels(interaction.guild_id)
            embed.add_field(name="Limits in this server", value="\n".join(describe_limits(settings, channels)))
            payer = describe_payer(
                settings.payer, simulated=services.simulated, server_token_set=settings.has_server_token
            )
            embed.add_field(name="Who pays", value=payer[:1024], inline=False)
        else:
            embed.add_field(name="Where", value="Training happens in a server: run `/help` there to see its limits.")
        if services.simulated:
            embed.set_footer(text="SIMULATED mode: no Buzz is spent")
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(HelpCog(bot))
