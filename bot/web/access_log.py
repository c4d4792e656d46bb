"""aiohttp's access log, minus the secrets that live in our URL paths.

Hook URLs carry the job's secret and dataset URLs a signature; the default access log would
print both. This logger prints the path with those segments replaced by ``***`` and drops the
query string. Health checks and scrapes go to DEBUG so they do not flood the log.
"""

from __future__ import annotations

import logging
import re

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from bot.logging_setup import redact

_SECRET_SEGMENTS = [
    re.compile(r"^(/hooks/civitai/[^/]*/)[^/]*(.*)$"),
    re.compile(r"^(/datasets/[^/]*/[^/]*/)[^/]*(.*)$"),
]
_QUIET_PATHS = frozenset({"/healthz", "/metrics"})


def loggable_path(path: str) -> str:
    for pattern in _SECRET_SEGMENTS:
        match = pattern.match(path)
        if match:
            path = f"{match.group(1)}***{match.group(2)}"
            break
    return redact(path)


class RedactingAccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        level = logging.DEBUG if request.path in _QUIET_PATHS else logging.INFO
        if not self.logger.isEnabledFor(level):
            return
        self.logger.log(
            level,
            '%s "%s %s" %s %.1fms',
            request.remote,
            request.method,
            loggable_path(request.path),
            response.status,
            time * 1000,
        )
