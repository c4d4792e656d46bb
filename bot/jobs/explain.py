"""Plain-language explanations for how a run ended, with the fix to try.

Built from the troubleshooting table of civitai-api.md. The tracker picks the case from the
authoritative workflow; the cogs only display ``Explanation``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Explanation:
    headline: str
    detail: str
    fix: str


_REASONS: dict[str, Explanation] = {
    "no_provider_available": Explanation(
        "No trainer was available",
        "Civitai had no machine free to run this training before it gave up.",
        "Try again later; nothing about your dataset needs to change.",
    ),
    "blocked": Explanation(
        "The run was blocked",
        "Civitai blocked this run, usually because of the dataset's content or the account's standing.",
        "Check the images against Civitai's content rules, replace any that could be flagged, and retry.",
    ),
    "timeout": Explanation(
        "The run took too long",
        "The trainer did not finish within Civitai's time limit.",
        "Retry with fewer steps (1500–2500 is plenty for most characters and styles).",
    ),
    "expired": Explanation(
        "The run expired in the queue",
        "It waited too long for a trainer and Civitai dropped it.",
        "Submit it again; queues are usually shorter outside peak hours.",
    ),
    "canceled": Explanation(
        "The run was cancelled",
        "It was cancelled before it finished.",
        "Start a new run with `/train flux1` when you are ready. Refunds are Civitai's decision.",
    ),
}

MODERATION_REJECTED = Explanation(
    "The dataset failed content moderation",
    "Civitai's moderation flagged images in your dataset, and the run was stopped.",
    "Replace the flagged images (anything that could break Civitai's content rules) and retry.",
)
MODERATION_UNDER_REVIEW = Explanation(
    "The dataset is held for review",
    "Civitai's moderation asked a human to look at your dataset before training goes on.",
    "Nothing to do for now: the run continues by itself if it is approved. You will hear from me either way.",
)
SOURCE_UNREACHABLE = Explanation(
    "Civitai could not download the dataset",
    "The dataset link had expired or could not be reached when the trainer started.",
    "Submit again: the bot signs a fresh link each time.",
)
GENERIC_FAILURE = Explanation(
    "The training failed",
    "Civitai reported that the run failed without giving a reason.",
    "Retry once; if it fails again, try fewer steps or check the dataset with `/dataset check`.",
)


def explain_end(status: str, *, reason: str | None = None, moderation: str | None = None) -> Explanation:
    """The explanation for a run that ended with ``status`` (failed, expired, canceled)."""
    if moderation and moderation.lower() == "rejected":
        return MODERATION_REJECTED
    if reason:
        lowered = reason.lower()
        if lowered in _REASONS:
            return _REASONS[lowered]
        if "sourceurl" in lowered or "source url" in lowered or "not reachable" in lowered:
            return SOURCE_UNREACHABLE
    if status in _REASONS:
        return _REASONS[status]
    return GENERIC_FAILURE
