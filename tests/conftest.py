"""Fixtures shared by every test folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.civitai.simulator.routes import RESPONSE_OBSERVERS, Answer
from tests.civitai_spec import SPEC_NAME, check_answer
from tests.databases import fresh_database, fresh_postgres, postgres_server_url, suite_backend_url
from tests.shared_specs import spec_path

# The stage (a fake Discord the real bot connects to): stage, bot_on_stage, bot_process, alice…
pytest_plugins = ["tests.stage.fixtures"]
# Values that differ on every read without changing what a body must look like (formats are not
# asserted by the validator): replaced so repeated polls of one state are checked once.
_VOLATILE = {"url": "https://simulator.invalid/u", "urlExpiresAt": "2000-01-01T00:00:00.000Z"}


def _steady(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _VOLATILE[k] if k in _VOLATILE and value[k] else _steady(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value


def _key(answer: Answer) -> tuple[str, int, str, bytes]:
    body = answer.body
    if answer.content_type in ("application/json", "application/problem+json"):
        try:
            body = json.dumps(_steady(json.loads(body)), sort_keys=True).encode()
        except ValueError:
            pass  # checked as it came: invalid JSON fails the check
    return answer.route, answer.status, answer.content_type, body


@pytest.fixture(autouse=True)
def simulator_answers_match_the_document() -> Iterator[None]:
    """Every response of every in-process simulator (the bot's own in simulated mode, and the
    ones tests start) is checked against the published OpenAPI document; a mismatch fails the
    test. Answers are only collected while the test runs (so the simulator answers as fast as
    ever) and checked at teardown, each distinct one once. Bots run as separate processes
    (``python -m bot``) are not covered."""
    if spec_path(SPEC_NAME) is None:
        yield
        return
    seen: set[tuple[str, int, str, bytes]] = set()

    def observe(answer: Answer) -> None:
        seen.add(_key(answer))

    RESPONSE_OBSERVERS.append(observe)
    try:
        yield
    finally:
        RESPONSE_OBSERVERS.remove(observe)
    problems = sorted({p for route, status, kind, body in seen for p in check_answer(route, status, kind, body)})
    assert problems == [], "simulator answers that do not match the document:\n" + "\n".join(problems)



@pytest.fixture(autouse=True)
def pillow_bomb_limit() -> Iterator[None]:
    """A dataset check sets Pillow's process-wide bomb limit from its settings (a process runs
    with one setting); give each test Pillow's limit back, whatever the previous test checked."""
    saved = Image.MAX_IMAGE_PIXELS
    yield
    Image.MAX_IMAGE_PIXELS = saved


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty database on the suite's backend (tests/databases.py), also exported as
    DATABASE_URL for the bots a test starts."""
    with fresh_database(tmp_path) as url:
        if suite_backend_url() is not None:
            monkeypatch.setenv("DATABASE_URL", url)
        yield url


@pytest.fixture(autouse=True)
def _suite_backend(request: pytest.FixtureRequest) -> None:
    """On a PostgreSQL pass, every test gets its own schema (bots read DATABASE_URL)."""
    if suite_backend_url() is not None:
        request.getfixturevalue("database_url")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty PostgreSQL database whatever the suite's backend (skips or fails without one)."""
    with fresh_postgres(postgres_server_url()) as url:
        yield url
