"""``Simulator``: the orchestrator's state, accounts and runs, served over HTTP by ``routes``.

In-process use::

    sim = Simulator(speed=20000)
    sim.add_account("token", buzz=5000)
    base_url = await sim.start()        # 127.0.0.1, ephemeral port
    ...
    await sim.stop()

With ``data_dir`` its state lives in a SQLite file there (``persistence``): a new ``Simulator``
on the same directory finds every account, blob and workflow, and runs that were under way go
on from where simulated time (which kept going while nothing ran it) has taken them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.civitai.simulator import captioning, image_gen
from bot.civitai.simulator.blobs import BlobStore
from bot.civitai.simulator.callbacks import CallbackDispatcher, status_events
from bot.civitai.simulator.clock import SimClock
from bot.civitai.simulator.faults import Faults
from bot.civitai.simulator.lifecycle import Run, Timings
from bot.civitai.simulator.persistence import SimState
from bot.civitai.simulator.routes import MAX_UPLOAD, build_app
from bot.civitai.simulator.state import (
    Account,
    Epoch,
    InsufficientBuzz,
    WorkflowRecord,
    new_id,
    owner_key,
    utcnow,
    workflow_json,
)
from bot.civitai.simulator.validation import TrainingPlan

# A workflow is kept this long after it ends (simulated seconds), then reads answer 404.
RETENTION_SECONDS = 30 * 24 * 3600.0


class Simulator:
    def __init__(
        self,
        *,
        speed: float = 1.0,
        timings: Timings | None = None,
        accept_any_token: bool = False,
        default_balance: int = 100_000,
        queue_jobs: int = 2,
        blob_url_ttl: float = 3600.0,
        blob_dir: Path | None = None,
        public_url: str | None = None,
        callback_backoff: float = 0.5,
        callback_timeout: float = 10.0,
        callback_attempts: int = 6,
        data_dir: Path | None = None,
        refuse_foreign_sources: bool = False,
    ) -> None:
        self._state = SimState(data_dir) if data_dir else None
        reading = self._state.get_meta("clock") if self._state else None
        self.clock = SimClock(speed, SimClock.resumed_at(json.loads(reading)) if reading else 0.0)
        self.timings = timings or Timings()
        # Refuse zip ``sourceUrl``s on hosts other than its own storage (some deployments of the
        # service only fetch from storage it trusts): a client must fall back to blob uploads.
        self.refuse_foreign_sources = refuse_foreign_sources
        # The published schema's description of externalId says a prior whatif also counts as
        # existing; the service's documentation says a whatif creates nothing. Off by default
        # (a whatif is never remembered); on, it models the schema's reading, which clients must
        # survive by never sending their externalId with a whatif.
        self.whatif_keeps_external_id = False
        self.max_upload = MAX_UPLOAD  # bytes of one blob upload; more is answered 413
        self.accept_any_token = accept_any_token
        self.default_balance = default_balance
        self.queue_jobs = queue_jobs
        self.public_url = public_url.rstrip("/") if public_url else None
        key = self._state.get_meta("blob_key") if self._state else None
        self.blobs = BlobStore(
            blob_url_ttl,
            blob_dir or (self._state.blob_dir if self._state else None),
            key=bytes.fromhex(key) if key else None,
            on_change=self._state.save_blob if self._state else None,
        )
        self.faults = Faults(self.blobs)
        self.host_routes: dict[str, str] = {}
        self.captioning = captioning.CaptioningFaults()
        self.callbacks = CallbackDispatcher(
            lambda: self.faults.callbacks, callback_backoff, callback_timeout, callback_attempts, self.host_routes
        )
        # Inspection for tests: templates exactly as received, whatif bodies, zip URLs fetched.
        self.workflows: dict[str, dict[str, Any]] = {}
        self.whatif_requests: list[dict[str, Any]] = []
        # Workflow ids read with ``wait`` (long-polls), kept for tests of callback-driven clients.
        self.held_reads: list[str] = []
        self.dataset_fetches: list[str] = []
        self.base_url: str | None = None
        self._accounts: dict[str, Account] = {}
        self._records: dict[str, WorkflowRecord] = {}
        self._by_external: dict[tuple[str, str], WorkflowRecord] = {}
        self._runs: dict[str, tuple[Run, asyncio.Task[None]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.app = build_app(self)
        self.app.on_shutdown.append(self._end_long_polls)
        self.app.on_cleanup.append(self._on_cleanup)
        if self._state is not None:
            self._restore(self._state)

    # --- persistence ----------------------------------------------------------------------------
    def _restore(self, state: SimState) -> None:
        state.set_meta("blob_key", self.blobs.key.hex())
        self.blobs.load(state.blobs())
        self._accounts.update(state.accounts())
        for rec in state.workflows():
            assert rec.id is not None
            rec.on_change = self._save
            self._records[rec.id] = rec
            self.workflows[rec.id] = rec.template
            if rec.external_id:
                self._by_external[(rec.owner, rec.external_id)] = rec
            self.faults.adopt(rec)
        self.clock.on_move = self._save_clock
        self._save_clock()

    def _save(self, rec: WorkflowRecord) -> None:
        if self._state is not None:
            self._state.save_workflow(rec)

    def flush(self) -> None:
        """Write what changed now (persistence batches changes for ``FLUSH_SECONDS``)."""
        if self._state is not None:
            self._state.flush()

    def _save_clock(self) -> None:
        if self._state is not None:
            self._state.set_meta("clock", json.dumps(self.clock.reading()))

    def _save_account(self, owner: str) -> None:
        if self._state is not None:
            self._state.save_account(owner, self._accounts[owner])

    def _start_run(self, rec: WorkflowRecord, *, restored: bool = False) -> None:
        assert rec.id is not None
        run: Run | captioning.CaptionRun
        if isinstance(rec, captioning.CaptionRecord):
            run = captioning.CaptionRun(self, rec)
        else:
            run = Run(self, rec, catch_up_until=self.clock.now() if restored else float("-inf"))
        self._runs[rec.id] = (run, asyncio.create_task(run(), name=f"run-{rec.id}"))

    # --- time -----------------------------------------------------------------------------------
    @property
    def speed(self) -> float:
        return self.clock.speed

    @speed.setter
    def speed(self, value: float) -> None:
        self.clock.speed = value

    async def advance(self, seconds: float, settle: bool = True) -> None:
        """Move simulated time on by hand (useful with ``speed=0``), then let runs catch up."""
        self.clock.advance(seconds)
        if settle:
            await self.settle()

    async def settle(self, max_wait: float = 10.0, callbacks: bool = True) -> None:
        """Wait until every run only waits for future simulated time (and callbacks are delivered)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        await asyncio.sleep(0)  # let runs woken just now (a review decided, time moved) take their turn
        while any(not run.idle and not task.done() for run, task in self._runs.values()) or (
            callbacks and not self.callbacks.idle()
        ):
            if loop.time() > deadline:
                raise TimeoutError("the simulator did not settle")
            await asyncio.sleep(0.005)

    # --- accounts -------------------------------------------------------------------------------
    def add_account(self, token: str, buzz: int) -> None:
        """An account holding ``buzz`` (an existing one is topped up or drained to it)."""
        owner = owner_key(token)
        if owner in self._accounts:
            self._accounts[owner].balance = buzz
            self._save_account(owner)
        else:
            self._add_account(owner, buzz)

    def ensure_account(self, token: str, buzz: int) -> None:
        """An account for ``token``; one restored from the data directory keeps its balance."""
        self._add_account(owner_key(token), buzz)

    def _add_account(self, owner: str, buzz: int) -> None:
        if owner not in self._accounts:
            self._accounts[owner] = Account(1000 + len(self._accounts) + 1, buzz)
            self._save_account(owner)

    def account(self, token: str) -> Account | None:
        return self.account_of(owner_key(token))

    def account_of(self, owner: str | None) -> Account | None:
        """The account of an ``owner_key`` (made on first use when any token is accepted)."""
        if not owner:
            return None
        if owner not in self._accounts and self.accept_any_token:
            self._add_account(owner, self.default_balance)
        return self._accounts.get(owner)

    def balance(self, token: str) -> int:
        return self._accounts[owner_key(token)].balance

    def charges(self, token: str) -> list[dict[str, Any]]:
        """Every debit and credit of the account: ``{type, amount, workflowId, id}``."""
        return list(self._accounts[owner_key(token)].transactions)

    def _transact(self, rec: WorkflowRecord, kind: str, amount: int) -> None:
        account = self._accounts[rec.owner]
        account.balance += amount if kind == "credit" else -amount
        tx_id = new_id("tx-")
        account.transactions.append({"type": kind, "amount": amount, "workflowId": rec.id, "id": tx_id})
        rec.transactions.append({"type": kind, "amount": amount, "accountType": "yellow", "id": tx_id})
        self._save_account(rec.owner)

    # --- workflows ------------------------------------------------------------------------------
    def route_host(self, host: str, base_url: str) -> None:
        """Send dataset fetches and callbacks for ``host`` to ``base_url`` (a DNS override for loopback)."""
        self.host_routes[host] = base_url

    def record(self, workflow_id: str) -> WorkflowRecord:
        return self._records[workflow_id]

    def find(self, workflow_id: str) -> WorkflowRecord | None:
        return self._records.get(workflow_id)

    def records(self) -> list[WorkflowRecord]:
        return list(self._records.values())

    def workflow(self, workflow_id: str) -> dict[str, Any]:
        """The workflow's JSON as the API would return it now."""
        return self.render(self._records[workflow_id], self.base_url or "http://simulator.invalid")

    def render(self, rec: WorkflowRecord, base_url: str) -> dict[str, Any]:
        base = self.public_url or base_url
        def sign(blob_id: str) -> tuple[str, datetime]:
            return self.blobs.sign(base, blob_id)

        if isinstance(rec, image_gen.ImageGenRecord):
            return image_gen.workflow_json(rec, sign)
        if isinstance(rec, captioning.CaptionRecord):
            return captioning.render(rec, sign)
        return workflow_json(rec, sign)

    def existing(self, owner: str, external_id: str | None) -> WorkflowRecord | None:
        return self._by_external.get((owner, external_id)) if external_id else None

    def visible(self, rec: WorkflowRecord) -> bool:
        """Not deleted, and not past the 30 days a finished workflow is kept (then: 404)."""
        aged_out = rec.ended is not None and self.clock.now() - rec.ended > RETENTION_SECONDS
        return not rec.deleted and not aged_out

    def delete(self, workflow_id: str) -> None:
        """The workflow is gone (``DELETE``, or removed by Civitai): every read answers 404."""
        rec = self._records[workflow_id]
        if not rec.terminal:
            self.cancel(rec)
        rec.deleted = True
        rec.touch()

    def create(self, owner: str, body: dict[str, Any], plan: TrainingPlan, whatif: bool) -> WorkflowRecord:
        """A new workflow (or whatif estimate). Raises ``InsufficientBuzz`` for a real submit.

        A whatif creates nothing and is never remembered: its externalId must not answer the
        real submit that follows it."""
        account = self._accounts[owner]
        ext = body.get("externalId")
        kind = captioning.CaptionRecord if isinstance(plan, captioning.CaptioningPlan) else WorkflowRecord
        rec = kind(None if whatif else new_id("wf-"), owner, account.number, body, plan, ext,
                   tags=list(body.get("tags") or []), metadata=dict(body.get("metadata") or {}))
        if isinstance(rec, captioning.CaptionRecord):
            captioning.new_record(self, rec)
        if whatif:
            if ext and self.whatif_keeps_external_id:
                self._by_external[(owner, ext)] = rec
            rec.insufficient_buzz = account.balance < plan.total
            rec.transactions.append({"type": "debit", "amount": plan.total, "accountType": "yellow"})
            self.whatif_requests.append(body)
            return rec
        if account.balance < plan.total:
            raise InsufficientBuzz(f"Insufficient buzz: this workflow costs {plan.total} Buzz and the account "
                                   f"has {account.balance}.")
        assert rec.id is not None
        for number in range(1, plan.epochs + 1):
            rec.epochs.append(Epoch(number, self.blobs.reserve(owner, "model").id))
        rec.since = self.clock.now()
        # Captioning runs are short and are not kept in the state file (it knows training runs).
        persisted = not isinstance(rec, captioning.CaptionRecord)
        if persisted:
            rec.on_change = self._save
        self._transact(rec, "debit", plan.total)
        self._records[rec.id] = rec
        if ext:
            self._by_external[(owner, ext)] = rec
        self.workflows[rec.id] = body
        self.faults.attach(rec)
        if persisted:
            self._save(rec)
        self.callbacks.emit(rec, status_events(rec))
        self._start_run(rec)
        return rec

    def register_image_gen(self, rec: WorkflowRecord) -> None:
        """Keep and charge an imageGen workflow (``image_gen.create`` renders its images)."""
        account = self._accounts[rec.owner]
        if account.balance < rec.plan.total:
            raise InsufficientBuzz(f"Insufficient buzz: this workflow costs {rec.plan.total} Buzz and the account "
                                   f"has {account.balance}.")
        assert rec.id is not None
        if rec.external_id:
            self._by_external[(rec.owner, rec.external_id)] = rec
        self._transact(rec, "debit", rec.plan.total)
        self._records[rec.id] = rec
        self.workflows[rec.id] = rec.template

    def set_status(self, rec: WorkflowRecord, status: str, at: float | None = None) -> None:
        """Move on to ``status``; ``at``: the simulated instant it happened (a restored run
        catching up reports the instants it passed, not the moment it caught up)."""
        if rec.terminal or rec.status == status:
            return
        rec.status, rec.since = status, self.clock.now() if at is None else at
        if rec.terminal:
            rec.ended = rec.since
        if status == "processing":
            rec.started_at = utcnow()
        rec.touch()
        self.callbacks.emit(rec, status_events(rec))

    def finish(self, rec: WorkflowRecord, status: str, reason: str | None = None, at: float | None = None) -> None:
        """Enter a terminal status; runs that never started are refunded."""
        if rec.terminal:
            return
        rec.completed_at, rec.failure_reason = utcnow(), reason
        if status != "succeeded" and rec.started_at is None:
            self._transact(rec, "credit", rec.plan.total)
        self.set_status(rec, status, at)

    def cancel(self, rec: WorkflowRecord) -> None:
        self.finish(rec, "canceled", "canceled")
        entry = self._runs.get(rec.id or "")
        if entry and not entry[1].done():
            entry[1].cancel()

    def review(self, workflow_id: str, approve: bool = True) -> None:
        """A human decides on a run held ``underReview``."""
        future = self._records[workflow_id].review
        if future is None or future.done():
            raise ValueError("this workflow is not waiting for a review")
        future.set_result(approve)

    # --- serving --------------------------------------------------------------------------------
    def http_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, access_log: bool = True) -> str:
        """Serve on ``host:port`` (0: an ephemeral port) and return the base URL.

        ``access_log=False`` keeps requests out of the log (inside the bot, whose client logs them)."""
        self._runner = web.AppRunner(self.app) if access_log else web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound}"
        for rec in self._records.values():  # runs restored from the data directory go on
            if not rec.terminal and rec.id not in self._runs:
                self._start_run(rec, restored=True)
        return self.base_url

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()  # runs _on_cleanup
            self._runner = None
        else:
            await self._on_cleanup(self.app)

    async def _end_long_polls(self, _app: web.Application) -> None:
        """Answer held ``wait`` requests now: stopping must not wait out a client's long-poll."""
        for rec in self._records.values():
            rec.touch()

    async def _on_cleanup(self, _app: web.Application) -> None:
        for _run, task in self._runs.values():
            task.cancel()
        for _run, task in self._runs.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.callbacks.close()
        if self._session:
            await self._session.close()
        if self._state is not None:
            self._save_clock()
            self._state.close()
            self._state = None
