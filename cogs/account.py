"""/account token | forget and /settings notify: what a member controls about themselves.

Tokens come in only through a modal, are checked with Civitai before they are stored, and are
never shown back. Forgetting deletes the token at once and, after a confirm, everything else.
"""

from __future__ import annotations

import logging
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.accounts import MAX_TOKEN_LENGTH, ForgetReport
from bot.jobs.cancel import REFUND_NOTE
from cogs.buttons import MemberButton
from cogs.common import NotAllowed, is_admin
from cogs.context import services_of
from cogs.errors import report_error
from cogs.replies import INFO_COLOUR, OK_COLOUR
from storage.models import Payer

log = logging.getLogger(__name__)

TOKEN_LABEL = "Civitai API key"
TOKEN_HELP = "civitai.com → Account settings → API Keys → Add API key"


class TokenModal(discord.ui.Modal):
    """One text input; the member's token, or (``guild_id`` set) the server's."""

    token: discord.ui.TextInput[TokenModal] = discord.ui.TextInput(
        label=TOKEN_LABEL,
        custom_id="ltb:token:value",
        placeholder=TOKEN_HELP,
        min_length=8,
        max_length=MAX_TOKEN_LENGTH,
    )

    def __init__(self, *, server_guild_id: int | None = None) -> None:
        title = "Civitai token for this server" if server_guild_id else "Link your Civitai account"
        # discord.py picks a random custom id per modal: two members' forms can never be mixed up.
        super().__init__(title=title, timeout=15 * 60)
        self.server_guild_id = server_guild_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)  # Civitai checks the token first
        accounts = services_of(interaction).accounts
        if self.server_guild_id is not None:
            if not is_admin(interaction) or interaction.guild_id != self.server_guild_id:
                raise NotAllowed("Only members with **Manage Server** can set the server's Civitai token.")
            await accounts.link_server_token(self.server_guild_id, interaction.user.id, self.token.value)
            text = await server_token_linked_text(interaction)
        else:
            await accounts.link_user_token(interaction.user.id, self.token.value)
            text = await user_token_linked_text(interaction)
        await interaction.followup.send(
            embed=discord.Embed(title="Token linked", description=text, colour=OK_COLOUR), ephemeral=True
        )

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:  # type: ignore[override]
        await report_error(interaction, error)


def simulated_note(interaction: discord.Interaction) -> str:
    if not services_of(interaction).simulated:
        return ""
    return (
        "\n\nThe bot runs in **SIMULATED** mode: the token was checked against the built-in simulator and "
        "nothing is charged until the operator switches to real Civitai."
    )


async def user_token_linked_text(interaction: discord.Interaction) -> str:
    text = "Civitai accepted your API key. It is stored encrypted and is never shown again."
    if interaction.guild_id is not None:
        payer = (await services_of(interaction).store.guilds.get(interaction.guild_id)).payer
        text += {
            Payer.USER: " On this server each member pays with their own account, so your runs here use it.",
            Payer.SERVER: " On this server the server's account pays, so your key is used only where members pay.",
            Payer.OPERATOR: " On this server the bot operator pays, so your key is used only where members pay.",
        }[payer]
    return text + " Remove it any time with `/account forget`." + simulated_note(interaction)


async def server_token_linked_text(interaction: discord.Interaction) -> str:
    assert interaction.guild_id is not None
    payer = (await services_of(interaction).store.guilds.get(interaction.guild_id)).payer
    text = "Civitai accepted the key. It is stored encrypted and is never shown again."
    if payer is not Payer.SERVER:
        text += f" Who pays is still **{payer.value}**: run `/admin payer who:server` to make this account pay."
    return text + simulated_note(interaction)


class ForgetButton(MemberButton, kind="forget", label="Delete all my data", style=discord.ButtonStyle.danger):
    async def clicked(self, interaction: discord.Interaction) -> None:
        if interaction.user.id != self.user_id:
            raise NotAllowed("Only the member who asked can confirm deleting their own data.")
        await interaction.response.defer()
        report = await services_of(interaction).accounts.forget_user(self.user_id)
        await remove_posts(interaction.client, report)
        await interaction.edit_original_response(embed=forget_embed(report), view=None)


