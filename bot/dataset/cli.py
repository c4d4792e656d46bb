"""``python -m bot dataset check FILE.zip``: the dataset report, offline."""

from __future__ import annotations

import sys
from pathlib import Path

from bot.config import Settings
from bot.dataset.check import check_zip


def check_command(
    file: str,
    *,
    as_json: bool,
    settings: Settings,
    trigger_word: str | None = None,
    contact_sheet: str | None = None,
) -> int:
    """Print the report; exit 0 when accepted, 1 when refused, 2 when the file is missing.

    Nothing is kept: the normalised zip is built only to report its digest.
    """
    path = Path(file)
    if not path.is_file():
        print(f"No such file: {file}. Give the path to a .zip file.", file=sys.stderr)
        return 2
    result = check_zip(path, settings, trigger_word=trigger_word, store=None)
    if contact_sheet and result.contact_sheet:
        Path(contact_sheet).write_bytes(result.contact_sheet)
    print(result.to_json() if as_json else result.to_text())
    return 0 if result.accepted else 1
