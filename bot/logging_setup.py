"""Logging set-up: secret redaction and the job a line is about.

Every secret the process knows (tokens, keys, hook secrets) is registered with
``register_secret`` and replaced by ``***`` in every record, whatever logger emits it.
Bearer headers and Discord-style bot tokens are redacted by pattern as a second line.

Work on a job runs inside ``job_context(job_id=…, workflow_id=…, guild_id=…)``: every line
logged within it, by any module and in tasks started from it, carries those ids, so one grep
finds everything that happened to a job.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import threading
from collections.abc import Iterator
from typing import Protocol, TextIO

_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]{8,}"),
    re.compile(r"(/hooks/civitai/[^/\s]+/)[A-Za-z0-9_-]{8,}"),
]
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Make ``value`` disappear from every log line from now on."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, "***")
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# Ids of the job the current task works on; tasks created inside a context inherit it.
_JOB_CONTEXT: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar("job_context", default=())
_CONTEXT_KEYS = ("job", "workflow", "guild")


@contextlib.contextmanager
def job_context(
    *, job_id: str | None = None, workflow_id: str | None = None, guild_id: int | str | None = None
) -> Iterator[None]:
    """Tag every log line in this block with the job's ids. Nested blocks add or replace ids."""
    given = {"job": job_id, "workflow": workflow_id, "guild": guild_id}
    merged = dict(_JOB_CONTEXT.get()) | {key: str(value) for key, value in given.items() if value is not None}
    token = _JOB_CONTEXT.set(tuple((key, merged[key]) for key in _CONTEXT_KEYS if key in merged))
    try:
        yield
    finally:
        _JOB_CONTEXT.reset(token)


class HasJobIds(Protocol):
    """A stored job (``storage.models.Job``), as far as its log ids go."""

    @property
    def id(self) -> str: ...
    @property
    def workflow_id(self) -> str | None: ...
    @property
    def guild_id(self) -> int: ...


def about_job(job: HasJobIds) -> contextlib.AbstractContextManager[None]:
    """``job_context`` with every id ``job`` has (the workflow once it is submitted)."""
    return job_context(job_id=job.id, workflow_id=job.workflow_id, guild_id=job.guild_id)


def current_job_context() -> dict[str, str]:
    return dict(_JOB_CONTEXT.get())


class JobContextFilter(logging.Filter):
    """Puts the current job's ids on the record as ``job_context`` (" [job=… workflow=… guild=…]")."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _JOB_CONTEXT.get()
        record.job_context = " [" + " ".join(f"{key}={value}" for key, value in ids) + "]" if ids else ""
        return True


LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s%(job_context)s: %(message)s"


class ContextFormatter(logging.Formatter):
    """The log format; also formats records that did not pass ``JobContextFilter``."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "job_context"):
            JobContextFilter().filter(record)
        return super().format(record)


def log_handler(stream: TextIO | None = None) -> logging.Handler:
    """The process log's handler: job ids on each line, secrets redacted, to ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(ContextFormatter(LOG_FORMAT))
    handler.addFilter(JobContextFilter())
    handler.addFilter(RedactingFilter())
    return handler


def setup_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    root = logging.getLogger()
    root.handlers[:] = [log_handler(stream)]
    root.setLevel(level.upper())
    logging.getLogger("discord").setLevel(max(logging.INFO, root.level))
