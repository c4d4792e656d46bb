"""From what the captioning models answer to the caption a training image gets.

The trigger word goes first in every generated caption, exactly once: a model that already
wrote it (JoyCaption sometimes echoes a name it was told) does not get it a second time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bot.dataset.captions import mentions

# A caption line in captions.txt and in a Discord modal: one paragraph, no tabs.
_SPACES = re.compile(r"\s+")


def clean(text: str) -> str:
    """One line of text: newlines and tabs become spaces (captions.txt is TAB-separated)."""
    return _SPACES.sub(" ", text).strip()


def with_trigger_first(caption: str, trigger_word: str | None) -> str:
    """``caption`` with ``trigger_word`` as its first word and nowhere else."""
    text = clean(caption)
    if not trigger_word:
        return text
    word = trigger_word.strip()
    if mentions(text, word):
        pattern = r"(?<!\w)" + re.escape(word) + r"(?!\w)\s*,?"
        text = re.sub(pattern, "", text, flags=re.IGNORECASE)
        # Drop what the removal left dangling: doubled commas and spaces, a leading comma.
        text = re.sub(r"\s*,\s*(,\s*)+", ", ", text)
        text = clean(re.sub(r"\s+([,.;:])", r"\1", text)).strip(" ,;:")
    return f"{word}, {text}" if text else word


def tags_caption(tags: Mapping[str, float], threshold: float) -> str:
    """The tagger's tags scoring at least ``threshold``, best first, as a comma-separated line.

    Tag names come with underscores (``long_hair``); trainers write them with spaces.
    """
    kept = sorted(((score, name) for name, score in tags.items() if score >= threshold), key=lambda t: (-t[0], t[1]))
    words = list(dict.fromkeys(clean(name.replace("_", " ")) for _score, name in kept))
    return ", ".join(w for w in words if w)
