"""Building and starting the web server.

``Services`` passes the store's jobs and the tracker; ``bot doctor`` builds one with nothing
behind it (callbacks answered 404 by ``NoTrackedJobs``, ``LoggingCallbackTarget`` only logs)
just to check that the address can be bound.
"""

from __future__ import annotations

import errno
import logging

from bot.config import Settings
from bot.metrics import BotMetrics
from bot.web.protocols import CallbackTarget, DatasetFiles, HookJobs
from bot.web.server import Readiness, WebServer
from bot.web.sinks import ComposedHookSink, DirectoryDatasetFiles, LoggingCallbackTarget, NoTrackedJobs

log = logging.getLogger(__name__)


class WebServerBindError(RuntimeError):
    pass


def build_web_server(
    settings: Settings,
    *,
    metrics: BotMetrics,
    jobs: HookJobs | None = None,
    target: CallbackTarget | None = None,
    datasets: DatasetFiles | None = None,
    readiness: Readiness | None = None,
) -> WebServer:
    """The server with stand-ins for the parts not given (no jobs known, callbacks only logged)."""
    return WebServer(
        settings,
        hooks=ComposedHookSink(jobs or NoTrackedJobs(), target or LoggingCallbackTarget()),
        datasets=datasets or DirectoryDatasetFiles(settings.datasets_path),
        metrics=metrics,
        readiness=readiness,
    )


async def start_web_server(server: WebServer) -> WebServer | None:
    """Start ``server``; None if its address is taken and nothing depends on it.

    Without PUBLIC_URL the server only offers /healthz and /metrics (jobs are polled), so a busy
    port is a warning. With PUBLIC_URL, callbacks and hosted datasets need it: refuse to start.
    """
    settings = server.settings
    try:
        await server.start()
    except OSError as exc:
        where = f"{settings.http_host}:{settings.http_port}"
        reason = "the port is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        if settings.public_url:
            raise WebServerBindError(
                f"Cannot listen on {where} ({reason}). PUBLIC_URL is set, so callbacks and dataset downloads "
                "need this server: set HTTP_HOST/HTTP_PORT to a free address that PUBLIC_URL forwards to."
            ) from None
        log.warning(
            "Cannot listen on %s (%s): /healthz and /metrics are off. Jobs are followed by polling "
            "since PUBLIC_URL is unset. Set HTTP_PORT to a free port to get them back.",
            where,
            reason,
        )
        return None
    return server
