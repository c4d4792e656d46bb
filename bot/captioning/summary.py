"""What captioning did to a dataset, for the report's "Captions" section and ``captions.txt``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bot.captioning.text import clean

SHOWN_CAPTIONS = 3
CAPTIONS_FILE = "captions.txt"


@dataclass
class CaptionSummary:
    """Counts by what happened to each image, the failures with their reason, and the final
    caption of every image (empty when it has none), in dataset order."""

    kept: int = 0  # an existing caption left as it was
    generated: int = 0  # an uncaptioned image got one
    replaced: int = 0  # an existing caption was replaced (auto_caption: all)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason), left as it was
    captions: list[tuple[str, str]] = field(default_factory=list)  # (file, final caption)
    generated_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaptionSummary:
        return cls(
            kept=int(data.get("kept", 0)),
            generated=int(data.get("generated", 0)),
            replaced=int(data.get("replaced", 0)),
            failed=[(str(f), str(r)) for f, r in data.get("failed", [])],
            captions=[(str(f), str(c)) for f, c in data.get("captions", [])],
            generated_files=[str(f) for f in data.get("generated_files", [])],
        )

    def lines(self, shown: int = SHOWN_CAPTIONS, failures_shown: int = 5) -> list[str]:
        """Markdown lines: the counts, each failure with its reason, the first few new captions."""
        counts = f"{self.kept} kept · {self.generated} generated · {self.replaced} replaced · {len(self.failed)} failed"
        lines = [counts]
        for name, reason in self.failed[:failures_shown]:
            lines.append(f"- `{name}`: {reason}; left uncaptioned")
        if len(self.failed) > failures_shown:
            lines.append(f"- and {len(self.failed) - failures_shown} more failed")
        new = set(self.generated_files)
        examples = [(name, text) for name, text in self.captions if name in new][:shown]
        for name, text in examples:
            short = text if len(text) <= 160 else text[:159] + "…"
            lines.append(f"> `{name}`: {short}")
        lines.append(f"Every caption is in `{CAPTIONS_FILE}`.")
        return lines

    def captions_txt(self) -> str:
        """One ``file name<TAB>caption`` line per image."""
        return "".join(f"{name}\t{clean(text)}\n" for name, text in self.captions)
