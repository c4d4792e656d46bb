"""The progress lines: percentages, throttling, and a failed edit never failing the command."""

from __future__ import annotations

from typing import Any

import discord

from cogs.progress import ProgressMessage


class FakeResponse:
    def __init__(self, status: int = 200) -> None:
        self.status, self.reason = status, "Too Many Requests"


class FakeInteraction:
    """Stands in for Discord: records the edits of the deferred reply."""

    def __init__(self, fail: bool = False) -> None:
        self.edits: list[str] = []
        self.fail = fail

    async def edit_original_response(self, *, content: str, **_: Any) -> None:
        if self.fail:
            raise discord.HTTPException(FakeResponse(429), {"message": "slow down", "code": 0})  # type: ignore[arg-type]
        self.edits.append(content)


async def test_percentages_are_throttled_and_stages_shown_at_once() -> None:
    interaction = FakeInteraction()
    progress = ProgressMessage(interaction, min_interval=3600)  # type: ignore[arg-type]
    await progress.show("⬇️ Downloading the dataset…")
    await progress.downloading(45, 100)  # within the interval: skipped
    await progress.checking(120)
    await progress.checking(120)  # unchanged: not sent again
    assert interaction.edits == ["⬇️ Downloading the dataset…", "🔍 Checking 120 images…"]

    unthrottled = FakeInteraction()
    progress = ProgressMessage(unthrottled, min_interval=0)  # type: ignore[arg-type]
    await progress.downloading(45 * 1024 * 1024, 100 * 1024 * 1024)
    await progress.downloading(3 * 1024 * 1024, None)
    await progress.checking(None)
    await progress.waiting()
    assert unthrottled.edits == [
        "⬇️ Downloading the dataset… 45%", "⬇️ Downloading the dataset… 3 MiB", "🔍 Checking the zip…",
        "⏳ Waiting for another dataset check…",
    ]  # fmt: skip


async def test_a_failed_edit_is_not_an_error() -> None:
    progress = ProgressMessage(FakeInteraction(fail=True))  # type: ignore[arg-type]
    await progress.show("💰 Pricing…")
