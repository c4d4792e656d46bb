"""The dataset's user-facing error: what was wrong, with which file, and how to fix it."""

from __future__ import annotations

from bot.errors import UserFacingError


class DatasetError(UserFacingError):
    """A dataset that cannot be used, or could not be fetched.

    ``reason`` says what is wrong, ``fix`` what the member should do, ``file`` names the entry
    of the zip concerned when there is one. ``user_message`` joins them for the error handler.
    """

    def __init__(self, reason: str, fix: str = "", *, file: str | None = None) -> None:
        where = f"`{file}`: " if file else ""
        message = f"{where}{reason}" + (f" {fix}" if fix else "")
        super().__init__(message, title="Dataset problem")
        self.reason = reason
        self.fix = fix
        self.file = file


class EntryRefused(Exception):
    """One entry of the zip is refused (the check goes on with the others): why, and the fix."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix
