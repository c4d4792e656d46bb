"""Request validation with the orchestrator's limits, answering like ASP.NET's
``ValidationProblemDetails``: ``{"steps[0].input.steps": ["The field steps must be between 1 and 10000."]}``.

The limits are a data table (civitai-api.md), deliberately independent of the client's models so
the two can catch each other's mistakes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.civitai.pricing import estimate_price

# The consumer API's AIR pattern, rewritten from .NET named groups to Python's.
AIR_PATTERN = re.compile(
    r"^(?:urn:)?(?:air:)?(?:(?P<ecosystem>[a-zA-Z0-9_\-\/]+):)?(?:(?P<type>[a-zA-Z0-9_\-\/]+):)?"
    r"(?P<source>[a-zA-Z0-9_\-\/]+):(?P<id>[a-zA-Z0-9_\-\/\.]+)(?:@(?P<version>[a-zA-Z0-9_\-\/.=,%+:]+))?"
    r"(?:\.(?P<format>[a-zA-Z0-9_\-]+))?$"
)
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
BLOB_AIR_PREFIX = "urn:air:other:other:orchestrator:blob@"
STATUSES = ("unassigned", "preparing", "scheduled", "processing", "succeeded", "failed", "expired", "canceled")
CALLBACK_TYPES = frozenset(f"{scope}:{s}" for scope in ("workflow", "step", "job") for s in ("*", *STATUSES))
PRIORITIES = ("high", "normal", "low")

# field: (kind, minimum, maximum) or (kind, allowed values) — ranges of the flux1 ai-toolkit input.
INPUT_FIELDS: dict[str, tuple[Any, ...]] = {
    "steps": ("int", 1, 10000),
    "epochs": ("int", 1, 20),
    "batchSize": ("int", 1, 1),
    "lr": ("number", 0, 1),
    "textEncoderLr": ("number", 0, 1),
    "networkDim": ("int", 1, 256),
    "networkAlpha": ("int", 1, 256),
    "noiseOffset": ("number", 0, 1),
    "keepTokens": ("int", 0, 10),
    "trainTextEncoder": ("bool",),
    "flipAugmentation": ("bool",),
    "shuffleTokens": ("bool",),
    "triggerWord": ("str",),
    "lrScheduler": ("enum", ("constant", "constant_with_warmup", "cosine", "linear", "step")),
    "optimizerType": (
        "enum",
        ("adamw", "adamw8bit", "adam8bit", "lion", "lion8bit", "adafactor", "adagrad", "prodigy", "prodigy8bit",
         "automagic"),
    ),
    "trace": ("enum", ("none", "logs", "events")),
}
INPUT_DEFAULTS: dict[str, Any] = {
    "epochs": 10, "batchSize": 1, "lr": 0.0001, "trainTextEncoder": False, "lrScheduler": "cosine",
    "optimizerType": "adamw8bit", "networkDim": 16, "noiseOffset": 0, "flipAugmentation": False,
    "shuffleTokens": False, "keepTokens": 0, "trace": "none",
}
DEFAULT_STEPS = 2000
LEGACY_BUZZ_PER_EPOCH = 200
# Read-only fields the server reports on every training input; ignored when a client sends them.
SERVER_FILLED: dict[str, Any] = {
    "storageBuzzPerEpoch": 20, "defaultSteps": DEFAULT_STEPS, "maxBatchSize": 1, "requiresAgeClassification": False,
}
INPUT_KEYS = frozenset({
    "engine", "ecosystem", "modelVariant", "trainingData", "samples", "continueFrom", "usesStepPricing",
    *INPUT_FIELDS, *SERVER_FILLED,
})
TEMPLATE_KEYS = frozenset({
    "metadata", "tags", "steps", "callbacks", "tips", "arguments", "nsfwLevel", "downloadPriority", "experimental",
    "allowMatureContent", "upgradeMode", "currencies", "ephemeral", "externalId",
})
STEP_KEYS = frozenset({"$type", "name", "priority", "timeout", "retries", "metadata", "input"})
SAMPLE_KEYS = frozenset({"prompts", "negativePrompt", "sourceImages", "cfgScale", "strength"})


@dataclass
class TrainingPlan:
    """What a valid submission asks for, with server defaults applied."""

    input: dict[str, Any]
    steps: int
    epochs: int
    prompts: list[str]
    blob_ids: list[str]
    base: int
    samples_buzz: int

    @property
    def total(self) -> int:
        return self.base + self.samples_buzz


@dataclass
class _Errors:
    by_field: dict[str, list[str]] = field(default_factory=dict)

    def add(self, key: str, message: str) -> None:
        self.by_field.setdefault(key, []).append(message)


def _check_value(errors: _Errors, key: str, name: str, value: Any, spec: tuple[Any, ...]) -> None:
    kind = spec[0]
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind == "bool" and not isinstance(value, bool):
        errors.add(key, f"The field {name} must be true or false.")
    elif kind == "str" and not isinstance(value, str):
        errors.add(key, f"The field {name} must be a string.")
    elif kind == "enum" and value not in spec[1]:
        errors.add(key, f"The value '{value}' is not valid for {name}. Valid values: {', '.join(spec[1])}.")
    elif kind == "int" and not is_int:
        errors.add(key, f"The field {name} must be an integer.")
    elif kind == "number" and not (is_int or isinstance(value, float)):
        errors.add(key, f"The field {name} must be a number.")
    elif kind in ("int", "number") and not spec[1] <= value <= spec[2]:
        errors.add(key, f"The field {name} must be between {spec[1]} and {spec[2]}.")


def blob_id_from_air(air: str) -> str:
    """Accepts the AIR urn, a ``/v2/consumer/blobs/{id}`` URL or a bare key (as the server does)."""
    if air.startswith(BLOB_AIR_PREFIX):
        return air[len(BLOB_AIR_PREFIX) :]
    if "/v2/consumer/blobs/" in air:
        return air.rsplit("/", 1)[-1]
    return air


def _check_training_data(errors: _Errors, key: str, data: Any, owns_blob: Callable[[str], bool]) -> list[str]:
    if not isinstance(data, dict):
        errors.add(key, "The trainingData field is required.")
        return []
    kind = data.get("type")
    if kind == "zip":
        extra = set(data) - {"type", "sourceUrl", "count"}
        for name in sorted(extra):
            errors.add(f"{key}.{name}", f"'{name}' is not a field of zip training data.")
        url = data.get("sourceUrl")
        if not isinstance(url, str) or not AIR_PATTERN.match(url):
            errors.add(f"{key}.sourceUrl", "The field sourceUrl must be an AIR or URL without port or query string.")
        _check_value(errors, f"{key}.count", "count", data.get("count"), ("int", 1, 100000))
        return []
    if kind == "blobs":
        items = data.get("items")
        if not isinstance(items, list) or not items:
            errors.add(f"{key}.items", "The field items must list at least one uploaded blob.")
            return []
        ids = []
        for i, item in enumerate(items):
            air = item.get("air") if isinstance(item, dict) else None
            caption = item.get("caption") if isinstance(item, dict) else None
            if not isinstance(air, str) or not owns_blob(blob_id_from_air(air)):
                errors.add(f"{key}.items[{i}].air", f"Blob '{air}' was not found.")
            elif caption is not None and not isinstance(caption, str):
                errors.add(f"{key}.items[{i}].caption", "The field caption must be a string.")
            else:
                ids.append(blob_id_from_air(air))
        return ids
    errors.add(f"{key}.type", "The field type must be 'zip' or 'blobs'.")
    return []


def _check_samples(errors: _Errors, key: str, samples: Any) -> list[str]:
    if samples is None:
        return []
    if not isinstance(samples, dict):
        errors.add(key, "The field samples must be an object.")
        return []
    for name in sorted(set(samples) - SAMPLE_KEYS):
        errors.add(f"{key}.{name}", f"'{name}' is not a field of samples.")
    prompts = samples.get("prompts") or []
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        errors.add(f"{key}.prompts", "The field prompts must be a list of strings.")
        return []
    for name in ("cfgScale", "strength"):
        if samples.get(name) is not None:
            _check_value(errors, f"{key}.{name}", name, samples[name], ("number", 0, 30))
    return list(prompts)


def _check_input(errors: _Errors, key: str, raw: Any, owns_blob: Callable[[str], bool]) -> TrainingPlan | None:
    if not isinstance(raw, dict):
        errors.add(key, "The input field is required.")
        return None
    if raw.get("engine") != "ai-toolkit":
        errors.add(f"{key}.engine", "The engine must be 'ai-toolkit'.")
    if raw.get("ecosystem") != "flux1":
        errors.add(f"{key}.ecosystem", "The ecosystem must be 'flux1'.")
    if raw.get("modelVariant") not in ("dev", "schnell"):
        errors.add(f"{key}.modelVariant", "The modelVariant field is required: 'dev' or 'schnell'.")
    for name in sorted(set(raw) - INPUT_KEYS):
        errors.add(f"{key}.{name}", f"'{name}' is not a field of the flux1 training input.")
    for name, spec in INPUT_FIELDS.items():
        if raw.get(name) is not None:
            _check_value(errors, f"{key}.{name}", name, raw[name], spec)
    cont = raw.get("continueFrom")
    if cont is not None:
        match = AIR_PATTERN.match(cont) if isinstance(cont, str) else None
        if not match or match["ecosystem"] != "flux1" or match["type"] != "lora":
            errors.add(f"{key}.continueFrom", "The field continueFrom must be the AIR of a flux1 LoRA.")
    blob_ids = _check_training_data(errors, f"{key}.trainingData", raw.get("trainingData"), owns_blob)
    prompts = _check_samples(errors, f"{key}.samples", raw.get("samples"))
    if errors.by_field:
        return None
    steps_given = raw.get("steps") is not None
    epochs = raw.get("epochs") or INPUT_DEFAULTS["epochs"]
    steps = raw["steps"] if steps_given else DEFAULT_STEPS
    echo = {**INPUT_DEFAULTS, **{k: v for k, v in raw.items() if v is not None}, **SERVER_FILLED}
    echo.update(steps=steps, epochs=epochs, usesStepPricing=steps_given or raw.get("epochs") is None)
    echo.setdefault("networkAlpha", echo["networkDim"])
    if blob_ids:
        echo["trainingData"] = {
            "type": "blobs",
            "items": [{**item, "air": BLOB_AIR_PREFIX + bid} for item, bid in zip(raw["trainingData"]["items"],
                                                                                    blob_ids, strict=True)],
        }
    price = estimate_price(steps, epochs, len(prompts))
    base = price.training_buzz if echo["usesStepPricing"] else LEGACY_BUZZ_PER_EPOCH * epochs
    return TrainingPlan(echo, steps, epochs, prompts, blob_ids, base, price.samples_buzz)


def _check_envelope(errors: _Errors, body: dict[str, Any]) -> None:
    for name in sorted(set(body) - TEMPLATE_KEYS):
        errors.add(name, f"'{name}' is not a field of a workflow.")
    tags = body.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or len(tags) > 10:
            errors.add("tags", "At most 10 tags can be assigned to a workflow.")
        else:
            for i, tag in enumerate(tags):
                if not isinstance(tag, str) or not 0 < len(tag) <= 200:
                    errors.add(f"tags[{i}]", "Each tag must be a string of at most 200 characters.")
    ext = body.get("externalId")
    if ext is not None and not (isinstance(ext, str) and EXTERNAL_ID.match(ext)):
        errors.add("externalId", "The field externalId must be 1-128 characters of A-Z, a-z, 0-9, '_' or '-'.")
    if body.get("metadata") is not None and not isinstance(body["metadata"], dict):
        errors.add("metadata", "The field metadata must be an object.")
    callbacks = body.get("callbacks") or []
    if not isinstance(callbacks, list):
        errors.add("callbacks", "The field callbacks must be a list.")
        return
    for i, cb in enumerate(callbacks):
        url = cb.get("url") if isinstance(cb, dict) else None
        # The real service only calls https; the simulator also calls http (loopback tests).
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
            errors.add(f"callbacks[{i}].url", "The field url must be an absolute http(s) URL.")
        types = cb.get("type") if isinstance(cb, dict) else None
        if not isinstance(types, list) or not set(types) <= CALLBACK_TYPES:
            errors.add(f"callbacks[{i}].type", "The field type must list event types such as 'workflow:*'.")


def validate_template(
    body: Any, owns_blob: Callable[[str], bool]
) -> tuple[TrainingPlan | None, dict[str, list[str]]]:
    """The plan of a valid workflow template, or the field errors (``{}`` when valid)."""
    errors = _Errors()
    if not isinstance(body, dict):
        errors.add("$", "The request body must be a JSON object.")
        return None, errors.by_field
    _check_envelope(errors, body)
    steps = body.get("steps")
    if not isinstance(steps, list) or len(steps) != 1:
        errors.add("steps", "The simulator runs workflows of exactly one training step.")
        return None, errors.by_field
    step = steps[0]
    if not isinstance(step, dict) or step.get("$type") != "training":
        errors.add("steps[0].$type", "The simulator only runs steps of $type 'training'.")
        return None, errors.by_field
    for name in sorted(set(step) - STEP_KEYS):
        errors.add(f"steps[0].{name}", f"'{name}' is not a field of a workflow step.")
    if step.get("priority") is not None and step["priority"] not in PRIORITIES:
        errors.add("steps[0].priority", "The field priority must be high, normal or low.")
    if step.get("retries") is not None:
        _check_value(errors, "steps[0].retries", "retries", step["retries"], ("int", 0, 10))
    plan = _check_input(errors, "steps[0].input", step.get("input"), owns_blob)
    return (plan if not errors.by_field else None), errors.by_field