async def remove_posts(client: discord.Client, report: ForgetReport) -> None:
    """Delete the cards and threads the bot posted about the member's runs (best effort)."""
    for job in report.cards:
        try:
            if job.thread_id and job.thread_id != job.card_channel_id:
                await client.http.delete_channel(job.thread_id, reason="The member asked for their data to be deleted")
            if job.card_channel_id and job.card_message_id:
                await client.http.delete_message(job.card_channel_id, job.card_message_id)
        except discord.HTTPException as exc:
            log.warning("Could not remove the posts of a forgotten member's job: %s %s", exc.status, exc.code)


def forget_embed(report: ForgetReport) -> discord.Embed:
    lines = [
        "Everything the bot stored about you is deleted: runs, settings, datasets and audit lines. The Buzz you "
        "spent still counts toward each server's budget, under no name."
    ]
    if report.cards:
        lines.append(f"The cards and threads of {len(report.cards)} run(s) were removed.")
    if report.cancelled:
        lines.append(f"{len(report.cancelled)} running job(s) were cancelled first. {REFUND_NOTE}")
    if report.left_running:
        ids = ", ".join(f"`{job.id}`" for job in report.left_running)
        lines.append(f"Still running at Civitai (no token left here to stop them): {ids}. Cancel them on civitai.com.")
    return discord.Embed(title="Your data is deleted", description="\n\n".join(lines), colour=OK_COLOUR)


class KeepDataButton(MemberButton, kind="forgetno", label="Keep my run history", style=discord.ButtonStyle.secondary):
    async def clicked(self, interaction: discord.Interaction) -> None:
        embed = discord.Embed(
            title="Token deleted, history kept", description="Your runs and settings stay.", colour=OK_COLOUR
        )
        await interaction.response.edit_message(embed=embed, view=None)


class AccountCog(commands.GroupCog, group_name="account", group_description="Your Civitai account and your data"):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="token", description="Link your own Civitai API key (opens a private form)")
    async def token(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(TokenModal())

    @app_commands.command(name="forget", description="Delete your Civitai key now, and all your data after a confirm")
    async def forget(self, interaction: discord.Interaction) -> None:
        accounts = services_of(interaction).accounts
        stranded = await accounts.running_on_own_token(interaction.user.id)
        had_token = await accounts.forget_token(interaction.user.id)
        lines = ["Your Civitai key is deleted." if had_token else "You had no Civitai key linked."]
        if stranded:
            ids = ", ".join(f"`{job.id}`" for job in stranded)
            lines.append(
                f"Your runs {ids} were paid with that key: they keep running at Civitai and will show up on your "
                "Civitai account, but I can no longer follow or stop them. Cancel them on civitai.com if you want."
            )
        lines.append(
            "**Delete everything else too?** That cancels your other running jobs (refunds are Civitai's "
            "decision), removes the cards and threads of your runs, and deletes your run history, settings and "
            "datasets on every server (what you spent stays in each server's budget, without your name). "
            "It can't be undone."
        )
        view = discord.ui.View(timeout=None)
        view.add_item(ForgetButton(interaction.user.id))
        view.add_item(KeepDataButton(interaction.user.id))
        embed = discord.Embed(title="Forget me", description="\n\n".join(lines), colour=INFO_COLOUR)
        await interaction.response.send_message(embed=embed, view=view, ephemeral=True)


class SettingsCog(commands.GroupCog, group_name="settings", group_description="Your own preferences"):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="notify", description="Get a DM when your runs finish or fail")
    @app_commands.describe(dm="on (default) or off")
    async def notify(self, interaction: discord.Interaction, dm: Literal["on", "off"]) -> None:
        settings = await services_of(interaction).store.users.set_dm_notify(interaction.user.id, dm == "on")
        text = (
            "I'll DM you when a run of yours finishes or fails."
            if settings.dm_notify
            else "No more DMs: follow your runs in their threads (or `/jobs list`)."
        )
        await interaction.response.send_message(
            embed=discord.Embed(title=f"DM notifications {dm}", description=text, colour=OK_COLOUR), ephemeral=True
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(AccountCog(bot))
    await bot.add_cog(SettingsCog(bot))
    bot.add_dynamic_items(ForgetButton, KeepDataButton)
