"""The flux1 training price: the local formula with its breakdown, and the authoritative
figure from a whatif submit.

The formula (civitai-api.md): ``round(steps × 0.9 + epochs × 20)``, never below 1600 Buzz,
with sample rendering billed on top at the Flux.1 generation rate. The whatif response is
authoritative; the formula is shown, labelled as an estimate, when whatif is unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BUZZ_PER_STEP = 0.9
BUZZ_PER_EPOCH = 20
MINIMUM_TRAINING_BUZZ = 1600
# Civitai does not publish the per-image rate used for training samples; this is the Flux.1
# generation rate for one 1024×1024 image at default settings, used only in estimates.
BUZZ_PER_SAMPLE_IMAGE = 4


@dataclass(frozen=True)
class PriceBreakdown:
    steps: int
    epochs: int
    sample_images: int
    steps_buzz: float
    epochs_buzz: int
    training_buzz: int
    floor_applied: bool
    samples_buzz: int

    @property
    def total(self) -> int:
        return self.training_buzz + self.samples_buzz

    def lines(self) -> list[str]:
        """Human-readable breakdown, one line per component."""
        out = [
            f"{self.steps} steps × {BUZZ_PER_STEP} = {self.steps_buzz:g}",
            f"{self.epochs} epochs × {BUZZ_PER_EPOCH} = {self.epochs_buzz}",
        ]
        if self.floor_applied:
            out.append(f"minimum price for a flux1 run: {MINIMUM_TRAINING_BUZZ}")
        if self.sample_images:
            out.append(f"{self.sample_images} sample images × {BUZZ_PER_SAMPLE_IMAGE} = {self.samples_buzz}")
        return out


def estimate_price(steps: int, epochs: int, sample_prompts: int = 0) -> PriceBreakdown:
    steps_buzz = steps * BUZZ_PER_STEP
    epochs_buzz = epochs * BUZZ_PER_EPOCH
    raw = round(steps_buzz + epochs_buzz)
    sample_images = sample_prompts * epochs
    return PriceBreakdown(
        steps=steps,
        epochs=epochs,
        sample_images=sample_images,
        steps_buzz=steps_buzz,
        epochs_buzz=epochs_buzz,
        training_buzz=max(raw, MINIMUM_TRAINING_BUZZ),
        floor_applied=raw < MINIMUM_TRAINING_BUZZ,
        samples_buzz=sample_images * BUZZ_PER_SAMPLE_IMAGE,
    )


def price_from_workflow(workflow: dict[str, Any] | Any) -> int | None:
    """The authoritative total from a (whatif) workflow response, or None when absent.

    Accepts the raw JSON dict or any object with a ``cost`` attribute holding ``total``.
    """
    cost = workflow.get("cost") if isinstance(workflow, dict) else getattr(workflow, "cost", None)
    if cost is None:
        return None
    total = cost.get("total") if isinstance(cost, dict) else getattr(cost, "total", None)
    return round(total) if isinstance(total, int | float) else None
