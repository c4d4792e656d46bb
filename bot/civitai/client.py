"""HTTP client of the Civitai orchestrator consumer API.

One ``OrchestratorClient`` (one ``httpx.AsyncClient``, one connection pool) per process; jobs
call it through cheap per-token views, ``client.session(token)``, because different jobs pay
with different tokens (the member's, the server's, the operator's).

Every non-success answer becomes a typed ``OrchestratorError``. Reads, cancels and blob calls
are retried on 429, 5xx and network errors with exponential backoff and full jitter. A submit is
retried only when its template carries an ``externalId``: the orchestrator then returns the
existing workflow for a repeat instead of creating and charging a second one.

The Authorization header is built per request, sent only to the orchestrator's own origin and
never logged; tokens are also registered with the log redactor.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from bot.logging_setup import register_secret

from . import errors as e
from .models import Blob, ProblemDetails, Workflow, WorkflowPage, WorkflowTemplate

log = logging.getLogger(__name__)
# httpx logs every request URL at INFO; signed blob URLs carry their signature in the query.
logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))

WORKFLOWS = "/v2/consumer/workflows"
BLOBS = "/v2/consumer/blobs"
# A held request (``wait``) must end well before the client gives up on it.
WAIT_MARGIN_SECONDS = 5.0
DEFAULT_DOWNLOAD_LIMIT = 1024 * 1024 * 1024
# Connections to the orchestrator at once (httpx's default); long-polls hold one for their wait,
# so the tracker keeps them to a share of this (``LONG_POLLS_AT_ONCE``).
MAX_CONNECTIONS = 100
MAX_REDIRECTS = 5
_CONTENT_RANGE_TOTAL = re.compile(r"/(\d+)\s*$")

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: the n-th retry sleeps ``uniform(0, min(cap, base·2ⁿ))``.

    ``attempts`` counts the first try. A ``Retry-After`` the server sends (not promised) raises
    the delay to at least that, still capped.
    """

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    jitter: Callable[[float], float] = field(default=lambda high: random.uniform(0.0, high), repr=False)

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2**retry_number))
        wait = self.jitter(ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _problem(response: httpx.Response) -> ProblemDetails | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return ProblemDetails.model_validate(body) if isinstance(body, dict) else None


def error_for_response(
    response: httpx.Response, *, submitting: bool = False, price: int | None = None
) -> e.OrchestratorError:
    """The typed error for a non-success answer."""
    status = response.status_code
    if status == 401:
        return e.Unauthorized()
    if status == 403:
        if not submitting:
            return e.Forbidden()
        # On submit the body is a plain string: not enough Buzz (or a tier that may not run this).
        problem = _problem(response)
        said = (problem.detail or problem.title) if problem else response.text.strip().strip('"')
        return e.InsufficientBuzz(price=price, detail=said or None)
    if status == 404:
        return e.NotFound()
    if status == 429:
        return e.RateLimited(_retry_after(response))
    if status >= 500:
        return e.OrchestratorServerError(status)
    problem = _problem(response)
    if status == 409:
        return e.Conflict(problem.detail if problem else None)
    if problem is not None and (problem.errors or (status == 400 and problem.detail
                                                   and e.option_named_in(problem.detail))):
        return e.OrchestratorValidationError.from_problem(problem, status=status)
    detail = (problem.detail or problem.title) if problem else response.text[:300]
    return e.OrchestratorRequestError(status, detail or None)


def _parse(model: type[M], response: httpx.Response) -> M:
    try:
        return model.model_validate(response.json())
    except (ValueError, ValidationError) as exc:
        log.warning("orchestrator %s answer did not parse as %s: %s", response.status_code, model.__name__, exc)
        raise e.UnexpectedResponse(response.status_code) from None


# Told about every HTTP attempt: (operation, None) on success, (operation, error kind) on failure.
CallMetrics = Callable[[str, "str | None"], None]
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def error_kind(error: e.OrchestratorError) -> str:
    """A short label for a failure, e.g. ``OrchestratorServerError`` → ``server_error``."""
    return _CAMEL.sub("_", type(error).__name__).lower().removeprefix("orchestrator_")


def _path_part(value: str) -> str:
    # Ids are opaque: never let one change the path.
    return urllib.parse.quote(value, safe="")


class OrchestratorClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
        metrics: CallMetrics | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.metrics = metrics
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._origin = httpx.URL(self.base_url).copy_with(path="/", query=None, fragment=None)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            transport=transport,
            event_hooks=dict(event_hooks or {}),
            headers={"User-Agent": "lora-trainer-bot", "Accept": "application/json"},
            follow_redirects=False,
            # Keep every pooled connection alive between calls: with the default (20) a busy bot
            # (long-polls, uploads) closes and reconnects dozens of connections a second.
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS),
        )

    def session(self, token: SecretStr | str) -> OrchestratorSession:
        """A view of this client that authenticates with ``token``."""
        secret = token if isinstance(token, SecretStr) else SecretStr(token)
        register_secret(secret.get_secret_value())
        return OrchestratorSession(self, secret)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> OrchestratorClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def check_wait(self, wait: int | None) -> None:
        if wait and wait > self.timeout - WAIT_MARGIN_SECONDS:
            raise ValueError(f"wait={wait}s must stay below the client timeout ({self.timeout:g}s) minus a margin")

    def is_own_origin(self, url: str) -> bool:
        target = self._http.base_url.join(url)
        return (target.scheme, target.host, target.port) == (self._origin.scheme, self._origin.host, self._origin.port)

    async def with_retries(self, what: str, attempt: Callable[[], Awaitable[T]], *, retryable: bool) -> T:
        """Run ``attempt`` until it succeeds, retrying retryable ``OrchestratorError``s."""
        tries = self.retry.attempts if retryable else 1
        unanswered = 0
        for number in range(tries):
            try:
                return await attempt()
            except e.OrchestratorError as error:
                unanswered += error.answer_lost
                if not error.retryable or number == tries - 1:
                    # What the last error cannot say alone: whether any attempt may have been
                    # acted on without its answer reaching us (a submit's outcome is then unknown).
                    error.unanswered_attempts = unanswered
                    raise
                delay = self.retry.delay(number, getattr(error, "retry_after", None))
                log.warning("orchestrator %s: %s, retry %d/%d in %.2fs", what, type(error).__name__,
                            number + 1, tries - 1, delay)  # fmt: skip
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def is_api_call(self, request: httpx.Request) -> bool:
        """A call authenticated by the token (not a signed content URL, which carries its own
        grant: a 401 there means the grant expired, not that the token was refused)."""
        return self.is_own_origin(str(request.url)) and BLOBS + "/content/" not in request.url.path

    def operation(self, request: httpx.Request) -> str:
        """What a request does, as the metrics label it (``submit``, ``get``, ``download``…)."""
        base = self._http.base_url.path.rstrip("/")
        path = request.url.path
        if not self.is_own_origin(str(request.url)) or not path.startswith(base):
            return "download"
        path = path[len(base) :]
        if path.startswith(BLOBS):
            return "refresh_blob" if path.endswith("/refresh") else "upload_blob" if path == BLOBS else "download"
        if path == WORKFLOWS:
            if request.method == "POST":
                return "whatif" if request.url.params.get("whatif") == "true" else "submit"
            return "list"
        if path.startswith(WORKFLOWS + "/"):
            return "cancel" if request.method == "PUT" else "get"
        return "other"

    def _count(self, request: httpx.Request, error: e.OrchestratorError | None = None) -> None:
        if self.metrics is not None:
            self.metrics(self.operation(request), error_kind(error) if error is not None else None)

    async def send_once(
        self, request: httpx.Request, *, submitting: bool = False, price: int | None = None
    ) -> httpx.Response:
        try:
            response = await self._send_once(request, submitting=submitting, price=price)
        except e.OrchestratorError as error:
            self._count(request, error)
            raise
        self._count(request)
        return response

    async def _send_once(self, request: httpx.Request, *, submitting: bool, price: int | None) -> httpx.Response:
        try:
            response = await self._http.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Never connected: the request cannot have reached the orchestrator.
            log.warning("orchestrator %s %s unreachable: %s", request.method, request.url.path, type(exc).__name__)
            raise e.OrchestratorUnreachable(answer_lost=False) from None
        except httpx.TimeoutException:
            raise e.OrchestratorTimeout() from None
        except httpx.TransportError as exc:
            log.warning("orchestrator %s %s unreachable: %s", request.method, request.url.path, type(exc).__name__)
            raise e.OrchestratorUnreachable() from None
        log.debug("orchestrator %s %s → %d", request.method, request.url.path, response.status_code)
        if response.is_success:
            return response
        raise error_for_response(response, submitting=submitting, price=price)

    def build_request(self, method: str, url: str, **kwargs: Any) -> httpx.Request:
        return self._http.build_request(method, url, **kwargs)

    async def stream_to(self, request: httpx.Request, sink: Callable[[bytes], object], max_bytes: int) -> None:
        """Send ``request`` and feed the body to ``sink``, refusing more than ``max_bytes``."""
        try:
            await self._stream_to(request, sink, max_bytes)
        except e.OrchestratorError as error:
            self._count(request, error)
            raise
        self._count(request)

    def redirect_target(self, response: httpx.Response) -> httpx.URL | None:
        """Where a redirect may be followed: https, or the orchestrator's own origin (the
        simulator serves plain http on loopback). None when the answer is not a redirect."""
        location = response.headers.get("Location")
        if not response.is_redirect or not location:
            return None
        target = response.url.join(location)
        if target.scheme != "https" and not self.is_own_origin(str(target)):
            raise e.UnsafeRedirect()
        return target

    async def open_stream(self, request: httpx.Request) -> httpx.Response:
        """Send a download request, following at most ``MAX_REDIRECTS`` redirects (``GET
        /v2/consumer/blobs/{id}`` answers 308 to its content). The token goes only to the
        orchestrator's own origin, never to the storage a redirect leads to."""
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TimeoutException:
                raise e.OrchestratorTimeout() from None
            except httpx.TransportError:
                raise e.OrchestratorUnreachable() from None
            try:
                target = self.redirect_target(response)
            except e.OrchestratorError:
                await response.aclose()
                raise
            if target is None:
                return response
            await response.aclose()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("authorization", "host")}
            if self.is_own_origin(str(target)):
                headers["Authorization"] = request.headers.get("Authorization", "")
            request = self._http.build_request(request.method, target, headers=headers)
        raise e.UnsafeRedirect(f"more than {MAX_REDIRECTS} redirects")

    async def _stream_to(self, request: httpx.Request, sink: Callable[[bytes], object], max_bytes: int) -> None:
        response = await self.open_stream(request)
        try:
            if response.status_code in (403, 410) or (
                response.status_code == 401 and not self.is_api_call(response.request)
            ):  # how storage (or the orchestrator's content route) says a signed URL has expired
                raise e.DownloadLinkExpired()
            if not response.is_success:
                await response.aread()
                raise error_for_response(response)
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise e.DownloadTooLarge(max_bytes)
            received = 0
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise e.DownloadTooLarge(max_bytes)
                sink(chunk)
        except httpx.TransportError:
            raise e.OrchestratorUnreachable("stopped sending the file") from None
        finally:
            await response.aclose()


