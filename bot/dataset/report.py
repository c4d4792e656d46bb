"""The dataset report: a typed result, a Markdown summary for Discord, plain text and JSON elsewhere."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.text import counted, plain

# Discord messages hold 4000 characters in an embed description; leave room for the caller's
# own lines (price, parameters) around the summary.
TEXT_LIMIT = 3500


@dataclass(frozen=True)
class Change:
    """Something the normalisation did to one file, and why."""

    file: str
    what: str
    why: str


@dataclass(frozen=True)
class Refusal:
    """A reason the dataset cannot be used, the file concerned and how to fix it."""

    file: str | None
    reason: str
    fix: str


@dataclass(frozen=True)
class Skipped:
    """A file left out of the dataset on purpose (junk, stray files, orphan captions)."""

    file: str
    reason: str


@dataclass(frozen=True)
class Resolution:
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}×{self.height}"


@dataclass
class DatasetResult:
    """Everything a check found. ``accepted`` is true only when there are no refusals.

    When accepted, ``digest`` is the SHA-256 of the normalised zip and ``image_count`` the number
    of images inside it (the count the orchestrator is given); ``zip_path`` is where the store
    keeps it, or None when the check did not keep it (the offline CLI).
    """

    source: str
    accepted: bool = False
    image_count: int = 0
    captioned: int = 0
    uncaptioned: list[str] = field(default_factory=list)
    orphan_captions: list[str] = field(default_factory=list)
    captions_missing_trigger: list[str] = field(default_factory=list)
    trigger_word: str | None = None
    resolution_min: Resolution | None = None
    resolution_median: Resolution | None = None
    resolution_max: Resolution | None = None
    formats: dict[str, int] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    digest: str | None = None
    zip_bytes: int | None = None
    zip_path: Path | None = None
    contact_sheet: bytes | None = field(default=None, repr=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        def res(r: Resolution | None) -> dict[str, int] | None:
            return None if r is None else {"width": r.width, "height": r.height}

        return {
            "source": self.source,
            "accepted": self.accepted,
            "image_count": self.image_count,
            "captioned": self.captioned,
            "uncaptioned": self.uncaptioned,
            "orphan_captions": self.orphan_captions,
            "captions_missing_trigger": self.captions_missing_trigger,
            "trigger_word": self.trigger_word,
            "resolution": {
                "min": res(self.resolution_min),
                "median": res(self.resolution_median),
                "max": res(self.resolution_max),
            },
            "formats": self.formats,
            "changes": [_plain_fields(c) for c in self.changes],
            "refusals": [_plain_fields(r) for r in self.refusals],
            "skipped": [_plain_fields(s) for s in self.skipped],
            "warnings": [plain(w) for w in self.warnings],
            "digest": self.digest,
            "zip_bytes": self.zip_bytes,
            "zip_path": str(self.zip_path) if self.zip_path else None,
            "contact_sheet_bytes": len(self.contact_sheet) if self.contact_sheet else 0,
        }

    def to_text(self, limit: int = TEXT_LIMIT) -> str:
        """Markdown for Discord, at most ``limit`` characters: long lists end in "and N more"."""
        for per_list in (10, 6, 3, 1):
            text = "\n".join(self._lines(per_list))
            if len(text) <= limit:
                return text
        return text[: limit - 1] + "…"

    def to_plain_text(self) -> str:
        """The whole report as plain text, for a terminal: no Markdown, no limit."""
        lines = self._lines(per_list=max(len(self.refusals), len(self.warnings), len(self.changes), 10))
        return "\n".join(plain(line) for line in lines)

    def _lines(self, per_list: int) -> list[str]:
        lines = [self._headline()]
        if self.resolution_min and self.resolution_median and self.resolution_max:
            lines.append(
                f"Resolutions: min {self.resolution_min} · median {self.resolution_median}"
                f" · max {self.resolution_max}"
            )
        if self.formats:
            lines.append("Formats: " + ", ".join(f"{k} {v}" for k, v in sorted(self.formats.items())))
        if self.refusals:
            lines.append(f"**Problems to fix ({len(self.refusals)})**")
            lines += _bullets([_refusal_line(r) for r in self.refusals], per_list)
        if self.warnings:
            lines.append("**Warnings**")
            lines += _bullets(self.warnings, per_list)
        if self.changes:
            lines.append(f"**Changes made ({len(self.changes)})**")
            lines += _bullets([f"`{c.file}`: {c.what} ({c.why})" for c in self.changes], per_list)
        if self.skipped:
            lines.append(f"**Skipped ({len(self.skipped)})**")
            lines += _bullets(_skipped_groups(self.skipped), per_list)
        if self.digest:
            lines.append(f"Normalised zip: `{self.digest[:12]}…`" + _size_suffix(self.zip_bytes))
        return lines

    def _headline(self) -> str:
        captions = f", {self.captioned} captioned" if self.image_count else ""
        if self.accepted:
            return f"**Dataset accepted**: {counted(self.image_count, 'image')}{captions}"
        count = len(self.refusals)
        return f"**Dataset refused**: {count} problem{'s' if count != 1 else ''} to fix"


def _plain_fields(item: Change | Refusal | Skipped) -> dict[str, Any]:
    return {key: plain(value) if isinstance(value, str) else value for key, value in vars(item).items()}


def _refusal_line(refusal: Refusal) -> str:
    where = f"`{refusal.file}`: " if refusal.file else ""
    return f"{where}{refusal.reason}" + (f" → {refusal.fix}" if refusal.fix else "")


def _skipped_groups(skipped: list[Skipped]) -> list[str]:
    """One line per reason: junk is often hundreds of files with the same reason."""
    by_reason: dict[str, list[str]] = {}
    for item in skipped:
        by_reason.setdefault(item.reason, []).append(item.file)
    lines = []
    for reason, files in by_reason.items():
        shown = ", ".join(f"`{f}`" for f in files[:3])
        more = f" and {len(files) - 3} more" if len(files) > 3 else ""
        lines.append(f"{reason}: {shown}{more}")
    return lines


def _bullets(items: list[str], limit: int) -> list[str]:
    lines = [f"- {item}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"- and {len(items) - limit} more")
    return lines


def _size_suffix(size: int | None) -> str:
    return f" ({size / 1024 / 1024:.1f} MiB)" if size else ""


def count_formats(formats: list[str]) -> dict[str, int]:
    return dict(sorted(Counter(formats).items()))
