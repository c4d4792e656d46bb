"""Every per-server setting in words, marking which ones are still the defaults.

``/admin settings`` shows all of them; ``/help`` can show the ones that matter to members.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.models import Block, GuildSettings, Payer


@dataclass(frozen=True)
class SettingLine:
    name: str
    value: str
    default: bool


def _buzz(cap: int | None, per: str) -> str:
    return "no cap" if cap is None else f"{cap:,} Buzz per {per}"


def describe_settings(
    settings: GuildSettings,
    *,
    channels: list[int],
    blocked: list[Block],
    operator_token_set: bool,
    simulated: bool,
) -> list[SettingLine]:
    overridden = settings.overridden

    def line(name: str, value: str, *fields: str) -> SettingLine:
        return SettingLine(name, value, default=not any(f in overridden for f in fields))

    payer = {
        Payer.USER: "each member, with their own linked token (`/account token`)",
        Payer.SERVER: "this server's Civitai token"
        + (" (set)" if settings.has_server_token else " — **not set yet: `/admin token set`**"),
        Payer.OPERATOR: "the bot operator's token"
        + ("" if operator_token_set or simulated else " — **the operator has not configured one**"),
    }[settings.payer]
    if simulated:
        payer += " · SIMULATED mode: nothing is charged"
    return [
        SettingLine(
            "Channels", ", ".join(f"<#{c}>" for c in channels) if channels else "everywhere", default=not channels
        ),
        line(
            "Required role",
            f"<@&{settings.required_role_id}>" if settings.required_role_id else "none",
            "required_role_id",
        ),
        line("Runs at a time per member", str(settings.max_concurrent_jobs_per_user), "max_concurrent_jobs_per_user"),
        line("Buzz cap per member", _buzz(settings.user_daily_buzz_cap, "day"), "user_daily_buzz_cap"),
        line("Buzz cap for the server", _buzz(settings.guild_monthly_buzz_cap, "month"), "guild_monthly_buzz_cap"),
        line("Max steps", str(settings.max_steps or "no cap (Civitai allows 10000)"), "max_steps"),
        line("Max epochs", str(settings.max_epochs or "no cap (Civitai allows 20)"), "max_epochs"),
        line("Who pays", payer, "payer"),
        SettingLine(
            "Server token", "set" if settings.has_server_token else "not set", default=not settings.has_server_token
        ),
        line("Job threads", settings.thread_mode.value, "thread_mode"),
        line("Log channel", f"<#{settings.log_channel_id}>" if settings.log_channel_id else "none", "log_channel_id"),
        line("Command cooldown", f"{settings.cooldown_seconds:g} s", "cooldown_seconds"),
        SettingLine(
            "Blocked members",
            ", ".join(f"<@{b.user_id}>" for b in blocked[:20]) + (" …" if len(blocked) > 20 else "")
            if blocked
            else "none",
            default=not blocked,
        ),
    ]
