"""The README tells the truth: settings, commands, invite link and pictures match the code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from PIL import Image

from bot.config import Settings
from bot.invite import PERMISSIONS, REQUIRED_PERMISSIONS, invite_url
from bot.settings_doc import END, START, settings_table, undocumented
from bot.startup import ExitCode

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.MULTILINE | re.DOTALL)
    assert found, f"no '## {title}' section in the README"
    return found.group(1)


def test_every_setting_has_a_meaning() -> None:
    assert undocumented() == [], "add a meaning to MEANINGS in bot/settings_doc.py"


def test_the_settings_table_is_the_generated_one() -> None:
    block = README.split(START, 1)[1].split(END, 1)[0].strip()
    assert block == settings_table(), "run: PYTHONPATH=. python -m bot.settings_doc --write README.md"
    for field in Settings.model_fields:
        assert f"| `{field.upper()}` |" in block


def test_the_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    ci_command = ci[ci.index('# The test command (kept identical to README.md, "Run the tests"):') + 1]
    assert ci_command == "ruff check . && mypy && pytest -q -n 2 -p no:cacheprovider"
    commands = re.findall(r"```bash\n(.*?)\n```", section("Run the tests"), re.DOTALL)
    assert commands[:1] == [
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && . .venv/bin/activate && " + ci_command
    ]


def test_the_run_command_and_docker_usage() -> None:
    assert "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python -m bot\n" in README
    docker = section("Run it with Docker")
    assert "docker build -t lora-trainer-bot ." in docker
    # Published on loopback only: the reverse proxy reaches it, /metrics stays private.
    assert re.search(r"-v \S+:/data --env-file \.env -p 127\.0\.0\.1:8080:8080 ", docker)
    assert not re.search(r"-p (?!127\.0\.0\.1:)\S*8080", README)
    assert "python -m bot doctor" in README


def test_the_invite_link_and_permissions_are_the_bots() -> None:
    link = invite_url(1).replace("client_id=1&", "client_id=YOUR_APPLICATION_ID&")
    assert link in README
    assert f"Permissions, `{PERMISSIONS}` in all" in README
    for permission in REQUIRED_PERMISSIONS:
        assert f"| {permission.label} | {permission.why} |" in README.replace("`", "")


def test_the_pictures_exist_and_are_real_images() -> None:
    pictures = re.findall(r"!\[[^]]*\]\((docs/[^)]+\.png)\)", README)
    assert sorted(pictures) == ["docs/contact-sheet.png", "docs/epoch-grid.png"]
    for picture in pictures:
        with Image.open(ROOT / picture) as image:
            assert image.format == "PNG" and image.width >= 400 and image.height >= 300


def test_the_python_it_needs_is_stated() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    assert requires == ">=3.11"
    assert "It needs **Python 3.11 or newer**" in section("Set it up")


def test_the_exit_code_table_is_the_codes_the_bot_uses() -> None:
    table = README.split("<!-- exit-codes:start -->", 1)[1].split("<!-- exit-codes:end -->", 1)[0]
    documented = [int(code) for code in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)]
    assert documented == [code.value for code in ExitCode]
    assert "Cannot start: …" in README


def test_the_locked_install_is_the_one_the_image_runs() -> None:
    dockerfile = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    image = [line.split(None, 1)[1].split(" && ")[0] for line in dockerfile.splitlines() if line.startswith("RUN pip")]
    readme = [step.replace(".venv/bin/pip", "pip") for step in re.findall(r"\.venv/bin/pip install [^&`\n]+", README)]
    for command in image:
        # The README drops only the image's --no-cache-dir and --only-binary (a laptop may compile).
        wanted = command.replace("--no-cache-dir ", "").replace("--only-binary=:all: ", "")
        assert wanted.strip() in [step.strip() for step in readme], wanted


def test_the_console_script_the_demo_and_the_licence_are_named() -> None:
    assert "`lora-trainer-bot`" in README and "cp .env.example .env" in README
    assert "python -m tests.stage.demo" in section("Run the tests")
    assert "MIT: see `LICENSE`." in section("Licence")
