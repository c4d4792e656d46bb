"""What a member asked of auto-captioning: which images (``auto_caption``) and how (``caption_style``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from bot.errors import UserFacingError


class AutoCaption(StrEnum):
    OFF = "off"  # keep the zip's captions as they are
    MISSING = "missing"  # caption only images without a caption
    ALL = "all"  # replace every caption


class CaptionStyle(StrEnum):
    SENTENCES = "sentences"  # JoyCaption (mediaCaptioning): natural sentences
    TAGS = "tags"  # WD tagger (wdTagging): comma-separated tags above a threshold


E = TypeVar("E", bound=StrEnum)

# Tags the tagger scores below this are left out of a caption.
TAG_THRESHOLD = 0.35


@dataclass(frozen=True)
class CaptionOptions:
    mode: AutoCaption = AutoCaption.OFF
    style: CaptionStyle = CaptionStyle.SENTENCES
    trigger_word: str | None = None

    @classmethod
    def from_user(
        cls, auto_caption: str | None, caption_style: str | None, trigger_word: str | None = None
    ) -> CaptionOptions:
        """Discord gives choices, but a crafted interaction can send anything: refuse it clearly."""
        mode = _choice(AutoCaption, "auto_caption", auto_caption, AutoCaption.OFF)
        style = _choice(CaptionStyle, "caption_style", caption_style, CaptionStyle.SENTENCES)
        return cls(mode, style, (trigger_word or "").strip() or None)

    @property
    def enabled(self) -> bool:
        return self.mode is not AutoCaption.OFF

    def wants(self, existing_caption: str | None) -> bool:
        """Whether an image with ``existing_caption`` gets a generated one."""
        if self.mode is AutoCaption.ALL:
            return True
        return self.mode is AutoCaption.MISSING and not (existing_caption or "").strip()


def _choice(kind: type[E], name: str, value: str | None, default: E) -> E:
    if value is None:
        return default
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise UserFacingError(
            f"`{name}` must be one of {allowed} (you gave {value!r}).", title=f"Unknown {name}"
        ) from None
