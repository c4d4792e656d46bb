"""The official OpenAPI documents, vendored in tests/specs (see its README for source and licence).

The suite validates requests against them with nothing beside the clone. A missing document is
a failure, never a skip: a skipped validation would let an invalid request pass unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SPECS_DIR = REPO_ROOT / "tests" / "specs"


def spec_path(name: str, folder: Path = SPECS_DIR) -> Path:
    """Path of ``tests/specs/NAME``; fails the calling test when the document is missing."""
    path = folder / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: restore it from git (see tests/specs/README.md); OpenAPI validation needs it")
    return path


# Kept for the call sites that read as "this test needs the document".
require_spec = spec_path
