"""Persistent components about one epoch of a run: ``ltb:<kind>:<job>:<n>`` buttons and
``ltb:<kind>:<job>`` menus of epochs.

Like ``cogs.buttons``' bases, a subclass names its kind and look and says what a choice does;
the custom id carries the job (and epoch), so they work after a restart, and an exception is
told to the member with ``report_error``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import discord

from bot.errors import UserFacingError
from cogs.buttons import JOB_ID, NEVER, PersistentButton
from cogs.errors import report_error
from cogs.job_access import JOB

Select = discord.ui.Select[discord.ui.View]
MAX_SELECT_OPTIONS = 25


class EpochButton(PersistentButton, key_pattern=rf"{JOB_ID}:[0-9]{{1,3}}"):
    """A ``PersistentButton`` whose key is ``<job>:<epoch>``."""

    def __init__(self, job_id: str, number: int) -> None:
        super().__init__(f"{job_id}:{number}")
        self.job_id, self.number = job_id, number

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        job_id, _, number = match["key"].rpartition(":")
        return cls(job_id, int(number))


class EpochMenu(discord.ui.DynamicItem[Select], template=NEVER):
    kind: ClassVar[str]
    placeholder: ClassVar[str]
    option_label: ClassVar[str]  # formatted with the epoch number
    option_emoji: ClassVar[str]

    def __init_subclass__(
        cls, *, kind: str | None = None, placeholder: str = "", option_label: str = "Epoch {}", emoji: str = ""
    ) -> None:
        super().__init_subclass__(template=rf"ltb:{kind}:{JOB}" if kind else NEVER)
        if kind:
            cls.kind, cls.placeholder, cls.option_label, cls.option_emoji = kind, placeholder, option_label, emoji

    def __init__(self, job_id: str, epochs: Sequence[int] = (), *, select: Select | None = None) -> None:
        if select is None:
            select = discord.ui.Select(
                custom_id=f"ltb:{self.kind}:{job_id}",
                placeholder=self.placeholder,
                options=[
                    discord.SelectOption(label=self.option_label.format(n), value=str(n), emoji=self.option_emoji)
                    for n in list(epochs)[-MAX_SELECT_OPTIONS:]
                ],
            )
        super().__init__(select)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["job"], select=item if isinstance(item, discord.ui.Select) else None)

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            values = self.item.values
            if not values or not values[0].isdigit():
                raise UserFacingError("Pick an epoch in the menu.", title="No epoch chosen")
            await self.chosen(interaction, int(values[0]))
        except Exception as exc:
            await report_error(interaction, exc)

    async def chosen(self, interaction: discord.Interaction, number: int) -> None:
        raise NotImplementedError
