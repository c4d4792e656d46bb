"""Stage lines on a deferred reply ("Downloading… 45%", "Checking 120 images…", "Pricing…").

A large zip takes a while; the member sees it move instead of "thinking" for a minute. Edits
are throttled (Discord rate-limits them) and never fail the command: progress is a courtesy.
"""

from __future__ import annotations

import contextlib
import logging
import time

import discord

from cogs.errors import error_reply
from cogs.replies import reply

log = logging.getLogger(__name__)

MIN_INTERVAL_SECONDS = 1.0
MIB = 1024 * 1024


class ProgressMessage:
    """Edits the deferred original response; implements ``bot.dataset.intake.IntakeProgress``."""

    def __init__(self, interaction: discord.Interaction, *, min_interval: float = MIN_INTERVAL_SECONDS) -> None:
        self.interaction = interaction
        self.min_interval = min_interval
        self._last_edit = 0.0
        self._last_text: str | None = None

    async def show(self, text: str) -> None:
        """A new stage: shown at once."""
        await self._edit(text)

    async def downloading(self, received: int, total: int | None) -> None:
        if time.monotonic() - self._last_edit < self.min_interval:
            return
        if total:
            text = f"⬇️ Downloading the dataset… {min(100, received * 100 // total)}%"
        else:
            text = f"⬇️ Downloading the dataset… {received / MIB:.0f} MiB"
        await self._edit(text)

    async def checking(self, images: int | None) -> None:
        await self._edit(f"🔍 Checking {images} images…" if images else "🔍 Checking the zip…")

    async def waiting(self) -> None:
        await self._edit("⏳ Waiting for another dataset check…")

    async def _edit(self, text: str) -> None:
        if text == self._last_text:
            return
        self._last_text, self._last_edit = text, time.monotonic()
        try:
            await self.interaction.edit_original_response(content=text)
        except discord.HTTPException as exc:
            log.warning("Could not show progress (%s %s)", exc.status, exc.code)


async def replace_with_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Show ``error`` in place of the progress lines (the deferred reply), as the error handler
    words it; unexpected errors are logged there with an id."""
    embed = error_reply(interaction, error)
    try:
        await interaction.edit_original_response(content=None, embed=embed, attachments=[], view=None)
    except discord.HTTPException:
        with contextlib.suppress(discord.HTTPException):
            await reply(interaction, embed=embed)
