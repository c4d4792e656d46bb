"""Warnings for the confirmation: choices that are allowed but usually a mistake.

They never block a run; they tell the trainer what to expect, with the numbers that matter.
"""

from __future__ import annotations

from bot.civitai.training import TrainingOptions
from bot.dataset.report import DatasetResult

# Rough guide for Flux.1 LoRAs: 100–200 steps per image suits most subjects.
FEW_STEPS_PER_IMAGE = 20
MANY_STEPS_PER_IMAGE = 400


def training_warnings(options: TrainingOptions, dataset: DatasetResult) -> list[str]:
    warnings = list(options.warnings())
    images = max(dataset.image_count, 1)
    per_image = options.steps / images
    if per_image < FEW_STEPS_PER_IMAGE:
        warnings.append(
            f"{options.steps} steps for {dataset.image_count} images is only {per_image:.0f} per image: "
            "the LoRA may come out underbaked (1500–2500 steps suit most characters)"
        )
    elif per_image > MANY_STEPS_PER_IMAGE and dataset.image_count < 10:
        warnings.append(
            f"{options.steps} steps for {dataset.image_count} images is {per_image:.0f} per image: "
            "expect overfitting; fewer steps or more images usually help"
        )
    if dataset.image_count and dataset.captioned < dataset.image_count:
        missing = dataset.image_count - dataset.captioned
        warnings.append(
            f"{missing} of {dataset.image_count} images have no caption"
            + (f"; they will train on the trigger word `{options.trigger_word}` alone" if options.trigger_word else "")
        )
    if options.trigger_word and dataset.captions_missing_trigger:
        warnings.append(
            f"{len(dataset.captions_missing_trigger)} captions do not contain the trigger word `{options.trigger_word}`"
        )
    warnings.extend(w for w in dataset.warnings if w not in warnings)
    return warnings
