"""Text gauges for job cards."""

from __future__ import annotations


def progress_bar(fraction: float | None, width: int = 20) -> str:
    """``▰▰▰▱▱ 60%``; an unknown fraction gives an empty bar with a question mark."""
    if fraction is None:
        return "▱" * width + " ?"
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return "▰" * filled + "▱" * (width - filled) + f" {fraction * 100:.0f}%"
