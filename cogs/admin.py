"""/admin …: a server's training rules, its Civitai account, its jobs and its spend.

Hidden from members without Manage Server (``default_permissions``), and checked again on
every use (``interaction_check``): a server can open any command to everyone in its
Integrations settings, and these must stay admin-only regardless. Every change is audited
(``services.audit``), which also posts it to the log channel when one is set.
"""

from __future__ import annotations

from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserFacingError
from bot.jobs.access import visible_job
from bot.jobs.usage import PERIOD_LABELS, Period, period_start
from bot.server_settings import describe_settings
from cogs.account import TokenModal
from cogs.common import STATUS_CHOICES, is_admin, require_admin
from cogs.context import services_of
from cogs.job_cancel import DYNAMIC_ITEMS as CANCEL_ITEMS
from cogs.job_cancel import cancel_prompt
from cogs.job_lists import DYNAMIC_ITEMS as LIST_ITEMS
from cogs.job_lists import JobQuery, render_page
from cogs.jobs import AUTOCOMPLETE_LIMIT, job_choice
from cogs.replies import INFO_COLOUR, OK_COLOUR
from cogs.try_it import TRY_IT_WORDS, set_try_it_access, try_it_access
from storage.generations import TryItAccess
from storage.models import ACTIVE_STATUSES, FORGOTTEN_MEMBER_ID, GuildSettings, Payer, ThreadMode

# /admin limits option → (guild setting, words in replies and the audit line)
LIMITS: dict[str, tuple[str, str]] = {
    "concurrent_jobs": ("max_concurrent_jobs_per_user", "runs at a time per member"),
    "user_daily_buzz": ("user_daily_buzz_cap", "Buzz per member per day"),
    "server_monthly_buzz": ("guild_monthly_buzz_cap", "Buzz for the server per month"),
    "max_steps": ("max_steps", "max steps"),
    "max_epochs": ("max_epochs", "max epochs"),
}
CAPTION_BUZZ_WORDS = "auto-captioning without asking, up to (Buzz)"
RESET_CHOICES = [app_commands.Choice(name=f"{name.replace('_', ' ')}", value=name) for name in LIMITS] + [
    app_commands.Choice(name="all limits", value="all")
]
PAYER_WORDS = {
    Payer.USER: "each member pays with their own Civitai key (`/account token`)",
    Payer.SERVER: "this server's Civitai account pays (`/admin token set`)",
    Payer.OPERATOR: "the bot operator's Civitai account pays",
}


def ok(title: str, text: str = "") -> dict[str, Any]:
    return {"embed": discord.Embed(title=title, description=text or None, colour=OK_COLOUR), "ephemeral": True}


def who(user_id: int) -> str:
    return "members who asked to be forgotten" if user_id == FORGOTTEN_MEMBER_ID else f"<@{user_id}>"


