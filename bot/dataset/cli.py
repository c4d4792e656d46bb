"""``python -m bot dataset check FILE.zip``: the dataset report, offline, in a terminal.

The report is plain text here (the Markdown is for Discord); with ``--json`` everything printed,
errors included, is JSON on standard output. The check works in a temporary folder of its own,
so it leaves nothing behind, wherever it is run from.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bot.config import Settings
from bot.dataset.check import check_zip
from bot.startup import StartupError

EXIT_ACCEPTED, EXIT_REFUSED, EXIT_UNUSABLE = 0, 1, 2


def _fail(message: str, *, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"accepted": False, "error": message}, ensure_ascii=False))
    else:
        print(message, file=sys.stderr)
    return EXIT_UNUSABLE


def _unusable_path(path: Path) -> str | None:
    if path.is_dir():
        return f"{path} is a folder, not a zip: zip it first (right-click → Compress), then give the .zip file."
    if not path.exists():
        return f"No such file: {path}. Give the path to a .zip file."
    if not path.is_file():
        return f"{path} is not a regular file. Give the path to a .zip file."
    return None


def check_command(
    file: str,
    *,
    as_json: bool,
    settings: Callable[[], Settings],
    trigger_word: str | None = None,
    contact_sheet: str | None = None,
) -> int:
    """Print the report; exit 0 when accepted, 1 when refused, 2 when the check could not run.

    ``settings`` loads them (its errors are reported like the others). Nothing is kept: the
    normalised zip is built only to report its digest.
    """
    path = Path(file)
    problem = _unusable_path(path)
    if problem is not None:
        return _fail(problem, as_json=as_json)
    try:
        loaded = settings()
    except StartupError as exc:
        return _fail(str(exc), as_json=as_json)
    with tempfile.TemporaryDirectory(prefix="lora-dataset-check-") as scratch:
        # Only the limits matter offline: the work files go to a temporary DATA_DIR, not ./data.
        result = check_zip(path, loaded.model_copy(update={"data_dir": Path(scratch)}), trigger_word=trigger_word)
    if contact_sheet and result.contact_sheet:
        try:
            Path(contact_sheet).write_bytes(result.contact_sheet)
        except OSError as exc:
            return _fail(f"Cannot write the contact sheet to {contact_sheet}: {exc.strerror or exc}", as_json=as_json)
    print(result.to_json() if as_json else result.to_plain_text())
    return EXIT_ACCEPTED if result.accepted else EXIT_REFUSED
