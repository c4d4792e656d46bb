"""A test-only extension that makes the bot do what the stage must handle (and misbehave on cue).

Loaded by stage tests into the real bot: ``await bot.load_extension("tests.stage.probe_ext")``
then ``await bot.tree.sync()``. Never part of the product.
"""

from __future__ import annotations

import asyncio

import discord
from discord import app_commands
from discord.ext import commands

EXTENSION = "tests.stage.probe_ext"
LATE_SECONDS = 0.3


class ProbeView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=60)

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.success, custom_id="probe:confirm")
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[ProbeView]) -> None:
        button.disabled = True
        await interaction.response.edit_message(content="Confirmed", view=self)

    @discord.ui.button(label="Details", style=discord.ButtonStyle.secondary, custom_id="probe:details")
    async def details(self, interaction: discord.Interaction, button: discord.ui.Button[ProbeView]) -> None:
        await interaction.response.send_modal(ProbeModal())

    @discord.ui.button(label="Refresh", style=discord.ButtonStyle.secondary, custom_id="probe:refresh")
    async def refresh(self, interaction: discord.Interaction, button: discord.ui.Button[ProbeView]) -> None:
        await interaction.response.defer()  # type 6: no visible answer yet
        await interaction.edit_original_response(content="Refreshed")  # @original is the card itself

    @discord.ui.select(
        custom_id="probe:fruit",
        max_values=2,
        options=[discord.SelectOption(label=f, value=f.lower()) for f in ("Apple", "Pear", "Plum")],
    )
    async def fruit(self, interaction: discord.Interaction, select: discord.ui.Select[ProbeView]) -> None:
        await interaction.response.send_message(f"picked {','.join(select.values)}", ephemeral=True)


class ProbeModal(discord.ui.Modal, title="Sample prompts"):
    prompts: discord.ui.TextInput[ProbeModal] = discord.ui.TextInput(
        label="Prompts", custom_id="probe:prompts", style=discord.TextStyle.paragraph
    )
    note: discord.ui.TextInput[ProbeModal] = discord.ui.TextInput(
        label="Note", custom_id="probe:note", required=False, default="none"
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"prompts={self.prompts.value} note={self.note.value}", ephemeral=True)


class ProbeCog(commands.GroupCog, group_name="probe", group_description="Stage probes (tests only)"):
    deep = app_commands.Group(name="deep", description="A subcommand group")

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="echo", description="Echo the options back")
    async def echo(
        self,
        interaction: discord.Interaction,
        text: str,
        count: app_commands.Range[int, 1, 10] = 1,
        loud: bool = False,
        file: discord.Attachment | None = None,
    ) -> None:
        size = len(await file.read()) if file else 0
        line = (text.upper() if loud else text) * count
        await interaction.response.send_message(f"{line} file={file.filename if file else None}:{size}", ephemeral=True)

    @deep.command(name="nested", description="A subcommand in a group")
    async def nested(self, interaction: discord.Interaction, value: str) -> None:
        await interaction.response.send_message(f"nested {value}", ephemeral=True)

    @app_commands.command(name="late", description="Answer after the deadline the test sets")
    async def late(self, interaction: discord.Interaction) -> None:
        await asyncio.sleep(LATE_SECONDS)
        await interaction.response.send_message("too late", ephemeral=True)

    @app_commands.command(name="huge", description="Answer with embeds over 6000 characters in total")
    async def huge(self, interaction: discord.Interaction) -> None:
        embed = discord.Embed(title="Huge", description="d" * 4000)
        for index in range(3):
            embed.add_field(name=f"field {index}", value="v" * 1000)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="defer", description="Defer, then answer with a follow-up")
    async def defer(self, interaction: discord.Interaction, public: bool = False, wait: float = 0.05) -> None:
        await interaction.response.defer(ephemeral=not public, thinking=True)
        await asyncio.sleep(wait)
        try:
            await interaction.followup.send("done after thinking", ephemeral=not public)
        except discord.HTTPException as exc:
            await self._log_failure(interaction, exc)

    @app_commands.command(name="buttons", description="A public message with buttons and a select")
    async def buttons(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("Choose", view=ProbeView())

    @app_commands.command(name="thread", description="A card with a public thread and an image in it")
    async def thread(self, interaction: discord.Interaction, private: bool = False) -> None:
        await interaction.response.defer(ephemeral=True)
        channel = interaction.channel
        assert isinstance(channel, discord.TextChannel)
        if private:
            thread = await channel.create_thread(name="probe private")
            await thread.add_user(interaction.user)
        else:
            card = await channel.send(embed=discord.Embed(title="Card"))
            thread = await card.create_thread(name="probe thread")
        posted = await thread.send("epoch 1", file=_file("sample.png"))
        await posted.edit(content="epoch 1 (edited)", attachments=[*posted.attachments, _file("grid.png")])
        await interaction.followup.send(f"thread {thread.id}", ephemeral=True)

    @app_commands.command(name="post", description="Post in a channel or thread by id")
    async def post(self, interaction: discord.Interaction, channel_id: str) -> None:
        target = self.bot.get_partial_messageable(int(channel_id))
        try:
            await target.send("posted")
            result = "ok"
        except discord.HTTPException as exc:
            result = f"error {exc.status} {exc.code}"
        await interaction.response.send_message(result, ephemeral=True)

    @app_commands.command(name="dm", description="DM the caller")
    async def dm(self, interaction: discord.Interaction) -> None:
        try:
            await interaction.user.send("hello in your DMs")
            result = "sent"
        except discord.Forbidden as exc:
            result = f"forbidden {exc.code}"
        await interaction.response.send_message(result, ephemeral=True)

    @app_commands.command(name="pick", description="Autocomplete a fruit")
    async def pick(self, interaction: discord.Interaction, fruit: str) -> None:
        await interaction.response.send_message(f"you picked {fruit}", ephemeral=True)

    @pick.autocomplete("fruit")
    async def pick_fruit(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        fruits = ["apple", "apricot", "banana", "blueberry"]
        return [app_commands.Choice(name=f.title(), value=f) for f in fruits if f.startswith(current)]

    async def _log_failure(self, interaction: discord.Interaction, exc: discord.HTTPException) -> None:
        channel = interaction.channel
        if isinstance(channel, discord.abc.Messageable):
            await channel.send(f"follow-up failed: {exc.status} {exc.code}")


def _png_bytes() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _file(name: str) -> discord.File:
    import io

    return discord.File(io.BytesIO(_png_bytes()), filename=name)


@app_commands.command(name="probe-admin", description="Only for Manage Server (tests only)")
@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
@app_commands.checks.has_permissions(manage_guild=True)
async def probe_admin(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("admin ok", ephemeral=True)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(ProbeCog(bot))
    bot.tree.add_command(probe_admin)
