"""Where the shared documents (``../shared``) are, and a skip with a reason when absent.

CI lays ``shared/`` beside the clone; developer worktrees may sit deeper, so the search walks
up from the repository root. ``LORA_SHARED_DIR`` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    override = os.environ.get("LORA_SHARED_DIR")
    if override:
        return Path(override) if Path(override).is_dir() else None
    for parent in REPO_ROOT.parents:
        candidate = parent / "shared"
        if (candidate / "specs").is_dir():
            return candidate
    return None


def spec_path(name: str) -> Path | None:
    """Path of ``shared/specs/NAME`` or None when the shared folder is not here."""
    base = shared_dir()
    path = base / "specs" / name if base else None
    return path if path and path.is_file() else None


def require_spec(name: str) -> Path:
    """The spec's path, or skip the calling test with a visible reason."""
    path = spec_path(name)
    if path is None:
        pytest.skip(f"../shared/specs/{name} is absent: OpenAPI validation not run")
    return path
