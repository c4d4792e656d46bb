"""Simulated ``imageGen`` workflows: flux1 sd.cpp ``createImage`` steps with trained LoRAs.

Requests are checked with the published limits of ``Flux1SdCppImageGenInput``; a LoRA must be
the model blob of a trained epoch that still exists (a removed one is refused on ``loras``, as
an expired model is). Images are drawn deterministically from the prompt and the seed, with a
pattern per LoRA whose rings count its epoch and whose opacity is its strength: a person can
tell epochs apart, and strength 0 is the plain base image. The workflow succeeds at once.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw, ImageFont

from bot.civitai.simulator.state import WorkflowRecord, blob_json, iso, new_id, utcnow
from bot.civitai.simulator.validation import (
    AIR_PATTERN,
    STEP_KEYS,
    TrainingPlan,
    _check_envelope,
    _Errors,
)

if TYPE_CHECKING:
    from bot.civitai.simulator.server import Simulator

LORA_AIR_PREFIX = "urn:air:flux1:lora:orchestrator:blob@"
INPUT_KEYS = frozenset(
    {
        "engine",
        "ecosystem",
        "operation",
        "prompt",
        "negativePrompt",
        "width",
        "height",
        "seed",
        "quantity",
        "cfgScale",
        "steps",
        "sampleMethod",
        "schedule",
        "loras",
        "diffuserModel",
        "vaeModel",
        "clipLModel",
        "t5XXLModel",
        "outputFormat",
        "imageMetadata",
    }
)
MODEL_FIELDS = ("diffuserModel", "vaeModel", "clipLModel", "t5XXLModel")
RANGES = {"width": (832, 1216), "height": (832, 1216), "quantity": (1, 4), "steps": (4, 50)}
# A made-up rate: Civitai publishes none for sd.cpp flux1; ~4 Buzz per 1024² image at 28 steps.
BUZZ_PER_MEGAPIXEL_STEP = 4 / 28
PREVIEW_SCALE = 4  # images are rendered at a quarter of the asked size: small uploads in tests


@dataclass(frozen=True)
class LoraUse:
    blob_id: str
    strength: float


@dataclass(frozen=True)
class ImageStepPlan:
    prompt: str
    width: int
    height: int
    seed: int
    quantity: int
    steps: int
    loras: tuple[LoraUse, ...]
    input: dict[str, Any]

    @property
    def price(self) -> int:
        megapixels = self.width * self.height / 1024**2
        return max(1, math.ceil(self.quantity * megapixels * self.steps * BUZZ_PER_MEGAPIXEL_STEP))


def is_image_gen(body: Any) -> bool:
    steps = body.get("steps") if isinstance(body, dict) else None
    return (
        bool(steps)
        and isinstance(steps, list)
        and all(isinstance(s, dict) and s.get("$type") == "imageGen" for s in steps)
    )


def _check_step(errors: _Errors, key: str, step: dict[str, Any], lora_ok: Callable[[str], bool]) -> ImageStepPlan:
    for name in sorted(set(step) - STEP_KEYS):
        errors.add(f"{key}.{name}", f"'{name}' is not a field of a workflow step.")
    raw = step.get("input")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    where = f"{key}.input"
    for name in sorted(set(data) - INPUT_KEYS):
        errors.add(f"{where}.{name}", f"'{name}' is not a field of a flux1 sd.cpp image generation.")
    for name, wanted in (("engine", "sdcpp"), ("ecosystem", "flux1"), ("operation", "createImage")):
        if data.get(name) != wanted:
            errors.add(f"{where}.{name}", f"The simulator generates with {name} '{wanted}'.")
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or len(prompt) > 1000:
        errors.add(f"{where}.prompt", "The field prompt is required and holds at most 1000 characters.")
    for name in MODEL_FIELDS:
        if not isinstance(data.get(name), str) or not AIR_PATTERN.match(data[name]):
            errors.add(f"{where}.{name}", f"The field {name} must be an AIR.")
    values = {"width": 1024, "height": 1024, "quantity": 1, "steps": 28}
    for name, (low, high) in RANGES.items():
        value = data.get(name, values[name])
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            errors.add(f"{where}.{name}", f"The field {name} must be between {low} and {high}.")
        else:
            values[name] = value
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        errors.add(f"{where}.seed", "The field seed must be an integer.")
    loras: list[LoraUse] = []
    raw_loras = data.get("loras") or {}
    if not isinstance(raw_loras, dict):
        errors.add(f"{where}.loras", "The field loras must map AIRs to strengths.")
        raw_loras = {}
    for air, strength in raw_loras.items():
        if not isinstance(strength, int | float) or isinstance(strength, bool):
            errors.add(f"{where}.loras", f"The strength of {air} must be a number.")
        elif not air.startswith(LORA_AIR_PREFIX) or not lora_ok(air[len(LORA_AIR_PREFIX) :]):
            errors.add(f"{where}.loras", f"The resource {air} does not exist or is no longer available.")
        else:
            loras.append(LoraUse(air[len(LORA_AIR_PREFIX) :], float(strength)))
    return ImageStepPlan(
        prompt=prompt if isinstance(prompt, str) else "",
        width=values["width"], height=values["height"], seed=seed if isinstance(seed, int) else 0,
        quantity=values["quantity"], steps=values["steps"], loras=tuple(loras), input=dict(data),
    )  # fmt: skip


def validate_image_gen(
    body: dict[str, Any], lora_ok: Callable[[str], bool]
) -> tuple[list[ImageStepPlan], dict[str, list[str]]]:
    errors = _Errors()
    _check_envelope(errors, body)
    plans = [_check_step(errors, f"steps[{i}]", step, lora_ok) for i, step in enumerate(body["steps"])]
    return (plans if not errors.by_field else []), errors.by_field


def _seeded(*parts: object) -> random.Random:
    return random.Random(hashlib.sha256("|".join(map(str, parts)).encode()).digest())


def render_image(plan: ImageStepPlan, index: int, epochs: dict[str, tuple[int, str]]) -> bytes:
    """The same prompt and seed give the same picture; each LoRA adds rings (one per epoch)
    in its run's colour, as opaque as its strength."""
    width, height = plan.width // PREVIEW_SCALE, plan.height // PREVIEW_SCALE
    rng = _seeded(plan.prompt, plan.seed + index)
    top, bottom = (tuple(rng.randrange(30, 226) for _ in range(3)) for _ in range(2))
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), gradient)
    labels = []
    for lora in plan.loras:
        number, run = epochs.get(lora.blob_id, (1, lora.blob_id))
        strength = max(0.0, min(lora.strength, 1.0))
        labels.append(f"epoch {number} x{lora.strength:g}")
        if strength == 0:
            continue
        colour = tuple(_seeded(run).randrange(0, 256) for _ in range(3))
        overlay = image.copy()
        draw = ImageDraw.Draw(overlay)
        centre, step = (width // 2, height // 2), max(4, min(width, height) // (2 * number + 2))
        for ring in range(1, number + 1):
            radius = ring * step
            box = (centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius)
            draw.ellipse(box, outline=colour, width=max(2, step // 3))
        image = Image.blend(image, overlay, strength)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    text = [
        *textwrap.wrap(plan.prompt, 32)[:2],
        ", ".join(labels) or "base model",
        f"seed {plan.seed + index} · SIMULATED",
    ]
    draw.rectangle((0, height - 18 * len(text) - 6, width, height), fill=(0, 0, 0))
    for i, line in enumerate(text):
        draw.text((6, height - 18 * (len(text) - i) - 2), line, fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@dataclass
class ImageGenRecord(WorkflowRecord):
    """A finished imageGen workflow; ``images`` holds the blob ids of each step."""

    image_steps: list[ImageStepPlan] = field(default_factory=list)
    images: list[list[str]] = field(default_factory=list)


def _epochs_by_model(sim: Simulator) -> dict[str, tuple[int, str]]:
    """model blob id → (epoch number, the training workflow's id), over every run."""
    return {
        epoch.model_blob_id: (epoch.number, str(rec.id))
        for rec in sim.records() if not isinstance(rec, ImageGenRecord) for epoch in rec.epochs
    }  # fmt: skip


def lora_available(sim: Simulator, blob_id: str) -> bool:
    blob = sim.blobs.get(blob_id)
    return blob is not None and blob.available and blob.kind == "model"


def expire_model(sim: Simulator, blob_id: str) -> None:
    """Civitai removed this epoch's model (aged out): generation with it is refused from now on."""
    blob = sim.blobs.get(blob_id)
    if blob is not None:
        blob.available = False


def create(
    sim: Simulator, owner: str, body: dict[str, Any], plans: list[ImageStepPlan], whatif: bool
) -> ImageGenRecord:
    """A priced estimate, or a workflow that has already rendered its images (``owner``: the
    submitter's ``owner_key``)."""
    account = sim.account_of(owner)
    assert account is not None
    total = sum(plan.price for plan in plans)
    training_plan = TrainingPlan({}, 0, 0, [], [], total, 0)
    ext = body.get("externalId")
    rec = ImageGenRecord(
        None if whatif else new_id("wf-"), owner, account.number, body, training_plan, ext,
        tags=list(body.get("tags") or []), metadata=dict(body.get("metadata") or {}), image_steps=plans,
    )  # fmt: skip
    if whatif:
        rec.insufficient_buzz = account.balance < total
        rec.transactions.append({"type": "debit", "amount": total, "accountType": "yellow"})
        sim.whatif_requests.append(body)
        return rec
    sim.register_image_gen(rec)
    epochs = _epochs_by_model(sim)
    for plan in plans:
        ids = []
        for index in range(plan.quantity):
            blob = sim.blobs.reserve(owner, "image")
            data = render_image(plan, index, epochs)
            size = (plan.width // PREVIEW_SCALE, plan.height // PREVIEW_SCALE)
            sim.blobs.fill(blob, data, "image/png", f"image_{index}.png", size)
            ids.append(blob.id)
        rec.images.append(ids)
    rec.started_at = rec.completed_at = utcnow()
    rec.status = "succeeded"
    rec.touch()
    return rec


def workflow_json(rec: ImageGenRecord, sign: Callable[[str], Any]) -> dict[str, Any]:
    """The workflow as GET returns it: one ``imageGen`` step per plan with its image blobs."""
    steps = []
    for i, (plan, ids) in enumerate(zip(rec.image_steps, rec.images or [[] for _ in rec.image_steps], strict=True)):
        size = (plan.width // PREVIEW_SCALE, plan.height // PREVIEW_SCALE)
        step = rec.template["steps"][i]
        steps.append({
            "$type": "imageGen", "name": str(step.get("name") or i), "priority": step.get("priority") or "normal",
            "status": rec.status, "startedAt": iso(rec.started_at), "completedAt": iso(rec.completed_at),
            "metadata": step.get("metadata") or {}, "input": plan.input,
            "output": {"images": [blob_json("image", bid, True, sign, size, rec.job_id) for bid in ids]},
        })  # fmt: skip
    transactions: dict[str, Any] = {"list": rec.transactions}
    if rec.insufficient_buzz is not None:
        transactions["insufficientBuzz"] = rec.insufficient_buzz
    return {
        "id": rec.id, "createdAt": iso(rec.created_at), "transactions": transactions, "metadata": rec.metadata,
        "status": rec.status, "startedAt": iso(rec.started_at), "completedAt": iso(rec.completed_at),
        "tags": rec.tags, "arguments": {}, "steps": steps, "callbacks": rec.template.get("callbacks") or [],
        "tips": {"civitai": 0, "creators": 0},
        "cost": {"base": rec.plan.total, "tips": {"civitai": 0, "creators": 0}, "total": rec.plan.total},
        "upgradeMode": "manual", "currencies": ["yellow"], "forceRefunded": False,
        "externalId": f"{rec.owner_number}-{rec.external_id}" if rec.external_id else None,
    }  # fmt: skip
