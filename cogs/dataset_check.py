"""``/dataset check``: the same dataset report as ``/train flux1``, and nothing submitted."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from cogs.context import services_of
from cogs.intake import receive_dataset, show_dataset_report
from cogs.progress import ProgressMessage, replace_with_error

COMMAND = "dataset check"


class DatasetCog(commands.GroupCog, group_name="dataset", group_description="Check a dataset before training"):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="check", description="Check a zip of images as /train would; nothing is submitted")
    @app_commands.describe(
        dataset="Zip of your images (captions as name.txt beside name.jpg)",
        dataset_url="Or an https link to the zip",
    )
    async def check(
        self,
        interaction: discord.Interaction,
        dataset: discord.Attachment | None = None,
        dataset_url: str | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            services = services_of(interaction)
            if interaction.guild_id is not None:
                seconds = (await services.store.guilds.get(interaction.guild_id)).cooldown_seconds
            else:
                seconds = services.settings.command_cooldown_seconds
            services.cooldowns.hit(COMMAND, interaction.guild_id or 0, interaction.user.id, seconds)
            result = await receive_dataset(
                services, dataset=dataset, dataset_url=dataset_url, trigger_word=None,
                progress=ProgressMessage(interaction),
            )  # fmt: skip
            await show_dataset_report(interaction, result)
        except Exception as exc:
            await replace_with_error(interaction, exc)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(DatasetCog(bot))
