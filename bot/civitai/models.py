"""Pydantic models of the orchestrator's JSON, mirroring the consumer OpenAPI document.

Two directions, two attitudes:
- Requests (``WorkflowTemplate`` and what it holds) are strict: ``extra="forbid"``, every range
  of ``civitai-api.md`` enforced, serialised with ``exclude_none`` so the body validates against
  the published schema (server-filled fields such as ``currencies`` or ``trace`` are never sent,
  and neither is ``resolution``, which is not a flux1 field).
- Responses (``Workflow`` and what it holds, callbacks, problem+json) are lenient: unknown fields
  are kept (``extra="allow"``), statuses and other enums are plain strings so a value Civitai adds
  tomorrow is logged once and carried along instead of crashing a job.

Field names are snake_case with camelCase aliases; both are accepted on input.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

log = logging.getLogger(__name__)

# --- Shared vocabulary -------------------------------------------------------------------------

# The AIR pattern of the OpenAPI document (``sourceUrl``, ``continueFrom``), with its .NET named
# groups rewritten for Python. Note what it forbids: query strings and ports.
AIR_PATTERN: Final = re.compile(
    r"^(?:urn:)?(?:air:)?(?:(?P<ecosystem>[a-zA-Z0-9_\-\/]+):)?(?:(?P<type>[a-zA-Z0-9_\-\/]+):)?"
    r"(?P<source>[a-zA-Z0-9_\-\/]+):(?P<id>[a-zA-Z0-9_\-\/\.]+)(?:@(?P<version>[a-zA-Z0-9_\-\/.=,%+:]+))?"
    r"(?:\.(?P<format>[a-zA-Z0-9_\-]+))?$"
)
FLUX1_LORA_AIR_PREFIX: Final = "urn:air:flux1:lora:"
EXTERNAL_ID_PATTERN: Final = r"^[A-Za-z0-9_-]+$"
CALLBACK_EVENT_PATTERN: Final = re.compile(r"^(workflow|step|job):(\*|[a-z]+)$")

VARIANTS: Final = ("dev", "schnell")
LR_SCHEDULERS: Final = ("constant", "constant_with_warmup", "cosine", "linear", "step")
OPTIMIZERS: Final = (
    "adamw", "adamw8bit", "adam8bit", "lion", "lion8bit",
    "adafactor", "adagrad", "prodigy", "prodigy8bit", "automagic",
)  # fmt: skip
PRIORITIES: Final = ("high", "normal", "low")

# Ranges and defaults of the flux1 ai-toolkit input (civitai-api.md "Training step").
STEPS_MIN, STEPS_MAX, STEPS_DEFAULT = 1, 10000, 2000
EPOCHS_MIN, EPOCHS_MAX, EPOCHS_DEFAULT = 1, 20, 10  # the schema allows 200; the docs say 20
BATCH_SIZE: Final = 1  # fixed for flux1
LR_MIN, LR_MAX, LR_DEFAULT = 0.0, 1.0, 0.0001
LR_ADVISED_MAX: Final = 0.0005  # above this Flux LoRAs tend to burn: a warning, not an error
NETWORK_MIN, NETWORK_MAX, NETWORK_DIM_DEFAULT = 1, 256, 16
NOISE_OFFSET_MIN, NOISE_OFFSET_MAX, NOISE_OFFSET_DEFAULT = 0.0, 1.0, 0.0
KEEP_TOKENS_MIN, KEEP_TOKENS_MAX, KEEP_TOKENS_DEFAULT = 0, 10, 0
LR_SCHEDULER_DEFAULT: Final = "cosine"
OPTIMIZER_DEFAULT: Final = "adamw8bit"
SAMPLE_STRENGTH_SERVER_DEFAULT: Final = 1.0  # what the orchestrator uses when strength is unset
MAX_TAGS, MAX_TAG_LENGTH = 10, 200


def blob_air(blob_id: str) -> str:
    """The AIR of an orchestrator blob, as training data items reference uploads."""
    return f"urn:air:other:other:orchestrator:blob@{blob_id}"


def epoch_air(model_blob_id: str) -> str:
    """The AIR of a trained epoch, usable as a LoRA in Civitai generation or ``continueFrom``."""
    return f"urn:air:flux1:lora:orchestrator:blob@{model_blob_id}"


def air_ecosystem_and_type(air: str) -> tuple[str | None, str | None] | None:
    """``(ecosystem, type)`` of an AIR, or None when the text is not an AIR at all."""
    match = AIR_PATTERN.match(air)
    if match is None or not air.startswith("urn:air:"):
        return None
    return match.group("ecosystem"), match.group("type")


# --- Requests (strict) -------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """The body to send: camelCase, no None values."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ZipTrainingData(_Request):
    type: Literal["zip"] = "zip"
    source_url: str
    count: int = Field(ge=1)

    @field_validator("source_url")
    @classmethod
    def _must_match_air_pattern(cls, value: str) -> str:
        if not AIR_PATTERN.match(value):
            raise ValueError(
                "the zip URL must match the orchestrator's AIR pattern: https on the default port, "
                "letters, digits and _ - / . in the path, no query string"
            )
        return value


