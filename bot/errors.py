"""Domain exceptions that carry a message fit to show a Discord member.

Cogs never build error text themselves for these: the single error handler in
``cogs.errors`` turns any ``UserFacingError`` into an ephemeral reply with ``user_message``.
Messages say what was wrong and what to do, and never contain secrets.
"""

from __future__ import annotations


class UserFacingError(Exception):
    """An error whose ``user_message`` can be shown to the member as is."""

    def __init__(self, user_message: str, *, title: str = "That didn't work") -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.title = title
