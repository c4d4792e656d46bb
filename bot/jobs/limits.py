"""The rules in force in one server, in words: what /help shows every member.

The same settings the policy enforces (``bot.jobs.policy``), so what a member reads is what
they will meet when they run ``/train``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.civitai import models as m
from storage.models import GuildSettings


def _cap(value: int | None, orchestrator_max: int) -> str:
    return f"at most {value:,}" if value is not None and value < orchestrator_max else f"up to {orchestrator_max:,}"


def describe_limits(settings: GuildSettings, channels: Sequence[int]) -> list[str]:
    """One line per rule, Markdown, Discord mentions for channels and roles."""
    where = ", ".join(f"<#{channel}>" for channel in channels) if channels else "any channel"
    role = f"<@&{settings.required_role_id}>" if settings.required_role_id is not None else "none"
    daily = (
        f"{settings.user_daily_buzz_cap:,} Buzz per member per day"
        if settings.user_daily_buzz_cap is not None
        else "no daily cap per member"
    )
    monthly = (
        f"{settings.guild_monthly_buzz_cap:,} Buzz for the whole server per month"
        if settings.guild_monthly_buzz_cap is not None
        else "no monthly cap for the server"
    )
    cooldown = (
        f"one `/train flux1` or `/dataset check` every {settings.cooldown_seconds:g} s"
        if settings.cooldown_seconds > 0
        else "none"
    )
    return [
        f"**Where**: {where}",
        f"**Role needed**: {role}",
        f"**Runs at a time**: {settings.max_concurrent_jobs_per_user} per member",
        f"**Budget**: {daily}; {monthly}",
        f"**Steps per run**: {_cap(settings.max_steps, m.STEPS_MAX)} · "
        f"**Epochs per run**: {_cap(settings.max_epochs, m.EPOCHS_MAX)}",
        f"**Cooldown**: {cooldown}",
    ]
