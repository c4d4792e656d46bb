"""HTTP routes of the consumer API the bot uses, answering like the orchestrator
(JSON camelCase, RFC 7807 problem+json errors, a plain-string 403 for insufficient Buzz)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from PIL import Image

from bot.civitai.simulator import image_gen
from bot.civitai.simulator.blobs import BlobUrlError, StoredBlob
from bot.civitai.simulator.captioning import is_captioning
from bot.civitai.simulator.captioning import validate as validate_captioning
from bot.civitai.simulator.state import InsufficientBuzz, WorkflowRecord, blob_json, owner_key
from bot.civitai.simulator.validation import TrainingPlan, validate_template

if TYPE_CHECKING:
    from bot.civitai.simulator.server import Simulator

SIM_KEY: web.AppKey[Simulator] = web.AppKey("simulator")


@dataclass(frozen=True)
class Answer:
    """One response the simulator sent, for observers (tests check each against the document)."""

    route: str
    method: str
    status: int
    content_type: str
    body: bytes


# Told of every response of every simulator in this process (empty outside tests).
RESPONSE_OBSERVERS: list[Callable[[Answer], None]] = []
PUBLIC_ROUTES = frozenset({"blob_content"})
MAX_WAIT = 90  # the service times requests out at 100 s
MAX_UPLOAD = 50 * 1024**2
UPDATE_KEYS = frozenset({"status", "metadata", "tags", "allowMatureContent", "downloadPriority"})


def _problem_text(status: int, title: str, detail: str, errors: dict[str, list[str]] | None = None) -> str:
    body: dict[str, Any] = {"type": f"https://httpstatuses.io/{status}", "title": title, "status": status,
                            "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return json.dumps(body)


def problem(status: int, title: str, detail: str, errors: dict[str, list[str]] | None = None) -> web.Response:
    """An RFC 7807 body (``ValidationProblemDetails`` when ``errors`` is given)."""
    return web.Response(status=status, text=_problem_text(status, title, detail, errors),
                        content_type="application/problem+json")


def validation_problem(errors: dict[str, list[str]]) -> web.Response:
    return problem(400, "One or more validation errors occurred.", "See errors for the fields to fix.", errors)


def _sim(request: web.Request) -> Simulator:
    return request.app[SIM_KEY]


def _owner(request: web.Request) -> str:
    """Who the bearer token is (``owner_key``; already checked by ``auth_middleware``), "" without one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    return owner_key(token) if token else ""


def _base(request: web.Request) -> str:
    return str(request.url.origin())


def _int_query(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=_problem_text(400, "Bad Request", f"{name} must be an integer."),
                                 content_type="application/problem+json") from None


