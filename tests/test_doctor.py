"""``python -m bot doctor`` as an operator runs it: each broken setting named, a good one passes.

Discord is the stage, Civitai the simulator; the doctor runs as a subprocess with only
environment variables, like on a server.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.civitai.simulator import Simulator
from bot.config import Settings
from bot.doctor import Status, check_database, settings_problems
from bot.invite import PERMISSIONS
from bot.metrics import BotMetrics
from bot.web.wiring import build_web_server
from storage.migrations import load_migrations
from tests.stage.server import Stage

REPO_ROOT = Path(__file__).resolve().parents[1]
GOOD_CIVITAI_TOKEN = "civitai-good-token-0123456789"
_OUR_SETTINGS = ("DISCORD_", "CIVITAI_", "PUBLIC_URL", "HTTP_", "DATA_DIR", "ORCHESTRATOR_URL", "SECRET_KEY")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def doctor(cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_OUR_SETTINGS)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "doctor",
        cwd=cwd, env=clean | {"PYTHONPATH": str(REPO_ROOT)} | env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


def lines_marked(output: str, mark: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(mark + " ")]


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator()
    sim.add_account(GOOD_CIVITAI_TOKEN, 10_000)
    await sim.start("127.0.0.1", 0)
    yield sim
    await sim.stop()


@pytest.fixture
def good_env(stage: Stage, tmp_path: Path) -> dict[str, str]:
    """Only what an operator sets: the Discord token (plus where the stage is), a data folder."""
    return {
        "DISCORD_TOKEN": stage.token,
        "DISCORD_API_BASE": stage.api_base,
        "DISCORD_GATEWAY_URL": stage.gateway_url,
        "DATA_DIR": str(tmp_path / "data"),
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
    }


async def test_a_good_simulated_configuration_passes(stage: Stage, good_env: dict[str, str], tmp_path: Path) -> None:
    code, output = await doctor(tmp_path, good_env)
    assert code == 0, output
    assert lines_marked(output, "✗") == []
    assert [line.split(":")[0] for line in lines_marked(output, "✓")] == [
        "✓ Settings", "✓ Data folder", "✓ Database", "✓ Datasets folder", "✓ Shards", "✓ Discord token",
        "✓ Civitai token",
    ]  # fmt: skip
    assert "SIMULATED" in output
    assert f"client_id={stage.application_id}" in output and f"permissions={PERMISSIONS}" in output
    # Without PUBLIC_URL the bot polls: a warning with the way to get callbacks, not a failure.
    assert lines_marked(output, "!")[0].startswith("! Public URL: PUBLIC_URL is not set")
    assert "All checks passed" in output


async def test_a_good_real_configuration_with_a_public_url_passes(
    good_env: dict[str, str], simulator: Simulator, tmp_path: Path
) -> None:
    port = free_port()
    env = good_env | {
        "CIVITAI_MODE": "real",
        "ORCHESTRATOR_URL": str(simulator.base_url),
        "CIVITAI_TOKEN": GOOD_CIVITAI_TOKEN,
        "HTTP_PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    code, output = await doctor(tmp_path, env)
    assert code == 0, output
    assert "✓ Civitai token: the orchestrator at" in output and "SIMULATED" not in output
    (public,) = [line for line in output.splitlines() if line.startswith(("✓ Public URL", "! Public URL"))]
    assert "reaches this bot" in public
    # Reachable here, but the orchestrator would refuse it: both shortcomings are named, and what
    # the bot does about it (DATASET_TRANSPORT is auto).
    assert "must start with https://" in output and "has a port" in output
    assert "the bot starts without PUBLIC_URL until this is fixed" in output
    assert GOOD_CIVITAI_TOKEN not in output


def data_dir_under_a_file(tmp_path: Path) -> str:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder's parent should be")
    return str(blocker / "data")


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ("discord_token", "✗ Discord token: Discord refused DISCORD_TOKEN"),
        ("civitai_token", "✗ Civitai token: the orchestrator at"),
        ("public_url", "✗ Public URL: http://127.0.0.1:"),
        ("data_dir", "✗ Data folder: cannot write to"),
    ],
)
async def test_each_broken_setting_is_reported_on_its_own(
    good_env: dict[str, str], simulator: Simulator, tmp_path: Path, broken: str, expected: str
) -> None:
    real_civitai = {
        "CIVITAI_MODE": "real", "ORCHESTRATOR_URL": str(simulator.base_url), "CIVITAI_TOKEN": GOOD_CIVITAI_TOKEN
    }  # fmt: skip
    change = {
        "discord_token": {"DISCORD_TOKEN": "not-the-bot-token-0123456789"},
        "civitai_token": real_civitai | {"CIVITAI_TOKEN": "wrong-civitai-token-0123456789"},
        # The proxy is missing: nothing listens at PUBLIC_URL.
        "public_url": {"HTTP_PORT": str(free_port()), "PUBLIC_URL": f"http://127.0.0.1:{free_port()}"},
        "data_dir": {"DATA_DIR": data_dir_under_a_file(tmp_path)},
    }[broken]
    code, output = await doctor(tmp_path, good_env | change)
    assert code == 1, output
    failures = lines_marked(output, "✗")
    assert len(failures) == 1 and failures[0].startswith(expected), output
    after = output.split(failures[0], 1)[1].splitlines()[1:]
    explained = [line.strip() for line in after[: next(i for i, x in enumerate(after) if not x.startswith(" "))]]
    assert any(line.startswith("→ fix:") for line in explained), output
    for secret in ("not-the-bot-token-0123456789", "wrong-civitai-token-0123456789"):
        assert secret not in output
    if broken == "civitai_token":
        assert "refused CIVITAI_TOKEN" in failures[0]
    if broken == "public_url":
        assert "unreachable" in failures[0]
        # Unreachable, and wrong in shape as well: both are said at once, not one fix at a time.
        assert "must start with https://" in output and "has a port" in output
    if broken == "data_dir":
        assert lines_marked(output, "-")[0].startswith("- Database: needs the data folder")


async def test_the_running_bot_answers_the_probe_and_a_stranger_does_not(
    good_env: dict[str, str], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(_env_file=None, data_dir=data_dir, http_host="127.0.0.1", http_port=0)  # type: ignore[call-arg]
    running = build_web_server(settings, metrics=BotMetrics())
    await running.start()  # as the bot does, with the same data folder and so the same SECRET_KEY
    try:
        env = good_env | {"HTTP_PORT": str(running.port), "PUBLIC_URL": running.base_url}
        code, output = await doctor(tmp_path, env)
        assert code == 0, output
        assert "reaches this bot" in output and f"port {running.port} is in use" in output

        stranger = good_env | {
            "DATA_DIR": str(tmp_path / "other-data"), "HTTP_PORT": str(free_port()), "PUBLIC_URL": running.base_url
        }  # fmt: skip
        code, output = await doctor(tmp_path, stranger)
        assert code == 1
        (failure,) = lines_marked(output, "✗")
        assert failure.startswith("✗ Public URL:") and "not as this bot" in failure
    finally:
        await running.stop()


def test_settings_that_cannot_work_together_are_named() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        public_url="https://bot.example.com",
        http_port=0,
        min_images=10,
        max_images=5,
        orchestrator_url="orchestration.civitai.com",
    )
    problems = " | ".join(settings_problems(settings))
    for named in ("HTTP_PORT is 0", "MIN_IMAGES (10) is above MAX_IMAGES (5)", "ORCHESTRATOR_URL"):
        assert named in problems
    assert settings_problems(Settings(_env_file=None)) == []  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("setting", "value"), [("HTTP_PORT", "not-a-port"), ("POLL_DELAYS_SECONDS", "2,5"), ("LOG_LEVEL", "LOUD")]
)
async def test_settings_that_do_not_load_are_reported_without_a_traceback(
    tmp_path: Path, setting: str, value: str
) -> None:
    code, output = await doctor(tmp_path, {"DISCORD_TOKEN": "x" * 20, setting: value})
    assert code == 1
    assert lines_marked(output, "✗")[0].startswith(f"✗ Settings: {setting}:"), output
    assert "Traceback" not in output


async def test_with_hosted_datasets_a_public_url_the_orchestrator_refuses_fails(
    good_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = good_env | {"HTTP_PORT": str(port), "PUBLIC_URL": f"http://127.0.0.1:{port}", "DATASET_TRANSPORT": "hosted"}
    code, output = await doctor(tmp_path, env)
    assert code == 1, output
    (failure,) = lines_marked(output, "✗")
    assert failure.startswith("✗ Public URL:") and "reaches this bot" in failure
    assert "must start with https://" in output and "refuses to start" in output


async def test_the_database_is_reported_with_its_kind_version_and_migrations(tmp_path: Path, postgres_url: str) -> None:
    latest = len(load_migrations())
    on_sqlite = await check_database(Settings(_env_file=None, data_dir=tmp_path, database_url=None))  # type: ignore[call-arg]
    assert on_sqlite.status is Status.OK
    assert on_sqlite.detail.startswith(f"SQLite {sqlite3.sqlite_version} at "), on_sqlite.detail
    assert "bot.sqlite3 opens" in on_sqlite.detail
    assert f"schema version {latest} of {latest}" in on_sqlite.detail

    on_postgres = await check_database(Settings(_env_file=None, data_dir=tmp_path, database_url=postgres_url))  # type: ignore[call-arg]
    assert on_postgres.status is Status.OK
    assert on_postgres.detail.startswith("PostgreSQL 1"), on_postgres.detail
    assert f"schema version {latest} of {latest}" in on_postgres.detail

    unreachable = f"postgresql://bot:hunter2-db-password@127.0.0.1:{free_port()}/bot"
    failed = await check_database(Settings(_env_file=None, data_dir=tmp_path, database_url=unreachable))  # type: ignore[call-arg]
    assert failed.status is Status.FAIL
    assert "cannot open postgresql://bot:***@127.0.0.1:" in failed.detail and "DATABASE_URL" in (failed.fix or "")
    assert "hunter2" not in failed.detail
