"""The entry point as an operator meets it: each reason not to start is one line and an exit code.

``python -m bot`` runs as a process, with only environment variables, as on a server. Every
start-up failure prints ``Cannot start: …`` naming the fix, exits with the status the README's
table gives, and never shows a traceback.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Settings, ensure_secret_key
from bot.startup import ExitCode
from tests.stage import Stage

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_module(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def clean_env() -> dict[str, str]:
    prefixes = ("DISCORD_", "CIVITAI_", "PUBLIC_URL", "DATA_DIR", "LOG_LEVEL", "POLL_", "DATASET_", "HTTP_")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(prefixes)}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the probe is closed


def bot_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """A bot that would start: a token, a data folder, a free web port, simulated mode."""
    base = {
        "DISCORD_TOKEN": "x" * 30,
        "DATA_DIR": str(tmp_path / "data"),
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "CIVITAI_MODE": "simulate",
    }
    return clean_env() | base | settings


def refused(tmp_path: Path, env: dict[str, str], code: ExitCode) -> str:
    """Run the bot, expect it not to start; return its one ``Cannot start`` line."""
    result = run_module(env=env, cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    failures = [line for line in result.stderr.splitlines() if line.startswith("Cannot start: ")]
    assert len(failures) == 1, result.stderr
    return failures[0]


def test_missing_discord_token_is_one_line_with_the_way_to_get_one(tmp_path: Path) -> None:
    result = run_module(env=clean_env(), cwd=tmp_path)
    assert result.returncode == ExitCode.SETTINGS == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "DISCORD_TOKEN is not set" in result.stderr and "developers/applications" in result.stderr


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"HTTP_PORT": "not-a-port"}, "HTTP_PORT: "),
        # pydantic-settings reads list-like settings as JSON and raises SettingsError, not a ValidationError.
        ({"POLL_DELAYS_SECONDS": "2,5"}, "POLL_DELAYS_SECONDS: could not be read: write it as a JSON list"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
    ],
    ids=["validation", "settings-error", "log-level"],
)
def test_an_invalid_setting_is_named_on_one_line(tmp_path: Path, settings: dict[str, str], named: str) -> None:
    result = run_module(env=bot_env(tmp_path, **settings), cwd=tmp_path)
    assert result.returncode == ExitCode.SETTINGS
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("Cannot start: " + named), result.stderr


def test_log_level_is_read_in_any_case() -> None:
    assert Settings(_env_file=None, log_level="debug").log_level == "DEBUG"  # type: ignore[call-arg]


def _file_as_data_dir(tmp_path: Path) -> str:
    (tmp_path / "a-file").write_text("not a folder")
    return str(tmp_path / "a-file")


def _under_a_file(tmp_path: Path) -> str:
    (tmp_path / "a-file").write_text("not a folder")
    return str(tmp_path / "a-file" / "data")


@pytest.mark.parametrize(
    ("data_dir", "says"),
    [
        (_file_as_data_dir, "is a file, not a folder"),
        (_under_a_file, "cannot write to"),
        (lambda _: "/proc/lora-bot-data", "cannot write to"),  # cannot be created, even by root
    ],
    ids=["a-file", "under-a-file", "cannot-create"],
)
def test_an_unusable_data_dir_is_one_line(tmp_path: Path, data_dir: Callable[[Path], str], says: str) -> None:
    line = refused(tmp_path, bot_env(tmp_path, DATA_DIR=data_dir(tmp_path)), ExitCode.DATA_DIR)
    assert says in line and "set DATA_DIR to a folder the bot's user can write" in line


@pytest.mark.parametrize(
    "api_base",
    [f"http://127.0.0.1:{closed_port()}/api/v10", "http://discord.invalid/api/v10"],
    ids=["connection-refused", "dns-failure"],
)
def test_discord_out_of_reach_is_one_line(tmp_path: Path, api_base: str) -> None:
    line = refused(tmp_path, bot_env(tmp_path, DISCORD_API_BASE=api_base), ExitCode.DISCORD_UNREACHABLE)
    assert f"could not reach Discord at {api_base}" in line and "DISCORD_API_BASE" in line


async def test_a_token_discord_refuses_is_one_line(stage: Stage, tmp_path: Path) -> None:
    env = bot_env(
        tmp_path, DISCORD_TOKEN="not-the-bot-token-0123456789",
        DISCORD_API_BASE=stage.api_base, DISCORD_GATEWAY_URL=stage.gateway_url,
    )  # fmt: skip
    # The stage answers in this event loop while the bot runs in its own process.
    line = await asyncio.to_thread(refused, tmp_path, env, ExitCode.DISCORD_REFUSED_TOKEN)
    assert "Discord refused DISCORD_TOKEN" in line and "Reset Token" in line
    assert "not-the-bot-token" not in line


def test_hosted_transport_with_a_public_url_the_orchestrator_refuses_does_not_start(tmp_path: Path) -> None:
    env = bot_env(tmp_path, PUBLIC_URL="http://bot.example.com:8080", DATASET_TRANSPORT="hosted")
    line = refused(tmp_path, env, ExitCode.SETTINGS)
    assert "PUBLIC_URL must start with https://" in line and "DATASET_TRANSPORT=hosted" in line
    line = refused(tmp_path, bot_env(tmp_path, DATASET_TRANSPORT="hosted"), ExitCode.SETTINGS)
    assert "DATASET_TRANSPORT=hosted needs PUBLIC_URL" in line


def test_the_console_script_is_the_same_entry_point(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("lora-trainer-bot")
    assert script.exists(), "pip install -e . installs the lora-trainer-bot command"
    result = subprocess.run([script], env=clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == ExitCode.SETTINGS and "DISCORD_TOKEN is not set" in result.stderr


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = ensure_secret_key(Settings(data_dir=tmp_path, secret_key=None)).get_secret_value()
    second = ensure_secret_key(Settings(data_dir=tmp_path, secret_key=None)).get_secret_value()
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
