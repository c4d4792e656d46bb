"""Captioning workflows in the simulator: ``mediaCaptioning`` (JoyCaption) and ``wdTagging``
(WD tagger) steps, one per image, as the bot submits them before training.

Captions are deterministic, derived from the image itself (its dominant colours, its size and
orientation, and a stock phrase picked by its hash), so tests can predict them. Each step costs
a plausible few Buzz; a workflow that fails before it starts is refunded, like training.
Faults (``sim.captioning``): images refused by moderation (by file name) and a workflow that
fails as a whole.

The module is hooked into the simulator in three places: ``validate`` for a body whose steps
are all captioning steps, ``CaptionRecord``/``CaptionRun`` when such a workflow is created, and
``render`` for its JSON.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from PIL import Image

from bot.civitai.simulator.blobs import CONTENT_PATH, BlobUrlError
from bot.civitai.simulator.callbacks import step_event
from bot.civitai.simulator.dataset import route_url
from bot.civitai.simulator.lifecycle import Run
from bot.civitai.simulator.state import UrlSigner, WorkflowRecord, iso, utcnow, workflow_json
from bot.civitai.simulator.validation import (
    PRIORITIES,
    STEP_KEYS,
    TrainingPlan,
    _check_envelope,
    _check_value,
    _Errors,
)

if TYPE_CHECKING:
    from bot.civitai.simulator.server import Simulator

log = logging.getLogger(__name__)

CAPTION_TYPES = ("mediaCaptioning", "wdTagging")
BUZZ_PER_STEP = {"mediaCaptioning": 2, "wdTagging": 1}
SECONDS_PER_IMAGE = 2.0  # simulated time one step takes
INPUT_KEYS = {
    "mediaCaptioning": frozenset({"model", "mediaUrl", "temperature", "maxNewTokens", "customInstructions"}),
    "wdTagging": frozenset({"model", "mediaUrl", "threshold", "prompt"}),
}
CAPTION_MODELS = ("joy-caption", "ideogram4")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
COLOURS = {
    "black": (20, 20, 20), "white": (235, 235, 235), "grey": (128, 128, 128), "red": (200, 40, 40),
    "orange": (230, 140, 40), "yellow": (230, 210, 60), "green": (60, 160, 70), "teal": (40, 150, 150),
    "blue": (50, 90, 200), "purple": (130, 60, 170), "pink": (230, 130, 170), "brown": (120, 80, 40),
}  # fmt: skip
PHRASES = ("soft natural light", "a plain background", "a centred subject", "a shallow depth of field",
           "an even exposure", "a calm mood")  # fmt: skip


@dataclass
class CaptioningFaults:
    """``refuse``: file name (the step's ``metadata.file``) → moderation reason; ``fail_workflow``:
    the next captioning workflow fails before any step runs, with this reason."""

    refuse: dict[str, str] = field(default_factory=dict)
    fail_workflow: str | None = None


@dataclass
class CaptioningPlan(TrainingPlan):
    media: list[dict[str, Any]] = field(default_factory=list)  # the steps as sent


@dataclass
class StepState:
    status: str = "unassigned"
    output: dict[str, Any] | None = None
    reason: str | None = None
    started_at: Any = None
    completed_at: Any = None


@dataclass
class CaptionRecord(WorkflowRecord):
    states: list[StepState] = field(default_factory=list)
    fail_workflow: str | None = None


def is_captioning(body: Any) -> bool:
    steps = body.get("steps") if isinstance(body, dict) else None
    return (
        bool(steps)
        and isinstance(steps, list)
        and all(isinstance(step, dict) and step.get("$type") in CAPTION_TYPES for step in steps)
    )


def _check_step(errors: _Errors, i: int, step: dict[str, Any]) -> None:
    key, kind = f"steps[{i}]", step["$type"]
    for name in sorted(set(step) - STEP_KEYS):
        errors.add(f"{key}.{name}", f"'{name}' is not a field of a workflow step.")
    if step.get("priority") is not None and step["priority"] not in PRIORITIES:
        errors.add(f"{key}.priority", "The field priority must be high, normal or low.")
    if step.get("retries") is not None:
        _check_value(errors, f"{key}.retries", "retries", step["retries"], ("int", 0, 10))
    raw = step.get("input")
    if not isinstance(raw, dict):
        errors.add(f"{key}.input", "The input field is required.")
        return
    for name in sorted(set(raw) - INPUT_KEYS[kind]):
        errors.add(f"{key}.input.{name}", f"'{name}' is not a field of the {kind} input.")
    if not isinstance(raw.get("mediaUrl"), str) or not _URI.match(raw["mediaUrl"]):
        errors.add(f"{key}.input.mediaUrl", "The mediaUrl field is required and must be a URI.")
    if kind == "mediaCaptioning":
        if raw.get("model") is not None and raw["model"] not in CAPTION_MODELS:
            errors.add(f"{key}.input.model", f"The value '{raw['model']}' is not valid for model.")
        if raw.get("temperature") is not None:
            _check_value(errors, f"{key}.input.temperature", "temperature", raw["temperature"], ("number", 0, 2))
        if raw.get("maxNewTokens") is not None:
            _check_value(errors, f"{key}.input.maxNewTokens", "maxNewTokens", raw["maxNewTokens"], ("int", 1, 4096))
    elif raw.get("threshold") is not None:
        _check_value(errors, f"{key}.input.threshold", "threshold", raw["threshold"], ("number", 0, 1))


def validate(body: dict[str, Any]) -> tuple[CaptioningPlan | None, dict[str, list[str]]]:
    """The plan of a valid captioning workflow, or its field errors."""
    errors = _Errors()
    _check_envelope(errors, body)
    steps: list[dict[str, Any]] = body["steps"]
    names = [step.get("name") for step in steps if step.get("name") is not None]
    if len(set(names)) != len(names):
        errors.add("steps", "Step names must be unique within a workflow.")
    for i, step in enumerate(steps):
        _check_step(errors, i, step)
    if errors.by_field:
        return None, errors.by_field
    price = sum(BUZZ_PER_STEP[step["$type"]] for step in steps)
    return CaptioningPlan({}, 0, 0, [], [], price, 0, media=steps), {}


# --- what the models "see" ---------------------------------------------------------------------


def _colour_name(rgb: tuple[int, ...]) -> str:
    return min(COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(COLOURS[name], rgb[:3], strict=True)))


def describe(data: bytes) -> dict[str, Any]:
    """Dominant colours, size, orientation and a stock phrase of an image (deterministic)."""
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        small = image.convert("RGB").resize((24, 24))
    counts: dict[str, int] = {}
    for count, pixel in small.getcolors(24 * 24) or []:
        name = _colour_name(pixel if isinstance(pixel, tuple) else (int(pixel),) * 3)
        counts[name] = counts.get(name, 0) + count
    colours = [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:2]
    orientation = "square" if abs(width - height) <= width // 20 else ("landscape" if width > height else "portrait")
    phrase = PHRASES[hashlib.sha256(data).digest()[0] % len(PHRASES)]
    return {"colours": colours, "size": (width, height), "orientation": orientation, "phrase": phrase}


def caption_output(kind: str, data: bytes) -> dict[str, Any]:
    seen = describe(data)
    colours, (width, height) = seen["colours"], seen["size"]
    if kind == "mediaCaptioning":
        tones = " and ".join(colours)
        return {"caption": f"A {seen['orientation']} photograph in {tones} tones with {seen['phrase']}, "
                           f"{width}×{height} pixels."}  # fmt: skip
    tags = {f"{colours[0]}_theme": 0.91, seen["orientation"]: 0.84, "photo": 0.62, "no_humans": 0.38,
            seen["phrase"].split()[-1]: 0.2}  # fmt: skip
    if len(colours) > 1:
        tags[f"{colours[1]}_theme"] = 0.73
    return {"tags": tags, "rating": {"general": 0.94, "sensitive": 0.04, "questionable": 0.01, "explicit": 0.01}}


# --- the run -----------------------------------------------------------------------------------


class CaptionRun(Run):
    """Steps run one after the other, each taking ``SECONDS_PER_IMAGE`` of simulated time."""

    rec: CaptionRecord

    async def _run(self) -> None:
        sim, rec = self.sim, self.rec
        await self._at(rec.since + sim.timings.unassigned)
        if rec.fail_workflow:
            for state in rec.states:
                state.status, state.reason = "failed", rec.fail_workflow
            sim.finish(rec, "failed", rec.fail_workflow)
            return
        sim.set_status(rec, "processing")
        for index, (step, state) in enumerate(zip(rec.plan.media, rec.states, strict=True)):  # type: ignore[attr-defined]
            state.status, state.started_at = "processing", utcnow()
            await self._at(sim.clock.now() + SECONDS_PER_IMAGE)
            file = str((step.get("metadata") or {}).get("file") or step.get("name") or index)
            refused = sim.captioning.refuse.get(file)
            if refused is not None:
                state.status, state.reason = "failed", refused
            else:
                try:
                    data = await _media(sim, step["input"]["mediaUrl"])
                    state.output, state.status = caption_output(step["$type"], data), "succeeded"
                except (OSError, ValueError, aiohttp.ClientError, BlobUrlError) as exc:
                    state.status, state.reason = "failed", f"media_unreadable ({type(exc).__name__})"
            state.completed_at = utcnow()
            rec.progress = round((index + 1) / len(rec.states), 4)
            rec.touch()
            sim.callbacks.emit(rec, [step_event(rec)])
        failed = any(state.status == "failed" for state in rec.states)
        sim.finish(rec, "failed" if failed else "succeeded", "some images failed" if failed else None)


async def _media(sim: Simulator, url: str) -> bytes:
    """The image behind ``mediaUrl``: the simulator's own blob, or an http(s) fetch."""
    path = urlsplit(url).path
    if CONTENT_PATH in path:
        return sim.blobs.read(sim.blobs.verify(path.rsplit("/", 1)[-1]).id)
    async with sim.http_session().get(route_url(url, sim.host_routes)) as response:
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        return await response.read()


def new_record(sim: Simulator, rec: CaptionRecord) -> None:
    """Fill a freshly created captioning record: a state per step, the pending workflow fault."""
    rec.states = [StepState() for _ in rec.plan.media]  # type: ignore[attr-defined]
    if rec.id is not None:
        rec.fail_workflow, sim.captioning.fail_workflow = sim.captioning.fail_workflow, None


def render(rec: CaptionRecord, sign: UrlSigner) -> dict[str, Any]:
    body = workflow_json(rec, sign)
    body["steps"] = [_step_json(rec, step, state) for step, state in zip(rec.plan.media, rec.states, strict=True)]  # type: ignore[attr-defined]
    return body


def _step_json(rec: CaptionRecord, step: dict[str, Any], state: StepState) -> dict[str, Any]:
    out: dict[str, Any] = {
        "$type": step["$type"], "name": step.get("name") or "", "priority": step.get("priority") or "normal",
        "timeout": step.get("timeout"), "retries": step.get("retries"),
        "status": state.status if rec.id is not None else "unassigned",
        "startedAt": iso(state.started_at), "completedAt": iso(state.completed_at),
        "metadata": step.get("metadata") or {}, "input": step["input"],
    }  # fmt: skip
    if state.output is not None:
        out["output"] = state.output
    if state.reason is not None:
        # civitai-api.md: failed steps may carry the older ``jobs[].reason`` and ``blockedReason``.
        out["jobs"] = [{"id": f"{rec.job_id}-{out['name']}", "status": "failed", "reason": state.reason}]
    return out