class BlobTrainingItem(_Request):
    air: str
    caption: str | None = None


class BlobsTrainingData(_Request):
    type: Literal["blobs"] = "blobs"
    items: list[BlobTrainingItem] = Field(min_length=1)


TrainingData = Annotated[ZipTrainingData | BlobsTrainingData, Field(discriminator="type")]


class TrainingSamples(_Request):
    prompts: list[str] = Field(default_factory=list)
    negative_prompt: str | None = None
    cfg_scale: float | None = Field(default=None, ge=0)
    strength: float | None = Field(default=None, ge=0)


class Flux1TrainingInput(_Request):
    """``Flux1DevAIToolkitTrainingInput`` / ``Flux1SchnellAIToolkitTrainingInput``.

    The two variants share every field, range and default; the variant fixes the base model.
    """

    engine: Literal["ai-toolkit"] = "ai-toolkit"
    ecosystem: Literal["flux1"] = "flux1"
    model_variant: Literal["dev", "schnell"]
    training_data: TrainingData
    # Always sent: without steps the orchestrator falls back to a legacy flat per-epoch price.
    steps: int = Field(default=STEPS_DEFAULT, ge=STEPS_MIN, le=STEPS_MAX)
    epochs: int = Field(default=EPOCHS_DEFAULT, ge=EPOCHS_MIN, le=EPOCHS_MAX)
    batch_size: Literal[1] = BATCH_SIZE
    lr: float = Field(default=LR_DEFAULT, gt=LR_MIN, le=LR_MAX)
    train_text_encoder: bool = False
    lr_scheduler: Literal["constant", "constant_with_warmup", "cosine", "linear", "step"] = "cosine"
    optimizer_type: Literal[
        "adamw", "adamw8bit", "adam8bit", "lion", "lion8bit",
        "adafactor", "adagrad", "prodigy", "prodigy8bit", "automagic",
    ] = "adamw8bit"  # fmt: skip
    network_dim: int = Field(default=NETWORK_DIM_DEFAULT, ge=NETWORK_MIN, le=NETWORK_MAX)
    # None means "same as network_dim"; filled in below so the body states it explicitly.
    network_alpha: int | None = Field(default=None, ge=NETWORK_MIN, le=NETWORK_MAX)
    noise_offset: float = Field(default=NOISE_OFFSET_DEFAULT, ge=NOISE_OFFSET_MIN, le=NOISE_OFFSET_MAX)
    flip_augmentation: bool = False
    shuffle_tokens: bool = False
    keep_tokens: int = Field(default=KEEP_TOKENS_DEFAULT, ge=KEEP_TOKENS_MIN, le=KEEP_TOKENS_MAX)
    trigger_word: str | None = None
    continue_from: str | None = None
    samples: TrainingSamples = Field(default_factory=TrainingSamples)

    @model_validator(mode="after")
    def _alpha_defaults_to_dim(self) -> Flux1TrainingInput:
        if self.network_alpha is None:
            self.network_alpha = self.network_dim
        return self

    @field_validator("continue_from")
    @classmethod
    def _flux1_lora_only(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith(FLUX1_LORA_AIR_PREFIX) and AIR_PATTERN.match(value)):
            raise ValueError(f"continueFrom must be the AIR of a flux1 LoRA ({FLUX1_LORA_AIR_PREFIX}…)")
        return value


class TrainingStepTemplate(_Request):
    step_type: Literal["training"] = Field(default="training", alias="$type")
    name: str | None = None
    # Civitai's own training submits use normal priority and two retries.
    priority: Literal["high", "normal", "low"] | None = "normal"
    timeout: str | None = None  # .NET time span, e.g. "02:00:00"
    retries: int | None = Field(default=2, ge=0)
    metadata: dict[str, Any] | None = None
    input: Flux1TrainingInput


class WorkflowCallback(_Request):
    url: str
    type: list[str] = Field(default_factory=lambda: ["workflow:*"], min_length=1)
    detailed: bool | None = False

    @field_validator("type")
    @classmethod
    def _known_event_shape(cls, value: list[str]) -> list[str]:
        bad = [event for event in value if not CALLBACK_EVENT_PATTERN.match(event)]
        if bad:
            raise ValueError(f"callback event types must look like 'workflow:*' or 'step:succeeded': {bad}")
        return value


