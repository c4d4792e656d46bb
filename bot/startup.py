"""What the bot checks before it starts, and how it says no: one line and an exit code.

Every failure an operator can fix (a setting, the data folder, the network, the token) ends the
process with ``Cannot start: …`` naming the fix, and an exit status from ``ExitCode`` (the
README's table lists them), never a traceback. A traceback means a bug.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import typing
from enum import IntEnum
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError

from bot.config import DatasetTransport, Settings
from bot.web.signing import public_url_problems

log = logging.getLogger(__name__)

DATA_DIR_FIX = "set DATA_DIR to a folder the bot's user can write (with Docker: mount a volume on /data)"
_FIELD_IN_SETTINGS_ERROR = re.compile(r'field "(\w+)"')


class ExitCode(IntEnum):
    """The process's exit status; the README's "Exit codes" table is checked against this."""

    STOPPED = 0  # stopped on SIGTERM/SIGINT after running normally
    BUG = 1  # an unexpected error: the traceback is in the log; please report it
    SETTINGS = 2  # a setting is missing or invalid (.env or the environment)
    DATA_DIR = 3  # DATA_DIR cannot be created or written
    DISCORD_REFUSED_TOKEN = 4  # Discord refused DISCORD_TOKEN
    DISCORD_UNREACHABLE = 5  # Discord could not be reached (network, DNS, DISCORD_API_BASE)


class StartupError(Exception):
    """A reason not to start, fit to print as one line; ``problems`` lists each one found."""

    def __init__(self, code: ExitCode, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.problems = problems or [message]

    def line(self) -> str:
        return f"Cannot start: {self}"


# -- settings ----------------------------------------------------------------------------------


def _unreadable_value(exc: SettingsError) -> str:
    """pydantic-settings reads list-like settings as JSON and says only which field failed."""
    found = _FIELD_IN_SETTINGS_ERROR.search(str(exc))
    if found is None or found.group(1) not in Settings.model_fields:
        return f"a setting could not be read ({exc}): check the values in .env and the environment"
    field = found.group(1)
    annotation = Settings.model_fields[field].annotation
    if typing.get_origin(annotation) in (tuple, list):
        return f"{field.upper()}: could not be read: write it as a JSON list, e.g. {field.upper()}=[2, 5, 10]"
    return f"{field.upper()}: could not be read: write it as JSON"


def load_settings() -> Settings:
    """The settings from the environment and .env, or a StartupError naming each bad value."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()]
    except SettingsError as exc:
        problems = [_unreadable_value(exc)]
    message = "; ".join(problems) + " (fix it in .env or the environment)"
    raise StartupError(ExitCode.SETTINGS, message, problems)


# -- the data folder ---------------------------------------------------------------------------


def data_dir_problem(folder: Path) -> str | None:
    """Why DATA_DIR cannot hold the bot's files, or None; it is created when missing."""
    folder = folder.resolve()
    if folder.exists() and not folder.is_dir():
        return f"DATA_DIR {folder} is a file, not a folder"
    probe = folder / f".write-test-{secrets.token_hex(4)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as file:
            file.write(b"probe")
            file.flush()
            os.fsync(file.fileno())
        probe.unlink()
    except OSError as exc:
        return f"cannot write to {folder} ({exc.strerror or exc})"
    return None


# -- PUBLIC_URL --------------------------------------------------------------------------------


def usable_public_url(settings: Settings) -> Settings:
    """Settings the bot can run with, given PUBLIC_URL's shape (the doctor applies the same rules).

    A PUBLIC_URL the orchestrator refuses (http://, a port, a query…) would fail every /train.
    With DATASET_TRANSPORT=hosted the bot cannot work without it, so it refuses to start; with
    ``auto`` or ``blobs`` it warns and runs without it: jobs are polled, datasets go as blobs.
    """
    hosted = settings.dataset_transport is DatasetTransport.HOSTED
    if not settings.public_url:
        if hosted:
            raise StartupError(
                ExitCode.SETTINGS, "DATASET_TRANSPORT=hosted needs PUBLIC_URL: set it, or set DATASET_TRANSPORT=auto"
            )
        return settings
    problems = public_url_problems(settings.public_url)
    if not problems:
        return settings
    if hosted:
        raise StartupError(ExitCode.SETTINGS, f"{problems[0]} (DATASET_TRANSPORT=hosted needs a usable PUBLIC_URL)")
    log.warning(
        "Ignoring PUBLIC_URL %s: %s. Jobs are followed by polling and datasets uploaded as blobs until it is fixed "
        "(python -m bot doctor checks it).",
        settings.public_url,
        "; ".join(problems),
    )
    return settings.model_copy(update={"public_url": None})


def checked(settings: Settings) -> Settings:
    """Everything to check once logging is set up and before connecting to Discord."""
    problem = data_dir_problem(settings.data_dir)
    if problem is not None:
        raise StartupError(ExitCode.DATA_DIR, f"{problem}: {DATA_DIR_FIX}")
    return usable_public_url(settings)
