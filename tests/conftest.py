"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.civitai.simulator.routes import RESPONSE_OBSERVERS, Answer
from tests.civitai_spec import SPEC_NAME, check_answer
from tests.shared_specs import spec_path

# The stage (a fake Discord the real bot connects to): stage, bot_on_stage, bot_process, alice…
pytest_plugins = ["tests.stage.fixtures"]


@pytest.fixture(autouse=True)
def simulator_answers_match_the_document() -> Iterator[list[str]]:
    """Every response of every in-process simulator (the bot's own in simulated mode, and the
    ones tests start) is checked against the published OpenAPI document; a mismatch fails the
    test. Bots run as separate processes (``python -m bot``) are not covered."""
    problems: list[str] = []
    if spec_path(SPEC_NAME) is None:
        yield problems
        return

    def observe(answer: Answer) -> None:
        problems.extend(check_answer(answer.route, answer.status, answer.content_type, answer.body))

    RESPONSE_OBSERVERS.append(observe)
    try:
        yield problems
    finally:
        RESPONSE_OBSERVERS.remove(observe)
    assert problems == [], "simulator answers that do not match the document:\n" + "\n".join(sorted(set(problems)))