class WorkflowTemplate(_Request):
    steps: list[TrainingStepTemplate] = Field(min_length=1)
    callbacks: list[WorkflowCallback] | None = None
    tags: list[str] | None = Field(default=None, max_length=MAX_TAGS)
    metadata: dict[str, Any] | None = None
    # The idempotency key: a repeat submit with the same id returns the existing workflow.
    external_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=EXTERNAL_ID_PATTERN)

    @field_validator("tags")
    @classmethod
    def _tags_short_and_unique(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if any(len(tag) > MAX_TAG_LENGTH or not tag for tag in value):
            raise ValueError(f"every tag must be 1–{MAX_TAG_LENGTH} characters")
        if len(set(value)) != len(value):
            raise ValueError("tags must be unique")
        return value


# --- Responses (lenient) -----------------------------------------------------------------------

_unknown_seen: set[tuple[str, str]] = set()


def _note_unknown(kind: str, value: str, known: frozenset[str]) -> None:
    """Log, once per process, an enum value this code does not know yet."""
    key = (kind, value)
    if value.lower() not in known and key not in _unknown_seen:
        _unknown_seen.add(key)
        log.warning("orchestrator sent an unknown %s %r; carrying it as is", kind, value)


def _lenient_datetime(value: Any) -> Any:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    log.warning("orchestrator sent an unparseable date %r; ignoring it", value)
    return None


LenientDatetime = Annotated[datetime | None, BeforeValidator(_lenient_datetime)]


class WorkflowStatus:
    """Known workflow/step/job statuses. Values are kept as plain strings."""

    UNASSIGNED: Final = "unassigned"
    PREPARING: Final = "preparing"
    SCHEDULED: Final = "scheduled"
    PROCESSING: Final = "processing"
    SUCCEEDED: Final = "succeeded"
    FAILED: Final = "failed"
    EXPIRED: Final = "expired"
    CANCELED: Final = "canceled"
    TERMINAL: Final = frozenset({SUCCEEDED, FAILED, EXPIRED, CANCELED})
    KNOWN: Final = frozenset({UNASSIGNED, PREPARING, SCHEDULED, PROCESSING}) | TERMINAL


def is_terminal(status: str | None) -> bool:
    """Whether a status never changes again (succeeded, failed, expired, canceled)."""
    return status is not None and status.lower() in WorkflowStatus.TERMINAL


class ModerationStatus:
    EVALUATING: Final = "evaluating"
    UNDER_REVIEW: Final = "underreview"  # compared lower-cased: the docs' examples capitalise
    APPROVED: Final = "approved"
    REJECTED: Final = "rejected"
    KNOWN: Final = frozenset({EVALUATING, UNDER_REVIEW, APPROVED, REJECTED})


class _Response(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


def _status_field(kind: str, known: frozenset[str]) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, str):
            _note_unknown(kind, value, known)
        return value

    return BeforeValidator(check)


Status = Annotated[str | None, _status_field("status", WorkflowStatus.KNOWN)]


class Blob(_Response):
    type: str | None = None
    id: str = ""  # required by the spec; a blob without one is treated as unavailable
    available: bool = False
    url: str | None = None
    url_expires_at: LenientDatetime = None
    blocked_reason: str | None = None

    @property
    def air(self) -> str:
        return blob_air(self.id)


class TrainingEpoch(_Response):
    """``TrainingOutputEpochResult``: one saved checkpoint and its sample images."""

    epoch_number: int = 0
    model: Blob | None = None
    samples: list[Blob] = Field(default_factory=list)
    trace_url: str | None = None

    @property
    def available(self) -> bool:
        return self.model is not None and self.model.available and bool(self.model.id)

    @property
    def air(self) -> str | None:
        """The AIR to use this epoch as a LoRA, once its model exists."""
        return epoch_air(self.model.id) if self.model is not None else None


class TrainingOutput(_Response):
    moderation_status: Annotated[str | None, _status_field("moderationStatus", ModerationStatus.KNOWN)] = None
    epochs: list[TrainingEpoch] = Field(default_factory=list)

    def moderation_is(self, status: str) -> bool:
        """Case-insensitive comparison: the docs say ``underReview``, examples ``UnderReview``."""
        return (self.moderation_status or "").lower() == status.lower()

    @property
    def rejected(self) -> bool:
        return self.moderation_is(ModerationStatus.REJECTED)

    @property
    def under_review(self) -> bool:
        return self.moderation_is(ModerationStatus.UNDER_REVIEW)

    def available_epochs(self) -> list[TrainingEpoch]:
        return sorted((e for e in self.epochs if e.available), key=lambda e: e.epoch_number)


class QueuePosition(_Response):
    support: str | None = None
    preceding_jobs: int | None = None
    estimated_start_at: LenientDatetime = None
    estimated_complete_at: LenientDatetime = None


class StepJob(_Response):
    """An entry of the older ``jobs[]`` shape of a step."""

    id: str | None = None
    status: Status = None
    reason: str | None = None
    blocked_reason: str | None = None
    queue_position: QueuePosition | None = None


class WorkflowStep(_Response):
    step_type: str | None = Field(default=None, alias="$type")
    name: str | None = None
    status: Status = None
    priority: str | None = None
    started_at: LenientDatetime = None
    completed_at: LenientDatetime = None
    estimated_progress_rate: float | None = None
    queue_position: QueuePosition | None = None
    jobs: list[StepJob] = Field(default_factory=list)
    blocked_reason: str | None = None
    input: dict[str, Any] | None = None
    # Any step's output parses (every field is optional); only training steps are read.
    output: TrainingOutput | None = None

    def current_queue_position(self) -> QueuePosition | None:
        """The step's queue position, falling back to the older ``jobs[].queuePosition``."""
        if self.queue_position is not None:
            return self.queue_position
        return next((job.queue_position for job in self.jobs if job.queue_position is not None), None)

    def failure_reasons(self) -> list[str]:
        """Why the step failed, as the orchestrator said (``jobs[].reason``, ``blockedReason``)."""
        reasons = [r for job in self.jobs for r in (job.reason, job.blocked_reason) if r]
        if self.blocked_reason:
            reasons.append(self.blocked_reason)
        return list(dict.fromkeys(reasons))


class WorkflowCost(_Response):
    base: float | None = None
    factors: dict[str, float] | None = None
    fixed: dict[str, float] | None = None
    tips: dict[str, Any] | None = None
    fees: dict[str, float] | None = None
    total: float | None = None


class Transaction(_Response):
    type: str | None = None  # debit | credit
    amount: float = 0
    account_type: str | None = None


class Transactions(_Response):
    items: list[Transaction] = Field(default_factory=list, alias="list")
    insufficient_buzz: bool | None = None

    def debited(self) -> float:
        """Buzz taken minus Buzz given back."""
        sign = {"debit": 1, "credit": -1}
        return sum(sign.get((t.type or "").lower(), 0) * t.amount for t in self.items)


class Workflow(_Response):
    id: str | None = None
    status: Status = None
    created_at: LenientDatetime = None
    started_at: LenientDatetime = None
    completed_at: LenientDatetime = None
    external_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    steps: list[WorkflowStep] = Field(default_factory=list)
    callbacks: list[dict[str, Any]] | None = None
    cost: WorkflowCost | None = None
    transactions: Transactions | None = None

    @property
    def terminal(self) -> bool:
        return is_terminal(self.status)

    def training_step(self) -> WorkflowStep | None:
        return next((s for s in self.steps if s.step_type == "training"), None)

    def training_output(self) -> TrainingOutput | None:
        step = self.training_step()
        return step.output if step is not None else None

    def available_epochs(self) -> list[TrainingEpoch]:
        """Epochs whose model can be downloaded, in epoch order."""
        output = self.training_output()
        return output.available_epochs() if output is not None else []


class WorkflowPage(_Response):
    next: str | None = None
    items: list[Workflow] = Field(default_factory=list)


class CallbackEvent(_Response):
    """A callback payload: workflow, step or job event, told apart by ``$type`` or its fields."""

    event_type: str | None = Field(default=None, alias="$type")
    workflow_id: str
    status: Status = None
    timestamp: LenientDatetime = None
    name: str | None = None  # step events
    step_name: str | None = None  # job events
    job_id: str | None = None
    progress: float | None = None
    reason: str | None = None
    blocked_reason: str | None = None
    details: dict[str, Any] | None = None

    @property
    def scope(self) -> str:
        """``workflow``, ``step`` or ``job``."""
        kind = (self.event_type or "").lower()
        if kind in ("workflow", "step", "job"):
            return kind
        if self.job_id is not None:
            return "job"
        return "step" if self.name is not None else "workflow"


class ProblemDetails(_Response):
    """RFC 7807 problem+json; ``errors`` is present on validation problems."""

    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    errors: dict[str, list[str]] | None = None

    @field_validator("errors", mode="before")
    @classmethod
    def _messages_as_lists(cls, value: Any) -> Any:
        # Lenient: a single message instead of a list still counts.
        if isinstance(value, dict):
            return {str(k): v if isinstance(v, list) else [str(v)] for k, v in value.items()}
        return None


ValidationProblemDetails = ProblemDetails
