"""What a member asks a generation for, checked with the orchestrator's limits and clear messages.

One generation renders one prompt with one seed in one or more columns: Try it has one column
(an epoch's LoRA at a strength); Compare has one per chosen epoch plus the base model alone.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from bot.errors import UserFacingError

MAX_PROMPT = 1000  # Flux1SdCppImageGenInput.prompt
MAX_QUANTITY = 4
MAX_SEED = 2**32 - 1
MIN_STRENGTH, MAX_STRENGTH = -2.0, 2.0
DEFAULT_STRENGTH = 1.0


class GenerationOptionError(UserFacingError):
    def __init__(self, message: str) -> None:
        super().__init__(message, title="Check the generation settings")


class Size(StrEnum):
    SQUARE = "square"
    PORTRAIT = "portrait"
    LANDSCAPE = "landscape"

    @property
    def dimensions(self) -> tuple[int, int]:
        """Width and height within the 832–1216 range flux1 sd.cpp accepts."""
        return {"square": (1024, 1024), "portrait": (832, 1216), "landscape": (1216, 832)}[self.value]

    @property
    def label(self) -> str:
        width, height = self.dimensions
        return f"{self.value} {width}×{height}"


@dataclass(frozen=True)
class Column:
    """One image set of a generation: a label and the LoRAs (AIR → strength) it uses."""

    label: str
    loras: Mapping[str, float]
    epoch: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "loras": dict(self.loras), "epoch": self.epoch}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Column:
        return cls(str(data["label"]), {str(k): float(v) for k, v in data["loras"].items()}, data.get("epoch"))


@dataclass(frozen=True)
class GenerationOptions:
    prompt: str
    negative_prompt: str | None
    size: Size
    seed: int
    quantity: int
    variant: str
    columns: tuple[Column, ...] = field(default_factory=tuple)

    def with_new_seed(self) -> GenerationOptions:
        return replace(self, seed=new_seed())

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "size": self.size.value,
            "seed": self.seed,
            "quantity": self.quantity,
            "variant": self.variant,
            "columns": [column.as_dict() for column in self.columns],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationOptions:
        return cls(
            prompt=data["prompt"],
            negative_prompt=data.get("negative_prompt"),
            size=Size(data["size"]),
            seed=int(data["seed"]),
            quantity=int(data["quantity"]),
            variant=str(data["variant"]),
            columns=tuple(Column.from_dict(c) for c in data["columns"]),
        )

    @property
    def images(self) -> int:
        return self.quantity * len(self.columns)


def new_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def parse_prompt(text: str, *, name: str = "prompt", required: bool = True) -> str | None:
    text = text.strip()
    if not text:
        if required:
            raise GenerationOptionError(
                f"The {name} is empty. Describe the picture you want, e.g. `sks dog on a beach`."
            )
        return None
    if len(text) > MAX_PROMPT:
        raise GenerationOptionError(f"The {name} has {len(text)} characters; Civitai takes at most {MAX_PROMPT}.")
    return text


def parse_seed(text: str | int | None) -> int:
    """A seed from 0 to 4294967295; blank or ``random`` picks one."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "random")):
        return new_seed()
    try:
        seed = int(text)
    except ValueError:
        raise GenerationOptionError(
            f"The seed `{str(text)[:40]}` is not a whole number. "
            f"Use 0 to {MAX_SEED}, or leave it blank for a random one."
        ) from None
    if not 0 <= seed <= MAX_SEED:
        raise GenerationOptionError(f"The seed must be between 0 and {MAX_SEED} (you gave {seed}).")
    return seed


def parse_strength(text: str | float | None) -> float:
    if text is None or (isinstance(text, str) and not text.strip()):
        return DEFAULT_STRENGTH
    try:
        strength = float(text)
    except ValueError:
        raise GenerationOptionError(
            f"The LoRA strength `{str(text)[:40]}` is not a number. Use e.g. 1.0 (full) or 0.7 (lighter)."
        ) from None
    if not MIN_STRENGTH <= strength <= MAX_STRENGTH:
        raise GenerationOptionError(
            f"The LoRA strength must be between {MIN_STRENGTH:g} and {MAX_STRENGTH:g} (you gave {strength:g}); "
            "1.0 is the usual value."
        )
    return strength


def parse_quantity(text: str | int | None) -> int:
    if text is None or (isinstance(text, str) and not text.strip()):
        return 1
    try:
        quantity = int(text)
    except ValueError:
        raise GenerationOptionError(f"The number of images must be 1 to {MAX_QUANTITY}.") from None
    if not 1 <= quantity <= MAX_QUANTITY:
        raise GenerationOptionError(f"The number of images must be 1 to {MAX_QUANTITY} (you asked for {quantity}).")
    return quantity


def parse_size(text: str | None) -> Size:
    if text is None or not text.strip():
        return Size.SQUARE
    try:
        return Size(text.strip().lower())
    except ValueError:
        raise GenerationOptionError("The size must be `square`, `portrait` or `landscape`.") from None
