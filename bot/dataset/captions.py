"""Caption files: strict UTF-8 text beside each image, and the trigger word inside it."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from bot.dataset.errors import EntryRefused

# A caption is a sentence or a tag list; anything this long is not a caption.
MAX_CAPTION_BYTES = 64 * 1024


class CaptionRefused(EntryRefused):
    """A caption file that cannot be used (e.g. not UTF-8)."""


@dataclass(frozen=True)
class Caption:
    text: str
    had_bom: bool

    @property
    def encoded(self) -> bytes:
        return self.text.encode("utf-8")

    @property
    def empty(self) -> bool:
        return not self.text.strip()


def decode_caption(data: bytes) -> Caption:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CaptionRefused("The caption is saved as UTF-16.", _SAVE_AS_UTF8)
    had_bom = data.startswith(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CaptionRefused(
            f"The caption is not UTF-8 text (byte {exc.start} cannot be read).", _SAVE_AS_UTF8
        ) from exc
    return Caption(text, had_bom)


def mentions(text: str, trigger_word: str) -> bool:
    """Whether ``trigger_word`` appears as a whole word, ignoring case."""
    pattern = r"(?<!\w)" + re.escape(trigger_word.strip()) + r"(?!\w)"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


_SAVE_AS_UTF8 = "Save it as UTF-8 (in Notepad: File → Save as → Encoding: UTF-8)."
