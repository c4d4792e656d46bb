"""Plain-language explanations for how a run ended, with the fix to try.

Built from the troubleshooting table of civitai-api.md. The tracker picks the case from the
authoritative workflow; the cogs only display ``Explanation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


class LostReason(StrEnum):
    """Why a submitted run can no longer be followed (stored as the job's ``end_reason``)."""

    WORKFLOW_GONE = "workflow_gone"  # 404: deleted at Civitai, or older than Civitai keeps runs
    TOKEN_REMOVED = "token_removed"  # the token it was paid with was removed from the bot
    SIMULATED_IN_REAL_MODE = "simulated_in_real_mode"  # a simulated run; the bot now trains for real
    REAL_IN_SIMULATED_MODE = "real_in_simulated_mode"  # a real run; the bot now runs the simulator

    @property
    def may_still_run(self) -> bool:
        """Whether the run may still be going (and spending) at Civitai, out of the bot's sight."""
        return self in (LostReason.TOKEN_REMOVED, LostReason.REAL_IN_SIMULATED_MODE)


_LOST: dict[LostReason, tuple[str, str, str]] = {  # headline, what happened, what to do
    LostReason.WORKFLOW_GONE: (
        "Civitai no longer has this run",
        "Civitai says the run does not exist: it was deleted, or it is older than Civitai keeps runs. "
        "I can no longer follow it or fetch its files.",
        "Start it again with `/train flux1` if you still need it.",
    ),
    LostReason.TOKEN_REMOVED: (
        "The Civitai token paying for this run was removed",
        "The token this run was submitted with was removed from the bot, so I can no longer read the run "
        "or fetch its files. It may still be running at Civitai.",
        "Follow it on civitai.com, or start a new run with `/train flux1`.",
    ),
    LostReason.SIMULATED_IN_REAL_MODE: (
        "This simulated run ended when the bot switched to real training",
        "It ran on the built-in simulator, which is off now that the bot trains on Civitai.",
        "Start it again with `/train flux1` to train for real.",
    ),
    LostReason.REAL_IN_SIMULATED_MODE: (
        "The bot switched to simulated mode and can no longer follow this run",
        "This run was submitted to Civitai, but the bot now runs its simulator and does not talk to Civitai. "
        "It may still be running there.",
        "Follow it on civitai.com; the bot's operator can switch back to real mode.",
    ),
}
_SIMULATOR_FORGOT = (
    "The simulator no longer has this run",
    "The built-in simulator says the run does not exist (its data folder was removed, or the run is older "
    "than the 30 days it keeps runs), so I can no longer follow it.",
    "Start it again with `/train flux1`.",
)


def charge_note(charged: float | None, *, simulated: bool) -> str:
    """What is known about the money of a run that was lost: the charge the bot recorded."""
    if simulated:
        return "Nothing was charged: it was a simulated run."
    if not charged:
        return "No charge for it was recorded here; your Civitai account shows what it cost."
    return (
        f"{charged:,.0f} Buzz was charged when it was submitted. If it never ran, Civitai may have "
        "refunded it: your Civitai account shows what was taken and given back."
    )


def explain_lost(reason: str | None, *, simulated: bool, charged: float | None) -> Explanation:
    """The explanation for a run that ended ``lost`` (``reason`` is its stored ``end_reason``)."""
    try:
        known = LostReason(reason or "")
    except ValueError:
        known = LostReason.WORKFLOW_GONE
    headline, detail, fix = _SIMULATOR_FORGOT if known is LostReason.WORKFLOW_GONE and simulated else _LOST[known]
    return Explanation(headline, f"{detail} {charge_note(charged, simulated=simulated)}", fix)
