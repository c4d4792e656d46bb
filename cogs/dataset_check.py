"""``/dataset check``: the same dataset report as ``/train flux1``, and nothing submitted."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.captioning.options import CaptionOptions
from cogs.captions import (
    AUTO_CAPTION_CHOICES,
    AUTO_CAPTION_HELP,
    CAPTION_STYLE_CHOICES,
    CAPTION_STYLE_HELP,
    offer_captions,
)
from cogs.captions_edit import upload_captions
from cogs.context import requester_from, services_of
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
        auto_caption=AUTO_CAPTION_HELP,
        caption_style=CAPTION_STYLE_HELP,
    )
    @app_commands.choices(auto_caption=AUTO_CAPTION_CHOICES, caption_style=CAPTION_STYLE_CHOICES)
    async def check(
        self,
        interaction: discord.Interaction,
        dataset: discord.Attachment | None = None,
        dataset_url: str | None = None,
        auto_caption: str | None = None,
        caption_style: str | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            services = services_of(interaction)
            if interaction.guild_id is not None:
                seconds = (await services.store.guilds.get(interaction.guild_id)).cooldown_seconds
            else:
                seconds = services.settings.command_cooldown_seconds
            services.cooldowns.hit(COMMAND, interaction.guild_id or 0, interaction.user.id, seconds)
            captions = CaptionOptions.from_user(auto_caption, caption_style)
            progress = ProgressMessage(interaction)
            result = await receive_dataset(
                services, dataset=dataset, dataset_url=dataset_url, trigger_word=None, progress=progress,
            )  # fmt: skip
            if result.accepted and captions.enabled:
                context = {"command": "check", "source": result.source}
                if await offer_captions(interaction, progress, requester_from(interaction), result, captions, context):
                    return
            await show_dataset_report(interaction, result)
        except Exception as exc:
            await replace_with_error(interaction, exc)

    @app_commands.command(name="captions", description="Apply an edited captions.txt to your run waiting for Confirm")
    @app_commands.describe(file="captions.txt (file name, TAB, caption on each line) or a zip of .txt files")
    async def captions(self, interaction: discord.Interaction, file: discord.Attachment) -> None:
        try:
            await upload_captions(interaction, file)
        except Exception as exc:
            await replace_with_error(interaction, exc)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(DatasetCog(bot))
