"""Text shared by every surface: Discord shows Markdown, a terminal or a file shows it bare."""

from __future__ import annotations

import re

# The Markdown our texts use: **bold** and `code`.
_MARKDOWN = re.compile(r"\*\*(.+?)\*\*|`([^`\n]+)`")


def plain(text: str) -> str:
    """The text without its Discord Markdown, for a terminal, a file or a machine."""
    return _MARKDOWN.sub(lambda m: m.group(1) or m.group(2), text)


def counted(count: int, noun: str) -> str:
    """``1 image``, ``3 images``: every noun the reports count takes an "s"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def verb(count: int, singular: str, plural: str) -> str:
    return singular if count == 1 else plural
