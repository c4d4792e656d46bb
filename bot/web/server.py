"""The embedded aiohttp server: orchestrator callbacks, signed dataset downloads, health, metrics.

Callbacks follow DESIGN §5: a callback is only a hint, so the handler authenticates it, records
it, schedules the tracker's refresh and answers at once. Unknown job or bad secret: 404 and
nothing done. Permanent problems (bad JSON): 200, so the orchestrator does not retry forever.
Transient internal failures (the store raising): 503, so it retries later.

Nobody holds a connection for long: a request head must arrive within HTTP_IDLE_TIMEOUT_SECONDS
(aiohttp's keep-alive timer, armed at connect and after each answer), a callback body within
HTTP_BODY_TIMEOUT_SECONDS, and one address holds at most HTTP_MAX_CONNECTIONS_PER_PEER
connections. A body the handler does not read (413, 404, 408) is never drained: the connection
is closed after the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.config import Settings, ensure_secret_key
from bot.hooks import DOCTOR_PROBE_PATH, doctor_proof, verify_hook_secret
from bot.jobs.dataset_files import read_dataset_image
from bot.logging_setup import job_context
from bot.metrics import CONTENT_TYPE, BotMetrics
from bot.web.access_log import RedactingAccessLogger
from bot.web.connections import PeerLimit
from bot.web.protocols import DatasetFiles, DeliveryOutcome, HookSink
from bot.web.signing import SignatureCheck, check_dataset_signature, check_image_signature, dataset_signing_key

log = logging.getLogger(__name__)

# Callback bodies are a few hundred bytes (detailed: false); anything near this is not one.
MAX_HOOK_BODY_BYTES = 64 * 1024
# In-flight callback handling gets this long to finish when the server stops.
STOP_GRACE_SECONDS = 5.0
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_DOCTOR_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# Compared against when the job is unknown, so both paths do the same work.
_NO_SUCH_HASH = "0" * 64
# A job's hook secret never changes, and its callbacks come in bursts (one per status change), so
# known hashes are kept briefly to spare the store a read per callback. Unknown jobs are not kept.
HASH_CACHE_SECONDS = 60.0
HASH_CACHE_MAX = 10_000

Readiness = Callable[[], Awaitable[bool]]


class _BodyTooLarge(Exception):
    pass


async def _read_capped(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_payload(body: bytes) -> tuple[dict[str, Any] | None, DeliveryOutcome]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: nesting deeper than the interpreter's stack (`[[[[…`), as malformed as any.
        return None, DeliveryOutcome.BAD_JSON
    if not isinstance(payload, dict):
        return None, DeliveryOutcome.NOT_OBJECT
    return payload, DeliveryOutcome.ACCEPTED


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n")


def _closing(response: web.Response) -> web.Response:
    """Answer, then close: whatever the client still sends is not read (lingering is off)."""
    response.force_close()
    return response


class WebServer:
    def __init__(
        self,
        settings: Settings,
        *,
        hooks: HookSink,
        datasets: DatasetFiles,
        metrics: BotMetrics,
        readiness: Readiness | None = None,
    ) -> None:
        self.settings = settings
        self.hooks = hooks
        self.datasets = datasets
        self.metrics = metrics
        self.readiness = readiness
        self._secret_key = ensure_secret_key(settings).get_secret_value()
        self._signing_key = dataset_signing_key(self._secret_key)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.peers = PeerLimit(
            settings.http_max_connections_per_peer,
            on_refused=lambda: metrics.connections_closed.inc(reason="peer_limit"),
        )
        self._port: int | None = None
        self._callbacks: set[asyncio.Task[None]] = set()
        self._known_hashes: dict[str, tuple[str, float]] = {}
        self._started_at = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_HOOK_BODY_BYTES)
        app.router.add_post("/hooks/civitai/{job}/{secret}", self.handle_hook)
        app.router.add_post(DOCTOR_PROBE_PATH, self.handle_doctor_probe)
        app.router.add_get("/datasets/{digest}/{expires}/{signature}/dataset.zip", self.handle_dataset)
        app.router.add_get(r"/datasets/{digest}/{expires}/{signature}/images/{index:\d{1,6}}{suffix:\.[a-z0-9]{1,5}}",
                           self.handle_dataset_image)  # fmt: skip
        app.router.add_get("/healthz", self.handle_health)
        app.router.add_get("/metrics", self.handle_metrics)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(
            self.build_app(),
            access_log_class=RedactingAccessLogger,
            handle_signals=False,
            shutdown_timeout=STOP_GRACE_SECONDS,
            keepalive_timeout=self.settings.http_idle_timeout_seconds,
            # aiohttp otherwise reads and discards an unread body for 10 s (100 MiB on a fast link).
            lingering_time=0,
        )
        await runner.setup()
        assert runner.server is not None
        try:
            # aiohttp's Server is the protocol factory; PeerLimit counts connections in front of it.
            self._listener = await asyncio.get_running_loop().create_server(
                self.peers.factory(runner.server), self.settings.http_host, self.settings.http_port
            )
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(self._listener.sockets[0].getsockname()[1])  # the real port, also when HTTP_PORT is 0
        log.info("Web server listening on %s:%s", self.settings.http_host, self._port)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._callbacks:
            _, pending = await asyncio.wait(self._callbacks, timeout=STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the web server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """Where this process can reach its own server (loopback when bound to every address)."""
        host = self.settings.http_host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    # -- callbacks ---------------------------------------------------------------------------

    def _reject(self, reason: str, status: int, text: str) -> web.Response:
        self.metrics.callbacks_rejected.inc(reason=reason)
        return _plain(status, text)

    async def handle_hook(self, request: web.Request) -> web.Response:
        self.metrics.callbacks_received.inc()
        job_id, secret = request.match_info["job"], request.match_info["secret"]
        if not (_JOB_ID.fullmatch(job_id) and _HOOK_SECRET.fullmatch(secret)):
            return self._reject("unknown_hook", 404, "not found")
        try:
            stored = await self._secret_hash(job_id)
        except Exception:
            log.exception("Could not look up the hook secret of job %s; asking the orchestrator to retry", job_id)
            return self._reject("unavailable", 503, "temporarily unavailable")
        genuine = verify_hook_secret(secret, stored or _NO_SUCH_HASH)
        if stored is None or not genuine:
            return self._reject("unknown_hook", 404, "not found")

        try:
            async with asyncio.timeout(self.settings.http_body_timeout_seconds):
                body = await _read_capped(request, MAX_HOOK_BODY_BYTES)
        except _BodyTooLarge:
            return _closing(self._reject("too_large", 413, "callback body too large"))
        except TimeoutError:
            self.metrics.connections_closed.inc(reason="body_timeout")
            return _closing(self._reject("body_timeout", 408, "callback body not received in time"))
        payload, outcome = _parse_payload(body)
        try:
            recorded = await self.hooks.record_delivery(job_id, hashlib.sha256(body).hexdigest(), outcome)
        except Exception:
            log.exception("Could not record a callback for job %s; asking the orchestrator to retry", job_id)
            return self._reject("unavailable", 503, "temporarily unavailable")
        if not recorded:
            # Deleted since its secret hash was cached (forget, retention): unknown now.
            self._known_hashes.pop(job_id, None)
            return self._reject("unknown_hook", 404, "not found")
        if payload is None:
            log.warning("Callback for job %s is not a JSON object (%s); ignored", job_id, outcome)
            return self._reject(str(outcome), 200, f"ignored: {outcome}")
        self._schedule_callback(job_id, payload)
        return _plain(200, "ok")

    async def _secret_hash(self, job_id: str) -> str | None:
        now = time.monotonic()
        known = self._known_hashes.get(job_id)
        if known is not None and now - known[1] < HASH_CACHE_SECONDS:
            return known[0]
        stored = await self.hooks.hook_secret_hash(job_id)
        if stored is not None:
            if len(self._known_hashes) >= HASH_CACHE_MAX:
                self._known_hashes.clear()  # crude but bounded; refilled from the store on demand
            self._known_hashes[job_id] = (stored, now)
        return stored

    def _schedule_callback(self, job_id: str, payload: dict[str, Any]) -> None:
        task = asyncio.create_task(self._run_callback(job_id, payload), name=f"callback-{job_id}")
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _run_callback(self, job_id: str, payload: dict[str, Any]) -> None:
        with job_context(job_id=job_id):
            try:
                await self.hooks.on_callback(job_id, payload)
            except Exception:
                # The reconcile pass will catch the job up; the orchestrator already got its 200.
                log.exception("Handling the callback for job %s failed", job_id)

    async def handle_doctor_probe(self, request: web.Request) -> web.Response:
        """Prove to ``python -m bot doctor`` that PUBLIC_URL reaches this very bot."""
        nonce = request.match_info["nonce"]
        if not _DOCTOR_NONCE.fullmatch(nonce):
            return _plain(404, "not found")
        return _plain(200, doctor_proof(self._secret_key, nonce))

    # -- datasets ----------------------------------------------------------------------------

    async def handle_dataset(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        check = check_dataset_signature(
            info["digest"], info["expires"], info["signature"], self._signing_key, now=time.time()
        )
        if check is SignatureCheck.BAD:
            self.metrics.dataset_downloads.inc(outcome="forbidden")
            return _plain(403, "forbidden")
        if check is SignatureCheck.EXPIRED:
            self.metrics.dataset_downloads.inc(outcome="expired")
            return _plain(410, "this link has expired")
        path = self.datasets.path_for(info["digest"])
        if path is None:
            self.metrics.dataset_downloads.inc(outcome="gone")
            return _plain(404, "not found")
        self.metrics.dataset_downloads.inc(outcome="served")
        return web.FileResponse(path, headers={"Content-Type": "application/zip", "Cache-Control": "no-store"})

    async def handle_dataset_image(self, request: web.Request) -> web.Response:
        """One image of a stored dataset, for a captioning step's ``mediaUrl`` (hosted transport)."""
        info = request.match_info
        check = check_image_signature(
            info["digest"], info["index"], info["expires"], info["signature"], self._signing_key, now=time.time()
        )
        if check is not SignatureCheck.VALID:
            self.metrics.dataset_downloads.inc(outcome="forbidden" if check is SignatureCheck.BAD else "expired")
            return _plain(403, "forbidden") if check is SignatureCheck.BAD else _plain(410, "this link has expired")
        path = self.datasets.path_for(info["digest"])
        image = await asyncio.to_thread(read_dataset_image, path, int(info["index"])) if path is not None else None
        if image is None:
            self.metrics.dataset_downloads.inc(outcome="gone")
            return _plain(404, "not found")
        self.metrics.dataset_downloads.inc(outcome="served")
        content_type = "image/png" if info["suffix"] == ".png" else "image/jpeg"
        return web.Response(body=image, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    # -- health and metrics ------------------------------------------------------------------

    async def handle_health(self, request: web.Request) -> web.Response:
        ready = True
        if self.readiness is not None:
            try:
                ready = await self.readiness()
            except Exception:
                log.warning("Readiness check failed", exc_info=True)
                ready = False
        uptime = round(time.monotonic() - self._started_at)
        body = {"status": "ok" if ready else "unavailable", "uptime_seconds": uptime}
        return web.json_response(body, status=200 if ready else 503)

    async def handle_metrics(self, request: web.Request) -> web.Response:
        text = await self.metrics.registry.render()
        return web.Response(body=text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})


@contextlib.asynccontextmanager
async def running(server: WebServer) -> AsyncIterator[WebServer]:
    """``async with running(server):`` — start, then always stop."""
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
