"""Run the Dockerfile's install steps in a fresh venv, as ``docker build`` would.

There is no docker engine in CI, so this reads the Dockerfile itself: its COPY instructions lay
out a build context in a temporary folder and its ``pip`` commands run there with a fresh venv's
pip (the other commands of a RUN, such as useradd, are the image's business). Then every module
of the installed package must import, ``pip check`` must pass and the console script must run:
a dependency missing from the lock file, or a lock that no longer installs, fails CI.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT_EVERYTHING = (
    "import importlib, pkgutil\n"
    "for name in ('bot', 'cogs', 'storage'):\n"
    "    package = importlib.import_module(name)\n"
    "    for module in pkgutil.walk_packages(package.__path__, name + '.'):\n"
    "        importlib.import_module(module.name)\n"
)


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def copy_into(context: Path, args: str) -> None:
    *sources, destination = shlex.split(args)
    target = context / destination
    for source in sources:
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.name)


def run(argv: list[str], cwd: Path) -> None:
    print("+", shlex.join(argv), flush=True)
    subprocess.run(argv, cwd=cwd, check=True)


def main() -> int:
    steps = instructions((ROOT / "Dockerfile").read_text(encoding="utf-8"))
    base = next(args for keyword, args in steps if keyword == "FROM")
    wanted = re.match(r"python:(\d+\.\d+)", base)
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if wanted is None or wanted.group(1) != running:
        print(f"the image is {base}; this Python is {running}: run this with the image's Python", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="docker-steps-") as scratch:
        context, environment = Path(scratch) / "app", Path(scratch) / "venv"
        context.mkdir()
        venv.create(environment, with_pip=True)
        python = environment / "bin" / "python"
        for keyword, args in steps:
            if keyword == "COPY":
                copy_into(context, args)
            elif keyword == "RUN":
                for command in args.split("&&"):
                    argv = shlex.split(command)
                    if argv and argv[0] == "pip":
                        run([str(python), "-m", "pip", *argv[1:]], cwd=context)
        run([str(python), "-m", "pip", "check"], cwd=context)
        run([str(python), "-c", IMPORT_EVERYTHING], cwd=Path(scratch))
        run([str(environment / "bin" / "lora-trainer-bot"), "--help"], cwd=Path(scratch))
    print("The Dockerfile's install steps work from requirements.lock.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
