"""Who may train, where, and how much: the rules an admin sets, checked before any work.

``/train`` runs these checks right after the defer with the estimated price, and Confirm runs
them again with the quoted price, because settings and spend can change in between. Each
refusal names the rule and its limit, so a member knows what to do or whom to ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.clock import Clock
from bot.errors import UserFacingError
from storage import Store
from storage.models import Claim, ClaimRefusal, GuildSettings, SubmitLimits


class TrainingRefused(UserFacingError):
    def __init__(self, message: str) -> None:
        super().__init__(message, title="You can't train right now")


@dataclass(frozen=True)
class Member:
    """What the policy needs to know about the member asking, taken from Discord by the cog."""

    user_id: int
    role_ids: frozenset[int]
    channel_id: int
    # A thread's parent channel: a channel allow-list also admits threads inside it.
    parent_channel_id: int | None = None


def relative_time(moment: datetime) -> str:
    """A Discord timestamp that every client renders in its own time zone ("in 5 hours")."""
    return f"<t:{int(moment.timestamp())}:R>"


def day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


class TrainingPolicy:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def check_member(self, guild_id: int, member: Member) -> GuildSettings:
        """Block, channel, role and concurrency rules; returns the guild's settings."""
        settings = await self.store.guilds.get(guild_id)
        if await self.store.guilds.is_blocked(guild_id, member.user_id):
            raise TrainingRefused(
                "A server admin has blocked you from training here. Ask them if you think that's a mistake."
            )
        allowed = await self.store.guilds.list_channels(guild_id)
        if allowed and not {member.channel_id, member.parent_channel_id} & set(allowed):
            channels = ", ".join(f"<#{channel}>" for channel in allowed)
            raise TrainingRefused(f"Training is only allowed in {channels} on this server. Run the command there.")
        if settings.required_role_id is not None and settings.required_role_id not in member.role_ids:
            raise TrainingRefused(
                f"You need the <@&{settings.required_role_id}> role to train on this server. Ask a server admin for it."
            )
        active = await self.store.jobs.count_active_for_user(guild_id, member.user_id)
        if active >= settings.max_concurrent_jobs_per_user:
            raise too_many_runs(active, settings)
        return settings

    @staticmethod
    def check_size(settings: GuildSettings, *, steps: int, epochs: int) -> None:
        """Per-server caps on steps and epochs (the orchestrator's own ranges are checked elsewhere)."""
        if settings.max_steps is not None and steps > settings.max_steps:
            raise TrainingRefused(
                f"This server allows at most {settings.max_steps} steps per run (you asked for {steps}). "
                f"Set `steps` to {settings.max_steps} or fewer."
            )
        if settings.max_epochs is not None and epochs > settings.max_epochs:
            raise TrainingRefused(
                f"This server allows at most {settings.max_epochs} epochs per run (you asked for {epochs}). "
                f"Set `epochs` to {settings.max_epochs} or fewer."
            )

    async def check_budget(self, settings: GuildSettings, user_id: int, price: float) -> None:
        """Daily per-member and monthly per-server Buzz caps, counted from the spend ledger.

        An early check, so a member hears about a cap before the dataset is downloaded; the one
        that counts is made again by ``limits`` inside the submit claim, atomically.
        """
        now = self.clock.now()
        guild_id = settings.guild_id
        if settings.user_daily_buzz_cap is not None:
            spent = await self.store.ledger.spent_by_user(guild_id, user_id, day_start(now))
            if spent + price > settings.user_daily_buzz_cap:
                raise over_daily_cap(price, spent, settings, now)
        if settings.guild_monthly_buzz_cap is not None:
            spent = await self.store.ledger.spent_by_guild(guild_id, month_start(now))
            if spent + price > settings.guild_monthly_buzz_cap:
                raise over_monthly_cap(price, spent, settings, now)

    def limits(self, settings: GuildSettings) -> SubmitLimits:
        """The limits the submit claim enforces in the same transaction that reserves the price."""
        now = self.clock.now()
        return SubmitLimits(
            max_active=settings.max_concurrent_jobs_per_user,
            daily_cap=settings.user_daily_buzz_cap,
            day_start=day_start(now),
            monthly_cap=settings.guild_monthly_buzz_cap,
            month_start=month_start(now),
        )

    def refusal(self, claim: Claim, settings: GuildSettings) -> TrainingRefused:
        """The member's explanation of a claim refused by a limit."""
        now = self.clock.now()
        if claim.refusal is ClaimRefusal.CONCURRENCY:
            return too_many_runs(int(claim.used), settings)
        if claim.refusal is ClaimRefusal.DAILY_CAP:
            return over_daily_cap(claim.reserved, claim.used, settings, now)
        if claim.refusal is ClaimRefusal.MONTHLY_CAP:
            return over_monthly_cap(claim.reserved, claim.used, settings, now)
        raise ValueError(f"{claim.refusal} is not a limit")


def too_many_runs(active: int, settings: GuildSettings) -> TrainingRefused:
    limit = settings.max_concurrent_jobs_per_user
    return TrainingRefused(
        f"You already have {active} run(s) going and this server allows {limit} at a time. "
        "Wait for one to finish, or cancel one with `/jobs cancel`."
    )


def over_daily_cap(price: float, spent: float, settings: GuildSettings, now: datetime) -> TrainingRefused:
    return TrainingRefused(
        f"This run costs {price:,.0f} Buzz, and this server caps each member at "
        f"{settings.user_daily_buzz_cap:,} Buzz per day. You have spent {spent:,.0f} today; "
        f"the cap resets {relative_time(day_start(now) + timedelta(days=1))}."
    )


def over_monthly_cap(price: float, spent: float, settings: GuildSettings, now: datetime) -> TrainingRefused:
    return TrainingRefused(
        f"This run costs {price:,.0f} Buzz, and this server caps training at "
        f"{settings.guild_monthly_buzz_cap:,} Buzz per month. {spent:,.0f} has been spent this month; "
        f"the cap resets {relative_time(next_month(month_start(now)))}."
    )


class Cooldowns:
    """Per-member cooldown on expensive commands.

    Kept in memory on purpose: it is spam control, not a promise to anyone, and losing it on
    restart costs nothing.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._last: dict[tuple[str, int, int], float] = {}

    def check(self, command: str, guild_id: int, user_id: int, seconds: float) -> None:
        """Raise ``TrainingRefused`` with the time left while the member's cooldown runs."""
        last = self._last.get((command, guild_id, user_id))
        now = self.clock.timestamp()
        if last is not None and now - last < seconds:
            left = seconds - (now - last)
            raise TrainingRefused(f"Slow down a little: you can use `/{command}` again in {left:.0f} s.")

    def start(self, command: str, guild_id: int, user_id: int) -> None:
        """Start the cooldown: only once a request passed the cheap checks (a refusal costs none)."""
        self._last[(command, guild_id, user_id)] = self.clock.timestamp()

    def hit(self, command: str, guild_id: int, user_id: int, seconds: float) -> None:
        """``check`` then ``start``, for commands with no checks of their own before the work."""
        self.check(command, guild_id, user_id, seconds)
        self.start(command, guild_id, user_id)
