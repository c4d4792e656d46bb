"""Fault injection, called in-process by tests: HTTP errors and delays, callback misbehaviour, and
runs that go wrong (moderation, failure at an epoch, expiry).

Run faults given without ``workflow_id`` apply to the next workflow submitted; with one, to that
workflow from its next stage on.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.civitai.simulator.state import RunFaults

if TYPE_CHECKING:
    from bot.civitai.simulator.blobs import BlobStore
    from bot.civitai.simulator.state import WorkflowRecord

# Route names usable in ``route=``: submit, list, get, update, delete, upload_blob, refresh_blob,
# get_blob, head_blob, blob_content.
MODERATION_FAULTS = ("rejected", "underReview")


@dataclass
class HttpFault:
    remaining: int
    status: int | None
    delay: float
    route: str | None
    retry_after: int | None
    # A 400 problem+json listing these field errors (``{"steps[0].input.lr": ["…"]}``).
    field_errors: dict[str, list[str]] | None = None
    # The call is carried out first, then its answer is lost: replaced by ``status``, or the
    # connection dropped when ``status`` is None (the client sees no answer at all).
    after: bool = False
    # The connection is dropped before the call is carried out (the request was sent, no
    # answer came, and nothing happened).
    drop: bool = False

    def matches(self, route: str | None) -> bool:
        return self.remaining > 0 and (self.route is None or self.route == route)


@dataclass
class UploadModeration:
    """Uploads whose filename is in ``names`` are refused with ``reason``: answered 422
    problem+json, or (``as_blob``) 201 with a blob that is not available and says why."""

    names: frozenset[str]
    reason: str
    as_blob: bool = False


@dataclass
class CallbackFaults:
    duplicate: int = 0  # the next N events are delivered twice
    reorder: int = 0  # the next N events swap places with the event after them
    replays: list[int] = field(default_factory=list)  # re-send the next event after K later events


class Faults:
    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self._http: list[HttpFault] = []
        self.callbacks = CallbackFaults()
        self._next_run = RunFaults()
        self._workflows: dict[str, WorkflowRecord] = {}
        self.refused_sources = 0  # the next N zip sourceUrls are refused as unreachable
        self.source_error_form = "field"  # how: "field" (trainingData.sourceUrl), "prefixed", "detail"
        self.upload_moderation: UploadModeration | None = None

    # --- HTTP -----------------------------------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 503, *, route: str | None = None,
                  retry_after: int | None = None) -> None:
        """The next ``n`` calls (to ``route`` when given) answer ``status`` (429, 500, 502, 503...)."""
        self._http.append(HttpFault(n, status, 0.0, route, retry_after))

    def refuse_next(self, field_errors: dict[str, list[str]], n: int = 1, *, route: str | None = "submit") -> None:
        """The next ``n`` calls answer 400 problem+json with ``field_errors``, as the service
        refuses a field it checks and the bot does not (or no longer) check locally."""
        self._http.append(HttpFault(n, 400, 0.0, route, None, field_errors))

    def lose_next_answer(self, n: int = 1, status: int | None = None, *, route: str | None = "submit") -> None:
        """The next ``n`` calls are carried out (a submit creates and charges its workflow), then
        answer ``status`` instead (a 5xx after the fact), or drop the connection when None."""
        self._http.append(HttpFault(n, status, 0.0, route, None, after=True))

    def drop_next(self, n: int = 1, *, route: str | None = "submit") -> None:
        """The next ``n`` calls are dropped unanswered before anything is done (the client cannot
        tell this from a lost answer)."""
        self._http.append(HttpFault(n, None, 0.0, route, None, drop=True))

    def refuse_sources(self, n: int = 1, *, form: str = "field") -> None:
        """The next ``n`` submits or whatifs with a zip ``sourceUrl`` are refused with 400 "not
        reachable" (the URL is private or blocked for the service). ``form`` is how the refusal
        names the field: ``field`` (``trainingData.sourceUrl``, as the troubleshooting table
        quotes it), ``prefixed`` (``steps[0].input.trainingData.sourceUrl``) or ``detail``
        (no ``errors``, only a ``detail`` text)."""
        self.refused_sources, self.source_error_form = n, form

    def block_uploads(self, *names: str, reason: str = "The image did not pass moderation.",
                      as_blob: bool = False) -> None:
        """Uploads named ``names`` (the multipart filename) are refused by moderation."""
        self.upload_moderation = UploadModeration(frozenset(names), reason, as_blob)

    def slow_next(self, n: int = 1, delay: float = 1.0, *, route: str | None = None) -> None:
        """The next ``n`` calls wait ``delay`` real seconds before being handled."""
        self._http.append(HttpFault(n, None, delay, route, None))

    def clear(self) -> None:
        self._http.clear()
        self.callbacks = CallbackFaults()
        self._next_run = RunFaults()
        self.refused_sources, self.upload_moderation = 0, None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        route = request.match_info.route.name
        fault = next((f for f in self._http if f.matches(route)), None)
        if fault is None:
            return await handler(request)
        fault.remaining -= 1
        self._http = [f for f in self._http if f.remaining > 0]
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.after or fault.drop:
            if fault.after:
                await handler(request)
            if fault.status is None:
                assert request.transport is not None
                request.transport.abort()  # the answer never leaves: the client's read fails
                return web.Response(status=204)
        elif fault.status is None:
            return await handler(request)
        return injected_error(fault.status, fault.retry_after, fault.field_errors)

    def blob_url_ttl(self, seconds: float) -> None:
        """Signed blob URLs minted from now on expire after ``seconds`` (real time)."""
        self._blobs.url_ttl = seconds

    # --- callbacks ------------------------------------------------------------------------------
    def duplicate_callbacks(self, n: int = 1) -> None:
        self.callbacks.duplicate += n

    def reorder_callbacks(self, n: int = 1) -> None:
        """Deliver each of the next ``n`` events after the one that follows it."""
        self.callbacks.reorder += n

    def replay_callback(self, after: int = 2) -> None:
        """Deliver the next event again, later: after ``after`` further events."""
        self.callbacks.replays.append(after)

    # --- runs -----------------------------------------------------------------------------------
    def _target(self, workflow_id: str | None) -> RunFaults:
        if workflow_id is None:
            return self._next_run
        return self._workflows[workflow_id].faults

    def moderation(self, status: str, workflow_id: str | None = None) -> None:
        """``rejected``: the step fails in preparation; ``underReview``: held until ``Simulator.review``."""
        if status not in MODERATION_FAULTS:
            raise ValueError(f"moderation fault must be one of {MODERATION_FAULTS}")
        self._target(workflow_id).moderation = status

    def fail_at_epoch(self, epoch: int, workflow_id: str | None = None, reason: str = "timeout") -> None:
        """The run fails while training ``epoch`` (earlier epochs stay available)."""
        target = self._target(workflow_id)
        target.fail_at_epoch, target.fail_reason = epoch, reason

    def expire(self, workflow_id: str | None = None) -> None:
        """No worker picks the job up in time: the workflow ends ``expired`` while scheduled."""
        self._target(workflow_id).expire = True

    def attach(self, rec: WorkflowRecord) -> None:
        """Hand pending next-run faults to a newly created workflow."""
        rec.faults, self._next_run = self._next_run, RunFaults()
        self.adopt(rec)

    def adopt(self, rec: WorkflowRecord) -> None:
        """Let faults target a workflow by id (one restored from the data directory, too)."""
        assert rec.id is not None
        self._workflows[rec.id] = rec


def injected_error(
    status: int, retry_after: int | None = None, field_errors: dict[str, list[str]] | None = None
) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if status in (502, 504):  # what a gateway in front of the service sends: not problem+json
        return web.Response(status=status, text=f"{status} gateway error", headers=headers)
    body: dict[str, Any] = {"type": "https://tools.ietf.org/html/rfc9110", "title": "Injected fault",
                            "status": status, "detail": "The simulator was told to fail this call."}
    if field_errors:
        body |= {"title": "One or more validation errors occurred.", "errors": field_errors}
    return web.Response(status=status, text=json.dumps(body), content_type="application/problem+json",
                        headers=headers)
