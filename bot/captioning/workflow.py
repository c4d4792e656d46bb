"""The captioning workflow: one ``mediaCaptioning`` or ``wdTagging`` step per image, and reading
each step's result back.

The request models follow the consumer OpenAPI document (``MediaCaptioningInput``,
``WDTaggingInput``) with the strictness of ``bot.civitai.models``; the template reuses the
training template's envelope (callbacks, tags, ``externalId``) with these steps in place of the
training step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from bot.captioning.options import TAG_THRESHOLD, CaptionOptions, CaptionStyle
from bot.captioning.text import tags_caption, with_trigger_first
from bot.civitai import models as m

JOY_CAPTION: Literal["joy-caption"] = "joy-caption"
CAPTION_TEMPERATURE = 0.5
CAPTION_MAX_TOKENS = 300
# JoyCaption describes everything it sees; training captions work best short and factual.
CAPTION_INSTRUCTIONS = "Write one or two plain sentences describing the image for LoRA training."
WORKFLOW_TAG = "lora-trainer-bot-captions"


class MediaCaptioningInput(m._Request):
    media_url: str = Field(min_length=1)
    model: Literal["joy-caption", "ideogram4"] = JOY_CAPTION
    temperature: float | None = Field(default=CAPTION_TEMPERATURE, ge=0, le=2)
    max_new_tokens: int | None = Field(default=CAPTION_MAX_TOKENS, ge=1)
    custom_instructions: str | None = None


class WDTaggingInput(m._Request):
    media_url: str = Field(min_length=1)
    threshold: float | None = Field(default=TAG_THRESHOLD, ge=0, le=1)


class _CaptionStep(m._Request):
    name: str
    priority: Literal["high", "normal", "low"] | None = "normal"
    retries: int | None = Field(default=1, ge=0)
    metadata: dict[str, str] | None = None


class MediaCaptioningStepTemplate(_CaptionStep):
    step_type: Literal["mediaCaptioning"] = Field(default="mediaCaptioning", alias="$type")
    input: MediaCaptioningInput


class WDTaggingStepTemplate(_CaptionStep):
    step_type: Literal["wdTagging"] = Field(default="wdTagging", alias="$type")
    input: WDTaggingInput


class CaptioningWorkflowTemplate(m.WorkflowTemplate):
    steps: list[MediaCaptioningStepTemplate | WDTaggingStepTemplate] = Field(min_length=1)  # type: ignore[assignment]


@dataclass(frozen=True)
class MediaToCaption:
    """One image of the dataset and the URL the orchestrator reads it from."""

    name: str
    url: str


def step_name(index: int) -> str:
    """Steps are named by position; the image's file name rides in the step's metadata."""
    return f"caption-{index:04d}"


def captioning_template(
    media: Sequence[MediaToCaption],
    options: CaptionOptions,
    *,
    external_id: str | None,
    callback_url: str | None = None,
    run_tag: str | None = None,
) -> CaptioningWorkflowTemplate:
    """The workflow; ``run_tag`` (``recovery.workflow_tag`` of the run) lets a submit whose answer
    was lost be found again."""
    steps: list[MediaCaptioningStepTemplate | WDTaggingStepTemplate] = []
    for index, item in enumerate(media):
        metadata = {"file": item.name}
        if options.style is CaptionStyle.TAGS:
            steps.append(WDTaggingStepTemplate(name=step_name(index), metadata=metadata,
                                               input=WDTaggingInput(media_url=item.url)))  # fmt: skip
        else:
            caption_input = MediaCaptioningInput(media_url=item.url, custom_instructions=CAPTION_INSTRUCTIONS)
            steps.append(MediaCaptioningStepTemplate(name=step_name(index), metadata=metadata, input=caption_input))
    callbacks = [m.WorkflowCallback(url=callback_url, type=["workflow:*", "step:*"])] if callback_url else None
    tags = [WORKFLOW_TAG] + ([run_tag] if run_tag else [])
    return CaptioningWorkflowTemplate(steps=steps, callbacks=callbacks, tags=tags, external_id=external_id)


@dataclass(frozen=True)
class StepResult:
    """What one image's step gave: a caption, a reason it failed, or neither yet."""

    name: str
    caption: str | None = None
    failure: str | None = None

    @property
    def finished(self) -> bool:
        return self.caption is not None or self.failure is not None


def _reason(step: m.WorkflowStep) -> str:
    reasons = step.failure_reasons()
    if any(r.lower() in ("blocked", "moderation") for r in reasons):
        return f"refused by moderation ({', '.join(reasons)})"
    return ", ".join(reasons) or f"the captioning step {step.status or 'failed'}"


def read_results(workflow: m.Workflow, names: Sequence[str], options: CaptionOptions) -> list[StepResult]:
    """One result per image, in the order submitted (a step missing from the answer: not finished)."""
    by_name = {step.name: step for step in workflow.steps}
    results = []
    for index, name in enumerate(names):
        step = by_name.get(step_name(index))
        if step is None:
            results.append(StepResult(name))
            continue
        output = step.output.model_extra if step.output is not None else None
        caption = _caption_from(output or {}, options)
        if caption is not None and (step.status or "").lower() == m.WorkflowStatus.SUCCEEDED:
            results.append(StepResult(name, caption=caption))
        elif m.is_terminal(step.status) or m.is_terminal(workflow.status):
            results.append(StepResult(name, failure=_reason(step)))
        else:
            results.append(StepResult(name))
    return results


def _caption_from(output: dict[str, object], options: CaptionOptions) -> str | None:
    if options.style is CaptionStyle.TAGS:
        tags = output.get("tags")
        if not isinstance(tags, dict):
            return None
        scores = {str(k): float(v) for k, v in tags.items() if isinstance(v, int | float)}
        text = tags_caption(scores, TAG_THRESHOLD)
    else:
        caption = output.get("caption")
        text = caption if isinstance(caption, str) else ""
    return with_trigger_first(text, options.trigger_word) if text.strip() else None