def limit_value(settings: GuildSettings, option: str) -> str:
    value = getattr(settings, LIMITS[option][0])
    return "no cap" if value is None else f"{value:,}"


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(commands.GroupCog, group_name="admin", group_description="LoRA training rules for this server"):
    channels = app_commands.Group(name="channels", description="Channels where /train may be used")
    token = app_commands.Group(name="token", description="This server's Civitai token")

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        require_admin(interaction)
        return True

    @staticmethod
    async def audit(interaction: discord.Interaction, action: str, details: dict[str, Any] | None = None,
                    *, subject_id: int | None = None) -> None:  # fmt: skip
        await services_of(interaction).audit.record(
            interaction.guild_id, interaction.user.id, action, details, subject_id=subject_id
        )

    # --- overview ---------------------------------------------------------------------------------
    @app_commands.command(name="settings", description="Every training setting of this server")
    @app_commands.describe(try_it="Who may press Try it on a run: its owner (default) or every member")
    async def settings(
        self, interaction: discord.Interaction, try_it: Literal["owner", "members"] | None = None
    ) -> None:
        assert interaction.guild_id is not None
        if try_it is not None:
            await set_try_it_access(interaction, TryItAccess(try_it))
            await self.audit(interaction, "settings.try_it", {"try_it": try_it})
            await interaction.response.send_message(**ok("Try it", TRY_IT_WORDS[TryItAccess(try_it)] + "."))
            return
        svc = services_of(interaction)
        store = svc.store
        lines = describe_settings(
            await store.guilds.get(interaction.guild_id),
            channels=await store.guilds.list_channels(interaction.guild_id),
            blocked=await store.guilds.list_blocked(interaction.guild_id),
            operator_token_set=svc.settings.civitai_token is not None,
            simulated=svc.simulated,
        )
        embed = discord.Embed(title="Training settings of this server", colour=INFO_COLOUR)
        for line in lines:
            embed.add_field(name=line.name, value=line.value + (" *(default)*" if line.default else ""), inline=False)
        access = await try_it_access(interaction)
        default = " *(default)*" if access is TryItAccess.OWNER else ""
        embed.add_field(name="Try it", value=TRY_IT_WORDS[access] + default, inline=False)
        embed.set_footer(
            text="Change them with /admin settings try_it, /admin channels, role, limits, payer, token, threads,"
            " log-channel"
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    # --- where and who -----------------------------------------------------------------------------
    @channels.command(name="add", description="Allow /train in this channel (once any is listed, only there)")
    async def channels_add(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        assert interaction.guild_id is not None
        store = services_of(interaction).store
        if not await store.guilds.add_channel(interaction.guild_id, channel.id):
            await interaction.response.send_message(**ok("Nothing changed", f"{channel.mention} was already listed."))
            return
        listed = await store.guilds.list_channels(interaction.guild_id)
        await self.audit(interaction, "settings.channels.add", {"channel": channel.id})
        where = ", ".join(f"<#{c}>" for c in listed)
        await interaction.response.send_message(**ok("Channel added", f"`/train` now works only in {where}."))

    @channels.command(name="remove", description="Stop allowing /train in this channel")
    async def channels_remove(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        assert interaction.guild_id is not None
        store = services_of(interaction).store
        if not await store.guilds.remove_channel(interaction.guild_id, channel.id):
            await interaction.response.send_message(**ok("Nothing changed", f"{channel.mention} was not listed."))
            return
        await self.audit(interaction, "settings.channels.remove", {"channel": channel.id})
        listed = await store.guilds.list_channels(interaction.guild_id)
        where = ", ".join(f"<#{c}>" for c in listed) if listed else "every channel (none is listed any more)"
        await interaction.response.send_message(**ok("Channel removed", f"`/train` now works in {where}."))

    @channels.command(name="clear", description="Allow /train in every channel again")
    async def channels_clear(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        removed = await services_of(interaction).store.guilds.clear_channels(interaction.guild_id)
        if removed:
            await self.audit(interaction, "settings.channels.clear", {"removed": removed})
        await interaction.response.send_message(**ok("Channels cleared", "`/train` now works in every channel."))

    @app_commands.command(name="role", description="Role needed to train (leave empty: anyone can)")
    @app_commands.describe(role="The role members need; leave it out to let everyone train")
    async def role(self, interaction: discord.Interaction, role: discord.Role | None = None) -> None:
        assert interaction.guild_id is not None
        role_id = None if role is None or role.is_default() else role.id
        await services_of(interaction).store.guilds.update(interaction.guild_id, required_role_id=role_id)
        await self.audit(interaction, "settings.role", {"role": role_id})
        text = f"Only members with <@&{role_id}> can train now." if role_id else "Every member can train now."
        await interaction.response.send_message(**ok("Role updated", text))

    @app_commands.command(name="block", description="Stop a member from training here")
    @app_commands.describe(member="Who to block", reason="Shown to the admins in the audit log, not to the member")
    async def block(
        self,
        interaction: discord.Interaction,
        member: discord.User,
        reason: app_commands.Range[str, 1, 200] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        if member.bot:
            await interaction.response.send_message(**ok("Nothing changed", "Bots can't train anyway."))
            return
        await services_of(interaction).store.guilds.block(interaction.guild_id, member.id, by=interaction.user.id,
                                                       reason=reason)  # fmt: skip
        await self.audit(interaction, "member.block", {"member": member.id, "reason": reason}, subject_id=member.id)
        text = (
            f"{member.mention} can no longer start runs here. Runs already going continue (`/admin cancel` stops one)."
        )
        await interaction.response.send_message(**ok("Member blocked", text))

    @app_commands.command(name="unblock", description="Let a blocked member train again")
    async def unblock(self, interaction: discord.Interaction, member: discord.User) -> None:
        assert interaction.guild_id is not None
        if not await services_of(interaction).store.guilds.unblock(interaction.guild_id, member.id):
            await interaction.response.send_message(**ok("Nothing changed", f"{member.mention} was not blocked."))
            return
        await self.audit(interaction, "member.unblock", {"member": member.id}, subject_id=member.id)
        await interaction.response.send_message(**ok("Member unblocked", f"{member.mention} can train again."))

    # --- how much ----------------------------------------------------------------------------------
    @app_commands.command(name="limits", description="Runs at a time, Buzz caps, max steps and epochs")
    @app_commands.describe(
        concurrent_jobs="Runs one member may have going at once (default 2)",
        user_daily_buzz="Buzz each member may spend per day (UTC)",
        server_monthly_buzz="Buzz the whole server may spend per calendar month",
        max_steps="Most steps a run may ask for",
        max_epochs="Most epochs a run may ask for",
        reset="Back to the default: no cap (runs at a time: 2)",
        caption_buzz="Auto-captioning priced at or under this runs without asking (default 0: always ask)",
    )
    @app_commands.choices(reset=RESET_CHOICES)
    async def limits(
        self,
        interaction: discord.Interaction,
        concurrent_jobs: app_commands.Range[int, 1, 50] | None = None,
        user_daily_buzz: app_commands.Range[int, 0, 100_000_000] | None = None,
        server_monthly_buzz: app_commands.Range[int, 0, 1_000_000_000] | None = None,
        max_steps: app_commands.Range[int, 1, 10_000] | None = None,
        max_epochs: app_commands.Range[int, 1, 20] | None = None,
        reset: str | None = None,
        caption_buzz: app_commands.Range[int, 0, 1_000_000] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        given = {
            name: value
            for name, value in {
                "concurrent_jobs": concurrent_jobs,
                "user_daily_buzz": user_daily_buzz,
                "server_monthly_buzz": server_monthly_buzz,
                "max_steps": max_steps,
                "max_epochs": max_epochs,
            }.items()
            if value is not None
        }
        resets = list(LIMITS) if reset == "all" else [reset] if reset else []
        clash = set(given) & set(resets)
        if clash:
            names = ", ".join(sorted(clash))
            raise UserFacingError(f"You both set and reset {names}. Run the command again with one or the other.")
        store = services_of(interaction).store
        before = await store.guilds.get(interaction.guild_id)
        changes = {LIMITS[name][0]: value for name, value in given.items()} | {LIMITS[n][0]: None for n in resets}
        after = await store.guilds.update(interaction.guild_id, **changes) if changes else before
        lines = [
            f"{words}: {limit_value(before, option)} → **{limit_value(after, option)}**"
            for option, (_field, words) in LIMITS.items()
            if option in given or option in resets
        ]
        free_captions = await store.captions.free_threshold(interaction.guild_id)
        if caption_buzz is not None:
            await store.captions.set_free_threshold(interaction.guild_id, caption_buzz)
            lines.append(f"{CAPTION_BUZZ_WORDS}: {free_captions:,} → **{caption_buzz:,}**")
            free_captions = caption_buzz
        if lines:
            await self.audit(
                interaction, "settings.limits", {"changes": "; ".join(line.replace("**", "") for line in lines)}
            )
        current = "\n".join(f"{words}: **{limit_value(after, option)}**" for option, (_f, words) in LIMITS.items())
        current += f"\n{CAPTION_BUZZ_WORDS}: **{free_captions:,}**"
        title = "Limits updated" if lines else "Current limits"
        text = ("\n".join(lines) + "\n\n" if lines else "") + current
        await interaction.response.send_message(**ok(title, text))

    # --- who pays ----------------------------------------------------------------------------------
    @app_commands.command(name="payer", description="Whose Civitai account pays for runs in this server")
    @app_commands.describe(who="user: each member's own key · server: this server's key · operator: the bot's")
    async def payer(self, interaction: discord.Interaction, who: Literal["user", "server", "operator"]) -> None:
        assert interaction.guild_id is not None
        svc = services_of(interaction)
        settings = await svc.store.guilds.update(interaction.guild_id, payer=who)
        await self.audit(interaction, "settings.payer", {"payer": who})
        text = PAYER_WORDS[settings.payer] + "."
        if settings.payer is Payer.SERVER and not settings.has_server_token:
            text += "\n**No server token is set yet:** runs are refused until you run `/admin token set`."
        if settings.payer is Payer.OPERATOR and svc.settings.civitai_token is None and not svc.simulated:
            text += "\n**The operator has not configured CIVITAI_TOKEN:** runs are refused until they do."
        if settings.payer is Payer.USER:
            text += "\nMembers without a linked key are told to run `/account token` when they start a run."
        if svc.simulated:
            text += "\n\nSIMULATED mode: nothing is charged to anyone for now."
        await interaction.response.send_message(**ok("Payer updated", text))

    @token.command(name="set", description="Link this server's Civitai API key (opens a private form)")
    async def token_set(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(TokenModal(server_guild_id=interaction.guild_id))

    @token.command(name="clear", description="Remove this server's Civitai API key")
    async def token_clear(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        svc = services_of(interaction)
        if not await svc.accounts.clear_server_token(interaction.guild_id, interaction.user.id):
            await interaction.response.send_message(**ok("Nothing changed", "This server had no Civitai token."))
            return
        settings = await svc.store.guilds.get(interaction.guild_id)
        text = "The key is deleted."
        if settings.payer is Payer.SERVER:
            text += (
                " Who pays is still **server**, so new runs are refused until a key is set or `/admin payer` changes."
            )
        await interaction.response.send_message(**ok("Server token removed", text))

    # --- how runs look -----------------------------------------------------------------------------
    @app_commands.command(name="threads", description="Public job threads, or private ones only the trainer sees")
    async def threads(self, interaction: discord.Interaction, mode: Literal["public", "private"]) -> None:
        assert interaction.guild_id is not None
        await services_of(interaction).store.guilds.update(interaction.guild_id, thread_mode=ThreadMode(mode))
        await self.audit(interaction, "settings.threads", {"mode": mode})
        text = (
            "New runs get a private thread: only the trainer (and members who can manage threads) see it."
            if mode == "private"
            else "New runs get a public thread under their card."
        )
        await interaction.response.send_message(**ok("Threads updated", text))

    @app_commands.command(name="log-channel", description="Channel for an audit line per submit, cancel, change")
    @app_commands.describe(channel="Where audit lines go; leave it out to stop them")
    async def log_channel(self, interaction: discord.Interaction, channel: discord.TextChannel | None = None) -> None:
        assert interaction.guild_id is not None
        channel_id = channel.id if channel else None
        store = services_of(interaction).store
        previous = (await store.guilds.get(interaction.guild_id)).log_channel_id
        await store.guilds.update(interaction.guild_id, log_channel_id=channel_id)
        # The old channel hears about the move too (cogs.audit_log posts to "previous").
        await self.audit(interaction, "settings.log_channel", {"channel": channel_id, "previous": previous})
        text = f"Audit lines now go to <#{channel_id}>." if channel_id else "No more audit lines."
        await interaction.response.send_message(**ok("Log channel updated", text))

    # --- jobs and spend ----------------------------------------------------------------------------
    @app_commands.command(name="jobs", description="Every run in this server, newest first")
    @app_commands.describe(member="Only this member's runs", status="Only runs in this state")
    @app_commands.choices(status=STATUS_CHOICES)
    async def jobs(
        self, interaction: discord.Interaction, member: discord.User | None = None, status: str | None = None
    ) -> None:
        query = JobQuery(member.id if member else None, status or "all", guild_id=interaction.guild_id)
        await interaction.response.send_message(ephemeral=True, **await render_page(interaction, query))

    @app_commands.command(name="cancel", description="Cancel any run in this server (asks first)")
    @app_commands.describe(job="Start typing its name or id")
    async def cancel(self, interaction: discord.Interaction, job: str) -> None:
        store = services_of(interaction).store
        found = await visible_job(store, job, user_id=interaction.user.id, guild_id=interaction.guild_id, is_admin=True)
        await interaction.response.send_message(ephemeral=True, **cancel_prompt(found, actor_id=interaction.user.id))

    @cancel.autocomplete("job")
    async def cancel_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        if not is_admin(interaction):  # autocomplete skips interaction_check
            return []
        jobs = await services_of(interaction).store.jobs.search(
            None, current, guild_id=interaction.guild_id, status=ACTIVE_STATUSES, limit=AUTOCOMPLETE_LIMIT
        )
        return [job_choice(job) for job in jobs]

    @app_commands.command(name="usage", description="Buzz spent per member")
    @app_commands.describe(period="day, week or month (UTC calendar), or all time; default month")
    async def usage(
        self, interaction: discord.Interaction, period: Literal["day", "week", "month", "all"] = "month"
    ) -> None:
        assert interaction.guild_id is not None
        svc = services_of(interaction)
        chosen = Period(period)
        rows = await svc.store.ledger.usage_by_user(interaction.guild_id, period_start(chosen, svc.clock.now()))
        lines = [
            f"{who(row.user_id)} · **{row.spent:,.0f}** Buzz" + (f" · {row.jobs} run(s)" if row.jobs else "")
            for row in rows[:40]
        ]
        if len(rows) > 40:
            lines.append(f"… and {len(rows) - 40} more member(s)")
        total = sum(row.spent for row in rows)
        settings = await svc.store.guilds.get(interaction.guild_id)
        caps = f"Caps: {limit_value(settings, 'user_daily_buzz')} per member per day, "
        caps += f"{limit_value(settings, 'server_monthly_buzz')} for the server per month."
        simulated = "\nSIMULATED runs count at their simulated price; nothing was charged." if svc.simulated else ""
        text = "\n".join(lines) if lines else "Nobody has spent anything in this period."
        embed = discord.Embed(
            title=f"Buzz spent {PERIOD_LABELS[chosen]}",
            description=f"{text}\n\nTotal: **{total:,.0f}** Buzz. {caps}{simulated}"[:4096],
            colour=INFO_COLOUR,
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(AdminCog(bot))
    items: tuple[Any, ...] = (*LIST_ITEMS, *CANCEL_ITEMS)
    bot.add_dynamic_items(*items)
