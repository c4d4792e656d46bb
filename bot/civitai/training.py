"""The training options a member chose, checked locally before anything is sent.

``TrainingOptions.from_user`` takes the Discord option names (``steps``, ``network_dim``,
``optimizer``…) with None meaning "not given", applies the defaults of ``civitai-api.md`` and
reports every problem at once in a ``TrainingInputError`` whose messages name the option, its
allowed range or choices and the value given. The options exist before the dataset (so
``/train`` can refuse bad options before downloading anything); ``to_training_input`` adds the
training data and yields the request model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from . import models as m
from .errors import TrainingInputError

# The bot's own guards where the orchestrator publishes no limit: every sample prompt is rendered
# at every epoch and billed, and the prompts are shown back in Discord messages.
MAX_SAMPLE_PROMPTS = 10
MAX_PROMPT_LENGTH = 1000
SAMPLE_CFG_MIN, SAMPLE_CFG_MAX = 0.0, 30.0
SAMPLE_STRENGTH_MIN, SAMPLE_STRENGTH_MAX = 0.0, 2.0
# Job events come per epoch: they are the earliest hint that a checkpoint became available.
DEFAULT_CALLBACK_EVENTS = ("workflow:*", "step:*", "job:*")


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


class _Checker:
    """Collects every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def integer(self, name: str, value: Any, low: int, high: int, default: int, where: str = "") -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, f"{name} must be a whole number between {low} and {high}{where} (you gave {_shown(value)})")
            return default
        if not low <= value <= high:
            self.fail(name, f"{name} must be between {low} and {high}{where} (you gave {value})")
        return value

    def number(
        self, name: str, value: Any, low: float, high: float, default: float, *, above_low: bool = False
    ) -> float:
        if value is None:
            return default
        lower = f"greater than {low:g}" if above_low else f"at least {low:g}"
        rule = f"{name} must be {lower} and at most {high:g}"
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(name, f"{rule} (you gave {_shown(value)})")
            return default
        too_low = value <= low if above_low else value < low
        if too_low or value > high:
            self.fail(name, f"{rule} (you gave {_shown(value)})")
        return float(value)

    def choice(self, name: str, value: Any, choices: Sequence[str], default: str) -> str:
        if value is None:
            return default
        if value not in choices:
            self.fail(name, f"{name} must be one of {', '.join(choices)} (you gave {_shown(value)})")
            return default
        return str(value)

    def flag(self, name: str, value: Any) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            self.fail(name, f"{name} must be true or false (you gave {_shown(value)})")
            return False
        return value

    def text(self, name: str, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(name, f"{name} must be text (you gave {_shown(value)})")
            return None
        return value.strip() or None


OPTION_NAMES = (
    "variant", "steps", "epochs", "lr", "network_dim", "network_alpha", "lr_scheduler", "optimizer",
    "noise_offset", "flip_augmentation", "shuffle_tokens", "keep_tokens", "train_text_encoder",
    "trigger_word", "continue_from", "sample_prompts", "negative_prompt", "sample_cfg", "sample_strength",
)  # fmt: skip
"""The Discord option names, in the order ``/train`` shows them; errors are listed in this order."""


def _continue_from_problem(air: str) -> str | None:
    """Why ``air`` cannot be continued with a flux1 run, or None when it can."""
    parsed = m.air_ecosystem_and_type(air)
    wanted = f"continue_from must be the AIR of a flux1 LoRA ({m.FLUX1_LORA_AIR_PREFIX}…)"
    if parsed is None:
        return f"{wanted}; {_shown(air)} is not an AIR"
    ecosystem, kind = parsed
    if ecosystem != "flux1":
        return (
            f"{wanted}; {air} is for {ecosystem or 'an unknown base model'}: "
            "a LoRA of another base model cannot be trained further on Flux.1"
        )
    if kind != "lora":
        return f"{wanted}; {air} is a flux1 {kind or 'resource'}, not a LoRA"
    return None


def _split_prompts(value: str | Sequence[str] | None) -> list[str]:
    """Prompts arrive from Discord as one string separated by ``|``."""
    if value is None:
        return []
    parts = value.split("|") if isinstance(value, str) else list(value)
    return [p.strip() for p in parts if isinstance(p, str) and p.strip()]


@dataclass(frozen=True)
class TrainingOptions:
    """Validated options with every default resolved (``network_alpha`` included)."""

    variant: str
    steps: int
    epochs: int
    lr: float
    network_dim: int
    network_alpha: int
    lr_scheduler: str
    optimizer: str
    noise_offset: float
    flip_augmentation: bool
    shuffle_tokens: bool
    keep_tokens: int
    train_text_encoder: bool
    trigger_word: str | None
    continue_from: str | None
    sample_prompts: tuple[str, ...]
    negative_prompt: str | None
    sample_cfg: float | None
    sample_strength: float | None

    @classmethod
    def from_user(
        cls,
        *,
        variant: str | None = None,
        steps: int | None = None,
        epochs: int | None = None,
        lr: float | None = None,
        network_dim: int | None = None,
        network_alpha: int | None = None,
        lr_scheduler: str | None = None,
        optimizer: str | None = None,
        noise_offset: float | None = None,
        flip_augmentation: bool | None = None,
        shuffle_tokens: bool | None = None,
        keep_tokens: int | None = None,
        train_text_encoder: bool | None = None,
        trigger_word: str | None = None,
        continue_from: str | None = None,
        sample_prompts: str | Sequence[str] | None = None,
        negative_prompt: str | None = None,
        sample_cfg: float | None = None,
        sample_strength: float | None = None,
        max_steps: int | None = None,
        max_epochs: int | None = None,
    ) -> TrainingOptions:
        """Check and complete the options; raise ``TrainingInputError`` listing every problem.

        ``max_steps``/``max_epochs`` are a server's own caps (``/admin limits``), tighter than
        the orchestrator's.
        """
        c = _Checker()
        steps_cap = min(m.STEPS_MAX, max_steps) if max_steps else m.STEPS_MAX
        epochs_cap = min(m.EPOCHS_MAX, max_epochs) if max_epochs else m.EPOCHS_MAX
        dim = c.integer("network_dim", network_dim, m.NETWORK_MIN, m.NETWORK_MAX, m.NETWORK_DIM_DEFAULT)
        alpha = c.integer("network_alpha", network_alpha, m.NETWORK_MIN, m.NETWORK_MAX, dim)
        continue_air = c.text("continue_from", continue_from)
        if continue_air is not None and (problem := _continue_from_problem(continue_air)):
            c.fail("continue_from", problem)
        prompts = _split_prompts(sample_prompts)
        if len(prompts) > MAX_SAMPLE_PROMPTS:
            c.fail(
                "sample_prompts",
                f"sample_prompts may hold at most {MAX_SAMPLE_PROMPTS} prompts separated by | "
                f"(you gave {len(prompts)})",
            )
        if any(len(p) > MAX_PROMPT_LENGTH for p in prompts):
            c.fail("sample_prompts", f"each of sample_prompts must be at most {MAX_PROMPT_LENGTH} characters")
        options = cls(
            variant=c.choice("variant", variant, m.VARIANTS, "dev"),
            steps=c.integer("steps", steps, m.STEPS_MIN, steps_cap, m.STEPS_DEFAULT, _cap_note(steps_cap, m.STEPS_MAX)),
            epochs=c.integer(
                "epochs", epochs, m.EPOCHS_MIN, epochs_cap, m.EPOCHS_DEFAULT, _cap_note(epochs_cap, m.EPOCHS_MAX)
            ),
            lr=c.number("lr", lr, m.LR_MIN, m.LR_MAX, m.LR_DEFAULT, above_low=True),
            network_dim=dim,
            network_alpha=alpha,
            lr_scheduler=c.choice("lr_scheduler", lr_scheduler, m.LR_SCHEDULERS, m.LR_SCHEDULER_DEFAULT),
            optimizer=c.choice("optimizer", optimizer, m.OPTIMIZERS, m.OPTIMIZER_DEFAULT),
            noise_offset=c.number(
                "noise_offset", noise_offset, m.NOISE_OFFSET_MIN, m.NOISE_OFFSET_MAX, m.NOISE_OFFSET_DEFAULT
            ),
            flip_augmentation=c.flag("flip_augmentation", flip_augmentation),
            shuffle_tokens=c.flag("shuffle_tokens", shuffle_tokens),
            keep_tokens=c.integer(
                "keep_tokens", keep_tokens, m.KEEP_TOKENS_MIN, m.KEEP_TOKENS_MAX, m.KEEP_TOKENS_DEFAULT
            ),
            train_text_encoder=c.flag("train_text_encoder", train_text_encoder),
            trigger_word=c.text("trigger_word", trigger_word),
            continue_from=continue_air,
            sample_prompts=tuple(prompts),
            negative_prompt=c.text("negative_prompt", negative_prompt),
            sample_cfg=None
            if sample_cfg is None
            else c.number("sample_cfg", sample_cfg, SAMPLE_CFG_MIN, SAMPLE_CFG_MAX, 0.0),
            sample_strength=None
            if sample_strength is None
            else c.number("sample_strength", sample_strength, SAMPLE_STRENGTH_MIN, SAMPLE_STRENGTH_MAX, 1.0),
        )
        if c.errors:
            raise TrainingInputError({name: c.errors[name] for name in OPTION_NAMES if name in c.errors})
        return options

    def as_dict(self) -> dict[str, Any]:
        """Plain values to store; ``from_user(**as_dict())`` gives the same options back."""
        data = asdict(self)
        data["sample_prompts"] = list(self.sample_prompts)
        return data

    def warnings(self) -> list[str]:
        """Choices that are allowed but usually a mistake, for the confirmation message."""
        out = []
        if self.lr > m.LR_ADVISED_MAX:
            out.append(f"lr {self.lr:g} is above {m.LR_ADVISED_MAX:g}: Flux LoRAs often burn at such rates")
        if self.keep_tokens and not self.shuffle_tokens:
            out.append("keep_tokens does nothing unless shuffle_tokens is on")
        return out

    def to_training_input(self, training_data: m.ZipTrainingData | m.BlobsTrainingData) -> m.Flux1TrainingInput:
        samples = m.TrainingSamples(
            prompts=list(self.sample_prompts),
            negative_prompt=self.negative_prompt,
            cfg_scale=self.sample_cfg,
            strength=self.sample_strength,
        )
        return m.Flux1TrainingInput(
            model_variant=self.variant,  # type: ignore[arg-type]  # checked against VARIANTS
            training_data=training_data,
            steps=self.steps,
            epochs=self.epochs,
            lr=self.lr,
            train_text_encoder=self.train_text_encoder,
            lr_scheduler=self.lr_scheduler,  # type: ignore[arg-type]
            optimizer_type=self.optimizer,  # type: ignore[arg-type]
            network_dim=self.network_dim,
            network_alpha=self.network_alpha,
            noise_offset=self.noise_offset,
            flip_augmentation=self.flip_augmentation,
            shuffle_tokens=self.shuffle_tokens,
            keep_tokens=self.keep_tokens,
            trigger_word=self.trigger_word,
            continue_from=self.continue_from,
            samples=samples,
        )


def _cap_note(cap: int, orchestrator_max: int) -> str:
    return " on this server" if cap < orchestrator_max else ""


def build_training_input(
    training_data: m.ZipTrainingData | m.BlobsTrainingData, **options: Any
) -> m.Flux1TrainingInput:
    """``TrainingOptions.from_user(**options).to_training_input(training_data)`` in one call."""
    return TrainingOptions.from_user(**options).to_training_input(training_data)


def training_workflow(
    training_input: m.Flux1TrainingInput,
    *,
    external_id: str,
    callback_url: str | None = None,
    tags: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
    callback_events: Sequence[str] = DEFAULT_CALLBACK_EVENTS,
) -> m.WorkflowTemplate:
    """The workflow the bot submits: one training step, an idempotency key, optional callback."""
    callbacks = [m.WorkflowCallback(url=callback_url, type=list(callback_events))] if callback_url else None
    return m.WorkflowTemplate(
        steps=[m.TrainingStepTemplate(input=training_input)],
        callbacks=callbacks,
        tags=list(tags) or None,
        metadata=metadata,
        external_id=external_id,
    )
