"""The entry point: settings errors are explained, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.config import Settings, ensure_secret_key


def run_module(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "CIVITAI_"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env


def test_missing_discord_token_explains_and_exits_2(tmp_path: Path) -> None:
    result = run_module(env=clean_env(), cwd=tmp_path)
    assert result.returncode == 2
    assert "DISCORD_TOKEN is not set" in result.stderr
    assert "developers/applications" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_setting_is_named(tmp_path: Path) -> None:
    env = clean_env() | {"DISCORD_TOKEN": "x", "HTTP_PORT": "not-a-port"}
    result = run_module(env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "HTTP_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = ensure_secret_key(Settings(data_dir=tmp_path, secret_key=None)).get_secret_value()
    second = ensure_secret_key(Settings(data_dir=tmp_path, secret_key=None)).get_secret_value()
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
