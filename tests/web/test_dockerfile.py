"""The Dockerfile's promises that can be checked without a docker engine.

The HEALTHCHECK command is run for real against our server, so a broken probe fails here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tomllib
from pathlib import Path

import pytest

from bot.metrics import BotMetrics
from bot.web.server import WebServer
from bot.web.sinks import DirectoryDatasetFiles
from tests.web.conftest import MemorySink, make_settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def instruction(name: str) -> str:
    """The text of the last NAME instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    found = [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]
    assert found, f"no {name} in the Dockerfile"
    return found[-1]


def healthcheck_argv() -> list[str]:
    command = instruction("HEALTHCHECK").split(" CMD ", 1)[1]
    argv = json.loads(command)
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


async def probe(port: int) -> int:
    process = await asyncio.create_subprocess_exec(
        *healthcheck_argv(),
        env=os.environ | {"HTTP_PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 30)


@pytest.mark.parametrize("ready", [True, False])
async def test_healthcheck_command_probes_healthz(tmp_path: Path, ready: bool) -> None:
    async def readiness() -> bool:
        return ready

    web = WebServer(
        make_settings(tmp_path),
        hooks=MemorySink(),
        datasets=DirectoryDatasetFiles(tmp_path),
        metrics=BotMetrics(),
        readiness=readiness,
    )
    await web.start()
    try:
        assert (await probe(web.port) == 0) is ready
    finally:
        await web.stop()
    assert await probe(web.port) != 0  # nothing listening any more


def test_image_runs_the_bot_as_a_non_root_user_with_a_data_volume() -> None:
    assert instruction("FROM").startswith("python:3.11.")
    assert json.loads(instruction("CMD")) == ["python", "-m", "bot"]
    assert instruction("USER") not in ("root", "0")
    assert json.loads(instruction("VOLUME")) == ["/data"]
    assert "DATA_DIR=/data" in instruction("ENV") and instruction("EXPOSE") == "8080"
    assert "pip install --no-cache-dir --no-deps --no-build-isolation ." in instruction("RUN")


def test_every_package_is_copied_and_secrets_are_ignored() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE, re.MULTILINE))
    assert packages == copied
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".env", "data/", ".git/"} <= set(ignored)
