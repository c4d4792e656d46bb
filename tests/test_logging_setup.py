"""Logs: registered secrets never show, and lines about a job carry its ids."""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
from collections.abc import Iterator

import pytest

from bot.logging_setup import current_job_context, job_context, register_secret, setup_logging


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """The process log set up as ``python -m bot`` does, written to a string."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_a_registered_secret_shows_nowhere(output: io.StringIO) -> None:
    token = "civitai-" + secrets.token_hex(16)
    register_secret(token)
    log = logging.getLogger("bot.test_redaction")
    log.info(f"token in the message {token}")
    log.info("token in the arguments %s and %r", token, (token, 1))
    try:
        raise RuntimeError(f"the request with {token} failed")
    except RuntimeError:
        log.exception("token in an exception")
    log.warning("token in a stack", stack_info=True, extra={"note": token})
    log.info("a header: %s", {"Authorization": "Bearer " + "x" * 30})

    text = output.getvalue()
    assert token not in text
    assert "x" * 30 not in text
    # The lines are still there, with the secret replaced.
    assert text.count("***") >= 5
    assert "token in the arguments *** and ('***', 1)" in text
    assert "RuntimeError: the request with *** failed" in text


def test_lines_about_a_job_carry_its_ids_also_in_tasks(output: io.StringIO) -> None:
    log = logging.getLogger("bot.test_context")

    async def refresh() -> None:
        with job_context(workflow_id="wf-9"):
            log.info("refreshed")

    async def work() -> None:
        with job_context(job_id="job-1", guild_id=42):
            log.info("submitting")
            await asyncio.create_task(refresh())
        log.info("outside")

    asyncio.run(work())
    lines = [line for line in output.getvalue().splitlines() if "bot.test_context" in line]
    assert lines[0].endswith("bot.test_context [job=job-1 guild=42]: submitting")
    assert lines[1].endswith("bot.test_context [job=job-1 workflow=wf-9 guild=42]: refreshed")
    assert lines[2].endswith("bot.test_context: outside")
    assert current_job_context() == {}


def test_records_formatted_without_the_filter_still_format(output: io.StringIO) -> None:
    record = logging.LogRecord("bot.x", logging.INFO, __file__, 1, "plain", None, None)
    handler = logging.getLogger().handlers[0]
    assert handler.formatter is not None
    assert handler.formatter.format(record).endswith("bot.x: plain")
