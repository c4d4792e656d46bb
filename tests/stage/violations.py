"""A request the bot sent that real Discord would refuse, and how it is reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


@dataclass(frozen=True)
class Violation:
    route: str  # "POST /channels/{channel_id}/messages"
    path: Path  # where in the body, e.g. ("embeds", 0, "description")
    message: str
    source: str = "limits"  # "openapi" or "limits"

    @property
    def field(self) -> str:
        return format_path(self.path)

    def __str__(self) -> str:
        return f"{self.route}: {self.field}: {self.message} [{self.source}]"


def discord_error_body(violations: list[Violation]) -> dict[str, Any]:
    """The 400 50035 "Invalid Form Body" answer Discord gives, with its nested ``errors``."""
    errors: dict[str, Any] = {}
    for violation in violations:
        node = errors
        for part in violation.path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": "STAGE_INVALID", "message": violation.message})
    return {"code": 50035, "message": "Invalid Form Body", "errors": errors}
