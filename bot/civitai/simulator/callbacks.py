"""Callback delivery: serial per workflow, in order, retried with backoff on non-2xx and timeouts,
so a receiver sees duplicates exactly as it would from the real orchestrator.

Unlike the real service (https only) it calls http URLs too, so tests can use loopback receivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.civitai.simulator.dataset import route_url
from bot.civitai.simulator.faults import CallbackFaults
from bot.civitai.simulator.state import WorkflowRecord, iso, utcnow

log = logging.getLogger(__name__)
BACKOFF_CAP = 30.0
Item = tuple[str, dict[str, Any]]


@dataclass
class Delivery:
    """One attempt, kept for tests: ``status`` None means a timeout or connection error."""

    url: str
    payload: dict[str, Any]
    status: int | None
    attempt: int


@dataclass
class _Outbox:
    queue: deque[Item] = field(default_factory=deque)
    held: list[Item] = field(default_factory=list)  # waiting to be delivered out of order
    replays: list[list[Any]] = field(default_factory=list)  # [events still to pass, item]
    worker: asyncio.Task[None] | None = None


def _subscribed(types: list[str], event_type: str) -> bool:
    scope = event_type.split(":", 1)[0]
    return event_type in types or f"{scope}:*" in types


def status_events(rec: WorkflowRecord) -> list[tuple[str, dict[str, Any]]]:
    """Job, step and workflow events for the record's current status (the order they are sent)."""
    assert rec.id is not None
    return [progress_event(rec), step_event(rec), workflow_event(rec)]


def progress_event(rec: WorkflowRecord) -> tuple[str, dict[str, Any]]:
    payload: dict[str, Any] = {
        "$type": "job", "workflowId": rec.id, "stepName": rec.step_name, "jobId": rec.job_id,
        "status": rec.status, "progress": rec.progress,
    }
    if rec.failure_reason and rec.terminal:
        payload["reason"] = rec.failure_reason
    if rec.moderation == "rejected":
        payload["blockedReason"] = "moderation"
    return "job", payload


def step_event(rec: WorkflowRecord) -> tuple[str, dict[str, Any]]:
    return "step", {"$type": "step", "workflowId": rec.id, "name": rec.step_name, "status": rec.status}


def workflow_event(rec: WorkflowRecord) -> tuple[str, dict[str, Any]]:
    return "workflow", {"$type": "workflow", "workflowId": rec.id, "status": rec.status, "timestamp": iso(utcnow())}


def _details(rec: WorkflowRecord, scope: str) -> dict[str, Any] | None:
    times = {"startedAt": iso(rec.started_at), "completedAt": iso(rec.completed_at)}
    if scope == "workflow":
        step = {"name": rec.step_name, "status": rec.status, **times}
        return {"createdAt": iso(rec.created_at), **times, "steps": [step]}
    if scope == "step":
        return {"retries": 0, **times, "estimatedProgressRate": None if rec.terminal else rec.progress}
    return None


class CallbackDispatcher:
    def __init__(
        self,
        faults: Callable[[], CallbackFaults],
        backoff: float,
        timeout: float,
        attempts: int,
        host_routes: dict[str, str] | None = None,
    ) -> None:
        self._faults = faults
        # The same DNS-style overrides as dataset fetches: a public callback host served on loopback.
        self.host_routes = host_routes if host_routes is not None else {}
        self.backoff, self.timeout, self.attempts = backoff, timeout, attempts
        self.deliveries: list[Delivery] = []
        self._outboxes: dict[str, _Outbox] = {}
        self._session: aiohttp.ClientSession | None = None

    def emit(self, rec: WorkflowRecord, events: list[tuple[str, dict[str, Any]]]) -> None:
        for scope, payload in events:
            for callback in rec.template.get("callbacks") or []:
                if _subscribed(callback.get("type") or [], f"{scope}:{payload['status']}"):
                    details = _details(rec, scope) if callback.get("detailed") else None
                    body = {**payload, "details": details} if details else payload
                    self._enqueue(rec, (callback["url"], body))
        if rec.terminal:
            self._flush(rec)

    def _enqueue(self, rec: WorkflowRecord, item: Item) -> None:
        assert rec.id is not None
        box = self._outboxes.setdefault(rec.id, _Outbox())
        faults = self._faults()
        copies = [item]
        if faults.duplicate > 0:
            faults.duplicate -= 1
            copies.append(item)
        for replay in box.replays:
            replay[0] -= 1
        due = [r[1] for r in box.replays if r[0] <= 0]
        box.replays = [r for r in box.replays if r[0] > 0]
        if faults.replays:
            box.replays.append([faults.replays.pop(0), item])
        if faults.reorder > 0 and not box.held:
            faults.reorder -= 1
            box.held, copies = copies, []
        elif box.held:
            copies += box.held
            box.held = []
        self._put(rec.id, box, [*copies, *due])

    def _flush(self, rec: WorkflowRecord) -> None:
        """A finished workflow sends nothing later: release held and pending replayed events."""
        assert rec.id is not None
        box = self._outboxes.get(rec.id)
        if box:
            pending = [*box.held, *(r[1] for r in box.replays)]
            box.held, box.replays = [], []
            self._put(rec.id, box, pending)

    def _put(self, workflow_id: str, box: _Outbox, items: list[Item]) -> None:
        box.queue.extend(items)
        if items and (box.worker is None or box.worker.done()):
            box.worker = asyncio.create_task(self._drain(box), name=f"callbacks-{workflow_id}")

    async def _drain(self, box: _Outbox) -> None:
        while box.queue:
            url, payload = box.queue.popleft()
            await self._deliver(url, payload)

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        for attempt in range(1, self.attempts + 1):
            status: int | None = None
            try:
                async with self._session.post(route_url(url, self.host_routes), json=payload,
                                              timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.debug("callback delivery failed: %s", type(exc).__name__)
            self.deliveries.append(Delivery(url, payload, status, attempt))
            if status is not None and 200 <= status < 300:
                return
            await asyncio.sleep(min(self.backoff * 2 ** (attempt - 1), BACKOFF_CAP))
        log.warning("callback dropped after %d attempts (workflow %s)", self.attempts, payload.get("workflowId"))

    def idle(self) -> bool:
        return all(not box.queue and (box.worker is None or box.worker.done()) for box in self._outboxes.values())

    async def close(self) -> None:
        for box in self._outboxes.values():
            if box.worker and not box.worker.done():
                box.worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await box.worker
        if self._session:
            await self._session.close()
