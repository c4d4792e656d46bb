"""The example at the top of tests/stage/README.md, run as written (so it cannot drift)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.app import TrainerBot
from tests.stage import Stage, StageMember

README = Path(__file__).with_name("README.md")
SECTION = "## A new end-to-end test in a few lines"


def readme_example() -> dict[str, Callable[..., Awaitable[None]]]:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"```python\n(.*?)```", text[text.index(SECTION) :], re.DOTALL)
    assert found, f"no python block under {SECTION!r}"
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), str(README), "exec"), namespace)
    return {name: value for name, value in namespace.items() if name.startswith("test_")}


def test_the_example_defines_the_two_tests() -> None:
    assert sorted(readme_example()) == ["test_help", "test_train"]


async def test_the_readme_help_example(stage: Stage, bot_on_stage: TrainerBot, alice: StageMember) -> None:
    await readme_example()["test_help"](stage, bot_on_stage, alice)


async def test_the_readme_train_example(stage: Stage, bot_on_stage: TrainerBot, alice: StageMember) -> None:
    await readme_example()["test_train"](stage, bot_on_stage, alice)