class OrchestratorSession:
    """The orchestrator API as seen with one token. Cheap: create one per job or command."""

    def __init__(self, client: OrchestratorClient, token: SecretStr) -> None:
        self._client = client
        self._token = token

    def __repr__(self) -> str:
        return f"OrchestratorSession({self._client.base_url!r}, token=***)"

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token.get_secret_value()}"}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        retryable: bool = True,
        submitting: bool = False,
        price: int | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        async def attempt() -> httpx.Response:
            request = self._client.build_request(method, path, headers=self._auth(), **kwargs)
            return await self._client.send_once(request, submitting=submitting, price=price)

        return await self._client.with_retries(f"{method} {path}", attempt, retryable=retryable)

    async def submit(
        self, template: WorkflowTemplate, *, whatif: bool = False, wait: int = 0, price: int | None = None
    ) -> Workflow:
        """Submit (or, with ``whatif``, only validate and price) a workflow.

        ``price`` is what the caller expects to pay; it goes into ``InsufficientBuzz``. A whatif
        is sent without ``externalId``: the orchestrator remembers ids even from whatif requests
        and would answer the real submit with the priced-only workflow.
        """
        self._client.check_wait(wait)
        if whatif:
            template = template.model_copy(update={"external_id": None})
        elif template.external_id is None:
            log.warning("submitting a workflow without externalId: it will not be retried")
        response = await self._call(
            "POST",
            WORKFLOWS,
            params={"wait": wait, "whatif": str(whatif).lower()},
            json=template.to_json(),
            retryable=whatif or template.external_id is not None,
            submitting=True,
            price=price,
        )
        return _parse(Workflow, response)

    async def get(self, workflow_id: str, *, wait: int | None = None, until_change: bool = False) -> Workflow:
        """Read a workflow; with ``wait`` the server holds the request up to that many seconds,
        until completion or, with ``until_change``, until anything changes."""
        self._client.check_wait(wait)
        params: dict[str, Any] = {}
        if wait:
            params["wait"] = wait
            if until_change:
                params["until"] = "change"
        response = await self._call("GET", f"{WORKFLOWS}/{_path_part(workflow_id)}", params=params)
        return _parse(Workflow, response)

    async def list_by_tag(self, tag: str, *, take: int = 100, cursor: str | None = None) -> WorkflowPage:
        params: dict[str, Any] = {"tags": tag, "take": take}
        if cursor:
            params["cursor"] = cursor
        return _parse(WorkflowPage, await self._call("GET", WORKFLOWS, params=params))

    async def cancel(self, workflow_id: str) -> Workflow | None:
        """Cancel a workflow: the workflow when the server returns it (200), else None (204)."""
        response = await self._call("PUT", f"{WORKFLOWS}/{_path_part(workflow_id)}", json={"status": "canceled"})
        if response.status_code == 204 or not response.content:
            return None
        return _parse(Workflow, response)

    async def upload_blob(
        self, data: bytes | Path, *, filename: str, content_type: str = "application/octet-stream"
    ) -> Blob:
        """Upload one file (multipart form-data, field ``file``); its AIR is ``blob.air``.

        The service moderates uploads on the fly: refused content is answered 422, or comes
        back as a blob that is not available and says why (``blockedReason``). Both raise
        ``BlobRefused`` naming the file."""
        content = await asyncio.to_thread(data.read_bytes) if isinstance(data, Path) else data
        try:
            response = await self._call("POST", BLOBS, files={"file": (filename, content, content_type)})
        except e.OrchestratorRequestError as error:
            if error.status == 422:
                raise e.BlobRefused(filename, error.detail) from None
            raise
        blob = _parse(Blob, response)
        if blob.blocked_reason or not blob.id:
            raise e.BlobRefused(filename, blob.blocked_reason)
        if not blob.available:
            # Not documented whether a fresh upload may still be in processing: the submit
            # that names it is validated by the service anyway.
            log.warning("uploaded blob %s is not available yet (no blocked reason given)", blob.id)
        return blob

    async def refresh_blob(self, blob_id: str) -> Blob:
        """A fresh signed URL for a blob (signed URLs expire within minutes to hours)."""
        return _parse(Blob, await self._call("POST", f"{BLOBS}/{_path_part(blob_id)}/refresh"))

    @overload
    async def download(self, url: str, *, max_bytes: int = ..., dest: None = None) -> bytes: ...
    @overload
    async def download(self, url: str, *, max_bytes: int = ..., dest: Path) -> Path: ...

    async def download(
        self, url: str, *, max_bytes: int = DEFAULT_DOWNLOAD_LIMIT, dest: Path | None = None
    ) -> bytes | Path:
        """Fetch a blob URL into memory or, with ``dest``, into a file (written atomically).

        The token is sent only when the URL is on the orchestrator's own origin; signed storage
        URLs need none and must never see it.
        """
        headers = self._auth() if self._client.is_own_origin(url) else {}

        async def into_memory() -> bytes:
            buffer = bytearray()
            await self._client.stream_to(
                self._client.build_request("GET", url, headers=headers), buffer.extend, max_bytes
            )
            return bytes(buffer)

        if dest is None:
            return await self._client.with_retries("download", into_memory, retryable=True)
        partial = dest.with_name(dest.name + ".part")

        async def into_file() -> Path:
            # Chunks are small: writing them synchronously costs less than a thread hop each.
            with partial.open("wb") as sink:
                await self._client.stream_to(
                    self._client.build_request("GET", url, headers=headers), sink.write, max_bytes
                )
            partial.replace(dest)
            return dest

        try:
            return await self._client.with_retries("download", into_file, retryable=True)
        finally:
            partial.unlink(missing_ok=True)

    async def content_length(self, url: str) -> int | None:
        """The size of the file behind a blob URL, or None when it is not told.

        A ranged GET of the first byte (``Content-Range: bytes 0-0/<size>``), not a HEAD:
        signed storage URLs are commonly signed for GET only and refuse HEAD. A server that
        ignores the range answers 200 with the whole file's length, and its body is not read."""
        headers = {"Range": "bytes=0-0", **(self._auth() if self._client.is_own_origin(url) else {})}
        request = self._client.build_request("GET", url, headers=headers)
        try:
            response = await self._client.open_stream(request)
        except e.OrchestratorError:
            return None
        try:
            if response.status_code == 206:
                match = _CONTENT_RANGE_TOTAL.search(response.headers.get("Content-Range", ""))
                return int(match.group(1)) if match else None
            if response.status_code == 200 and "Content-Length" in response.headers:
                return int(response.headers["Content-Length"])
            return None
        except ValueError:
            return None
        finally:
            await response.aclose()

    async def check_token(self) -> None:
        """A cheap authenticated read; raises ``Unauthorized`` when the token is refused."""
        await self._call("GET", WORKFLOWS, params={"take": 1})