def _bool_query(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() in ("true", "1")


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.match_info.route.name in PUBLIC_ROUTES:
        return await handler(request)
    if _sim(request).account_of(_owner(request)) is None:
        return problem(401, "Unauthorized", "A valid bearer token is required.")
    return await handler(request)


def _json(rec: WorkflowRecord, request: web.Request, status: int = 200) -> web.Response:
    return web.json_response(_sim(request).render(rec, _base(request)), status=status)


def _owned(request: web.Request) -> WorkflowRecord:
    rec = _sim(request).find(request.match_info["workflow_id"])
    # Another account's, deleted, or aged out: not found either way.
    if rec is None or not _sim(request).visible(rec) or rec.owner != _owner(request):
        raise web.HTTPNotFound(text=_problem_text(404, "Not Found", "No such workflow."),
                               content_type="application/problem+json")
    return rec


async def _wait_terminal(rec: WorkflowRecord, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not rec.terminal and (remaining := deadline - loop.time()) > 0:
        await rec.wait_change(rec.version, remaining)


def _source_refusal(sim: Simulator, request: web.Request, plan: TrainingPlan) -> web.Response | None:
    """400 "not reachable" for a zip sourceUrl the service will not fetch (a fault, or a host
    outside its own storage in ``refuse_foreign_sources`` mode), in the form the fault asks."""
    data = plan.input["trainingData"]
    if data["type"] != "zip":
        return None
    own = {urlsplit(sim.public_url or _base(request)).hostname, request.url.host}
    foreign = sim.refuse_foreign_sources and urlsplit(data["sourceUrl"]).hostname not in own
    if not foreign and sim.faults.refused_sources <= 0:
        return None
    if not foreign:
        sim.faults.refused_sources -= 1
    message = "trainingData.sourceUrl not reachable: the service cannot fetch this URL."
    form = sim.faults.source_error_form
    if form == "detail":
        return problem(400, "Bad Request", message)
    key = "steps[0].input.trainingData.sourceUrl" if form == "prefixed" else "trainingData.sourceUrl"
    return validation_problem({key: [message]})


async def submit(request: web.Request) -> web.Response:
    sim, owner = _sim(request), _owner(request)
    wait, whatif = min(_int_query(request, "wait", 0), MAX_WAIT), _bool_query(request, "whatif")
    try:
        body = await request.json()
    except ValueError:
        return validation_problem({"$": ["The request body is not valid JSON."]})
    create: Callable[[], WorkflowRecord]
    training: TrainingPlan | None = None  # a training run's plan (its dataset may be refused)
    if image_gen.is_image_gen(body):
        plans, errors = image_gen.validate_image_gen(body, lambda blob_id: image_gen.lora_available(sim, blob_id))
        create = partial(image_gen.create, sim, owner, body, plans, whatif)
    elif is_captioning(body):
        captions, errors = validate_captioning(body)
        create = partial(sim.create, owner, body, captions, whatif)  # type: ignore[arg-type]  # None only with errors
    else:
        training, errors = validate_template(body, lambda blob_id: _usable_blob(sim, owner, blob_id))
        create = partial(sim.create, owner, body, training, whatif)  # type: ignore[arg-type]  # None only with errors
    if errors:
        return validation_problem(errors)
    existing = None if whatif else sim.existing(owner, body.get("externalId"))
    if existing is not None:  # idempotent replay: no new workflow, no new charge
        return _json(existing, request, 200 if existing.terminal or existing.id is None else 202)
    refused = _source_refusal(sim, request, training) if training is not None else None
    if refused is not None:
        return refused
    try:
        rec = create()
    except InsufficientBuzz as exc:
        return web.Response(status=403, text=str(exc), content_type="text/plain")
    if whatif:
        return _json(rec, request)
    if wait > 0:
        await _wait_terminal(rec, wait)
    return _json(rec, request, 200 if rec.terminal else 202)


async def get_workflow(request: web.Request) -> web.Response:
    rec = _owned(request)
    wait = min(_int_query(request, "wait", 0), MAX_WAIT)
    if wait <= 0:
        return _json(rec, request)
    if rec.id is not None:
        _sim(request).held_reads.append(rec.id)
    if request.query.get("until", "completion").lower() == "change":
        changed = await rec.wait_change(rec.version, wait)
        return _json(rec, request, 200 if changed or rec.terminal else 202)
    await _wait_terminal(rec, wait)
    return _json(rec, request, 200 if rec.terminal else 202)


async def list_workflows(request: web.Request) -> web.Response:
    sim, owner = _sim(request), _owner(request)
    tags, excluded = set(request.query.getall("tags", [])), set(request.query.getall("excludeTags", []))
    records = [
        r for r in sim.records()
        if r.owner == owner and sim.visible(r) and tags <= set(r.tags) and not excluded & set(r.tags)
        and not (_bool_query(request, "excludeFailed") and r.status in ("failed", "expired", "canceled"))
    ]
    if not _bool_query(request, "ascending"):
        records.reverse()
    take = max(1, min(_int_query(request, "take", 100), 1000))
    cursor = request.query.get("cursor")
    try:
        start = int(base64.urlsafe_b64decode(cursor)) if cursor else 0
    except (ValueError, binascii.Error):
        return problem(400, "Bad Request", "The cursor is not one this service issued.")
    page = records[start : start + take]
    more = start + take < len(records)
    next_cursor = base64.urlsafe_b64encode(str(start + take).encode()).decode() if more else ""
    return web.json_response({"next": next_cursor, "items": [sim.render(r, _base(request)) for r in page]})


async def update_workflow(request: web.Request) -> web.Response:
    rec = _owned(request)
    try:
        body = await request.json()
    except ValueError:
        return validation_problem({"$": ["The request body is not valid JSON."]})
    if not isinstance(body, dict):
        return validation_problem({"$": ["The request body must be a JSON object."]})
    errors = {key: [f"'{key}' is not a field of a workflow update."] for key in set(body) - UPDATE_KEYS}
    if body.get("status") not in (None, "canceled"):
        errors["status"] = ["The only status a workflow can be set to is 'canceled'."]
    tags = body.get("tags")
    if tags is not None and (not isinstance(tags, list) or len(tags) > 10
                             or not all(isinstance(t, str) and 0 < len(t) <= 200 for t in tags)):
        errors["tags"] = ["At most 10 tags of at most 200 characters."]
    if errors:
        return validation_problem(errors)
    if body.get("status") == "canceled" and rec.status != "canceled":
        if rec.terminal:
            return problem(409, "Conflict", f"The workflow already ended ({rec.status}); re-read it.")
        _sim(request).cancel(rec)
    if tags is not None:
        rec.tags = list(tags)
    if isinstance(body.get("metadata"), dict):
        rec.metadata = dict(body["metadata"])
    rec.touch()
    return _json(rec, request)


async def delete_workflow(request: web.Request) -> web.Response:
    rec = _owned(request)
    assert rec.id is not None
    _sim(request).delete(rec.id)
    return web.Response(status=204)


def _blob_of(sim: Simulator, owner: str, blob_id: str) -> StoredBlob | None:
    blob = sim.blobs.get(blob_id)
    return blob if blob is not None and blob.owner == owner and blob.kind != "thumbnail" else None


def _usable_blob(sim: Simulator, owner: str, blob_id: str) -> bool:
    """A blob training data may name: the account's own, and not refused by moderation."""
    blob = _blob_of(sim, owner, blob_id)
    return blob is not None and blob.available


def _blob_response(sim: Simulator, request: web.Request, blob: StoredBlob, status: int = 200) -> web.Response:
    base = sim.public_url or _base(request)
    body = blob_json(blob.kind, blob.id, blob.available, lambda bid: sim.blobs.sign(base, bid), blob.size)
    if blob.blocked_reason:
        body["blockedReason"] = blob.blocked_reason
    return web.json_response(body, status=status)


async def _read_upload(request: web.Request) -> tuple[bytes, str | None]:
    """The uploaded file and the filename the client gave it."""
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if isinstance(part, aiohttp.BodyPartReader) and (part.filename or part.name in ("file", "blob")):
                return bytes(await part.read()), part.filename
        return b"", None
    return await request.read(), None


def _image_info(data: bytes) -> tuple[str, tuple[int, int]]:
    """Format and size of an uploaded image, decoded so a damaged one is refused (a JPEG at a
    reduced scale: all of its data is still read, in an eighth of the memory per side)."""
    with Image.open(io.BytesIO(data)) as image:
        fmt, size = (image.format or "").lower(), image.size
        image.draft("RGB", (size[0] // 8, size[1] // 8))
        image.load()
        return fmt, size


async def upload_blob(request: web.Request) -> web.Response:
    """Upload "with on-the-fly moderation" (the document's words): refused content is answered
    422, or stored as a blob that is not available and carries its ``blockedReason``."""
    sim = _sim(request)
    if (request.content_length or 0) > sim.max_upload:
        return problem(413, "Content Too Large", f"A blob can be at most {sim.max_upload:,} bytes.")
    data, filename = await _read_upload(request)
    if not data:
        return problem(400, "Bad Request", "Send the file as multipart/form-data (a part with a filename).")
    try:
        # Decoding a photo takes tens of ms: off the loop, which serves every other request.
        fmt, size = await asyncio.to_thread(_image_info, data)
    except (OSError, ValueError, Image.DecompressionBombError):
        return problem(415, "Unsupported Media Type", "Only images (JPEG, PNG, WebP) can be uploaded.")
    moderation = sim.faults.upload_moderation
    refused = moderation is not None and filename in moderation.names
    if moderation is not None and refused and not moderation.as_blob:
        return problem(422, "Unprocessable Content", moderation.reason)
    content_type = Image.MIME.get(fmt.upper(), "application/octet-stream")
    blob = sim.blobs.fill(sim.blobs.reserve(_owner(request), "image"), data, content_type,
                          filename or f"upload.{fmt}", size)
    if moderation is not None and refused:
        sim.blobs.block(blob, moderation.reason)
    return _blob_response(sim, request, blob, status=201)


async def refresh_blob(request: web.Request) -> web.Response:
    sim = _sim(request)
    blob = _blob_of(sim, _owner(request), request.match_info["blob_id"])
    if blob is None:
        return problem(404, "Not Found", "No such blob.")
    return _blob_response(sim, request, blob)


async def get_blob(request: web.Request) -> web.Response:
    sim = _sim(request)
    blob = _blob_of(sim, _owner(request), request.match_info["blob_id"])
    if blob is not None and blob.blocked_reason:
        return problem(403, "Forbidden", f"The blob was blocked: {blob.blocked_reason}")
    if blob is None or not blob.available:
        return problem(404, "Not Found", "No such blob.")
    url, _ = sim.blobs.sign(sim.public_url or _base(request), blob.id)
    raise web.HTTPPermanentRedirect(url)


async def head_blob(request: web.Request) -> web.Response:
    """``HEAD /v2/consumer/blobs/{id}``: 204 when it exists, 404 otherwise; no size is told."""
    blob = _blob_of(_sim(request), _owner(request), request.match_info["blob_id"])
    if blob is None or not blob.available:
        return problem(404, "Not Found", "No such blob.")
    return web.Response(status=204)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


async def blob_content(request: web.Request) -> web.Response:
    """The signed content URL. Signed for GET only, as storage URLs commonly are: a HEAD is
    refused (so a size must come from a ranged GET, ``Content-Range``)."""
    sim = _sim(request)
    if request.method == "HEAD":
        return problem(403, "Forbidden", "This URL is signed for GET requests only.")
    try:
        blob = sim.blobs.verify(request.match_info["token"])
    except BlobUrlError as exc:
        return problem(exc.status, "Blob URL refused", exc.detail)
    disposition = "attachment" if blob.kind == "model" else "inline"
    headers = {"Content-Disposition": f'{disposition}; filename="{blob.filename}"', "Accept-Ranges": "bytes"}
    data = sim.blobs.read(blob.id)
    wanted = _RANGE.match(request.headers.get("Range", ""))
    if wanted and (wanted[1] or wanted[2]):
        first = int(wanted[1]) if wanted[1] else max(0, len(data) - int(wanted[2]))
        last = min(int(wanted[2]), len(data) - 1) if wanted[1] and wanted[2] else len(data) - 1
        headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        return web.Response(status=206, body=data[first : last + 1], content_type=blob.content_type, headers=headers)
    return web.Response(body=data, content_type=blob.content_type, headers=headers)


def _observed(request: web.Request, response: web.StreamResponse) -> None:
    body = response.body if isinstance(response, web.Response) else b""
    answer = Answer(request.match_info.route.name or "", request.method, response.status,
                    response.content_type, body if isinstance(body, bytes) else b"")
    for observer in RESPONSE_OBSERVERS:
        observer(answer)


@web.middleware
async def observe_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Outermost: observers see what the client gets, injected faults included."""
    if not RESPONSE_OBSERVERS:
        return await handler(request)
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        _observed(request, exc)
        raise
    _observed(request, response)
    return response


@web.middleware
async def durable_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """What a call created or changed (a workflow and its charge, a blob, a cancel) is on disk
    before the client hears of it; the run's own progress is written in batches."""
    try:
        return await handler(request)
    finally:
        if request.method not in ("GET", "HEAD"):
            _sim(request).flush()


def build_app(sim: Simulator) -> web.Application:
    app = web.Application(
        middlewares=[observe_middleware, sim.faults.middleware, auth_middleware, durable_middleware],
        client_max_size=MAX_UPLOAD,
    )
    app[SIM_KEY] = sim
    app.router.add_post("/v2/consumer/workflows", submit, name="submit")
    app.router.add_get("/v2/consumer/workflows", list_workflows, name="list")
    app.router.add_get("/v2/consumer/workflows/{workflow_id}", get_workflow, name="get")
    app.router.add_put("/v2/consumer/workflows/{workflow_id}", update_workflow, name="update")
    app.router.add_delete("/v2/consumer/workflows/{workflow_id}", delete_workflow, name="delete")
    app.router.add_post("/v2/consumer/blobs", upload_blob, name="upload_blob")
    app.router.add_get("/v2/consumer/blobs/content/{token}", blob_content, name="blob_content")
    app.router.add_post("/v2/consumer/blobs/{blob_id}/refresh", refresh_blob, name="refresh_blob")
    app.router.add_route("HEAD", "/v2/consumer/blobs/{blob_id}", head_blob, name="head_blob")
    app.router.add_get("/v2/consumer/blobs/{blob_id}", get_blob, name="get_blob", allow_head=False)
    return app
