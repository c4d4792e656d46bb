"""The base of the bot's persistent one-key buttons: ``ltb:<kind>:<key>``.

A subclass names its kind, label and style and says what a click does::

    class ConfirmButton(JobButton, kind="confirm", label="Confirm", style=discord.ButtonStyle.success):
        async def clicked(self, interaction: discord.Interaction) -> None: ...

They are ``DynamicItem``s: the custom id carries everything, so a click works after a restart
with nothing in memory. An exception raised by ``clicked`` is told to the member with
``report_error``, since discord.py would only log it.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Self

import discord

from cogs.errors import report_error

Button = discord.ui.Button[discord.ui.View]

# The parts of custom ids (DynamicItem templates). Job ids are 10 of [a-z0-9]; the wider pattern
# keeps old or hand-made ids answering "unknown job" instead of "interaction failed".
JOB_ID = r"[A-Za-z0-9_-]{1,64}"
MEMBER_ID = r"\d{1,20}"
NEVER = r"(?!)"  # the template of the abstract bases: they are never registered or built


class PersistentButton(discord.ui.DynamicItem[Button], template=NEVER):
    kind: ClassVar[str]
    button_label: ClassVar[str]
    button_style: ClassVar[discord.ButtonStyle]
    key_pattern: ClassVar[str] = JOB_ID

    def __init_subclass__(
        cls,
        *,
        kind: str | None = None,
        label: str = "",
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
        key_pattern: str | None = None,
    ) -> None:
        """Without ``kind`` the subclass is another abstract base (it may set ``key_pattern``)."""
        if key_pattern is not None:
            cls.key_pattern = key_pattern
        super().__init_subclass__(template=rf"ltb:{kind}:(?P<key>{cls.key_pattern})" if kind else NEVER)
        if kind:
            cls.kind, cls.button_label, cls.button_style = kind, label, style

    def __init__(self, key: str | int) -> None:
        super().__init__(
            discord.ui.Button(label=self.button_label, style=self.button_style, custom_id=f"ltb:{self.kind}:{key}")
        )
        self.key = str(key)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["key"])

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await self.clicked(interaction)
        except Exception as exc:
            await report_error(interaction, exc)

    async def clicked(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError


class JobButton(PersistentButton, key_pattern=JOB_ID):
    """A button about one job: ``ltb:<kind>:<job_id>``."""

    @property
    def job_id(self) -> str:
        return self.key


class MemberButton(PersistentButton, key_pattern=MEMBER_ID):
    """A button only one member may use: ``ltb:<kind>:<user_id>``."""

    @property
    def user_id(self) -> int:
        return int(self.key)
