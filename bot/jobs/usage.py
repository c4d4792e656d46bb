"""Periods for ``/admin usage``: calendar periods in UTC, the same ones the budget caps use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

from bot.jobs.policy import day_start, month_start


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    ALL = "all"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PERIOD_LABELS = {
    Period.DAY: "today (since 00:00 UTC)",
    Period.WEEK: "this week (since Monday 00:00 UTC)",
    Period.MONTH: "this month (since the 1st, 00:00 UTC)",
    Period.ALL: "all time",
}


def period_start(period: Period, now: datetime) -> datetime:
    if period is Period.DAY:
        return day_start(now)
    if period is Period.WEEK:
        today = day_start(now)
        return today - timedelta(days=today.weekday())
    if period is Period.MONTH:
        return month_start(now)
    return EPOCH
