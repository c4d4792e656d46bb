"""What a self-hoster installs: declared dependencies, the lock file, the image, the licence.

``docker build`` is not available in CI; .ci/docker_steps.py runs the Dockerfile's pip steps from
the lock file in a fresh venv instead. These tests check, offline, what those steps rely on.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from bot.config import Settings
from bot.settings_doc import env_example

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
LOCK = (ROOT / "requirements.lock").read_text(encoding="utf-8")
PACKAGES = ("bot", "cogs", "storage")


def runtime_requirements() -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, PYPROJECT["project"]["dependencies"])}


def locked() -> dict[str, tuple[Version, list[str]]]:
    """name → (version, hashes) for each ``name==version`` block of the lock file."""
    pins: dict[str, tuple[Version, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK):
        found = re.match(r"([A-Za-z0-9._-]+)==(\S+)", block)
        if found:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
            pins[canonicalize_name(found.group(1))] = (Version(found.group(2)), hashes)
    return pins


def third_party_imports() -> set[str]:
    local = {*PACKAGES, "tests"}
    names: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return {name for name in names if name not in local and name not in sys.stdlib_module_names}


def test_every_imported_distribution_is_declared() -> None:
    declared = set(runtime_requirements())
    providers = packages_distributions()
    undeclared = {
        module: providers.get(module)
        for module in third_party_imports()
        if not {canonicalize_name(d) for d in providers.get(module, [module])} & declared
    }
    assert undeclared == {}, "add these to [project] dependencies in pyproject.toml"


def test_the_build_backend_reads_the_spdx_licence_and_the_licence_is_there() -> None:
    (setuptools,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert not setuptools.specifier.contains("76.9"), "license = 'MIT' needs setuptools>=77"
    assert PYPROJECT["project"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n")


def test_the_console_script_is_declared() -> None:
    assert PYPROJECT["project"]["scripts"] == {"lora-trainer-bot": "bot.__main__:main"}


def test_the_lock_pins_every_dependency_within_its_range_with_hashes() -> None:
    pins = locked()
    for name, requirement in runtime_requirements().items():
        assert name in pins, f"{name} is not in requirements.lock: run pip-compile (see README)"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), f"{name}=={version} is outside {requirement}"
    assert all(hashes for _, hashes in pins.values()), "every pin carries its hashes (pip --require-hashes)"
    # The image builds the bot with --no-build-isolation: the build backend is locked too.
    (backend,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert backend.specifier.contains(pins["setuptools"][0])


def steps() -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line for line in joined.splitlines() if line and not line.startswith("#")]


def test_the_image_installs_the_lock_in_its_own_layer_before_the_source() -> None:
    lines = steps()
    lock_copy = lines.index("COPY requirements.lock ./")
    lock_install = next(i for i, line in enumerate(lines) if line.startswith("RUN ") and "requirements.lock" in line)
    first_source = next(i for i, line in enumerate(lines) if line.startswith("COPY bot "))
    assert lock_copy < lock_install < first_source
    assert "--require-hashes" in lines[lock_install]
    package_install = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install") and " ." in line)
    assert package_install > first_source and "--no-deps" in lines[package_install]


def test_the_base_image_is_pinned() -> None:
    (base,) = [line.split()[1] for line in steps() if line.startswith("FROM ")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base


def test_the_dockerfile_is_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_dockerfile_steps_from_the_lock() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 .ci/docker_steps.py" in ci and 'wait "$docker_steps"' in ci


def test_env_example_is_generated_and_its_defaults_are_the_defaults(tmp_path: Path) -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert text == env_example(), "run: PYTHONPATH=. python -m bot.settings_doc --env-example .env.example"
    for field in Settings.model_fields:
        assert re.search(rf"^(# )?{field.upper()}=", text, re.MULTILINE), field
    # As written it reads as the defaults; with every line uncommented, too.
    uncommented = tmp_path / "all.env"
    uncommented.write_text(re.sub(r"^# (?=[A-Z_]+=)", "", text, flags=re.MULTILINE), encoding="utf-8")
    defaults = Settings(_env_file=None).model_dump()  # type: ignore[call-arg]
    assert Settings(_env_file=ROOT / ".env.example").model_dump() == defaults  # type: ignore[call-arg]
    assert Settings(_env_file=uncommented).model_dump() == defaults  # type: ignore[call-arg]


def test_ci_fails_when_the_test_command_fails(tmp_path: Path) -> None:
    """The test command is an && list, which ``set -e`` does not stop on: CI must still fail."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    _, tail = ci.split('# The test command (kept identical to README.md, "Run the tests"):\n', 1)
    command, rest = tail.split("\n", 1)
    script = tmp_path / "run"
    # The same script around a failing test command and a docker step that succeeds.
    script.write_text("set -euo pipefail\ntrue & docker_steps=$!\ndocker_log=/dev/null\nfalse && true\n" + rest)
    assert subprocess.run(["bash", str(script)], capture_output=True, timeout=30).returncode != 0
    assert command == "ruff check . && mypy && pytest -q -n 2 -p no:cacheprovider"
