"""The OpenAPI documents travel with the repository, and their absence fails rather than skips."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from tests.shared_specs import SPECS_DIR, require_spec

NAMES = ("discord-openapi.json", "civitai-orchestration-v2-consumers.json")


def test_both_documents_are_vendored_with_their_source_noted() -> None:
    readme = (SPECS_DIR / "README.md").read_text(encoding="utf-8")
    for name in NAMES:
        path = require_spec(name)
        assert path.parent == SPECS_DIR
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}` |"))
        assert hashlib.sha256(path.read_bytes()).hexdigest() in row, f"update {name}'s sha256 in the README"
        assert re.search(r"\| 20\d\d-\d\d-\d\d \|", row), "the date it was copied"
        document = json.loads(path.read_text(encoding="utf-8"))
        stated = document["info"].get("license", {}).get("name")
        assert (stated or "none stated") in row, f"the README must give {name}'s licence as the document states it"


def test_a_missing_document_fails_the_test_instead_of_skipping(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="is missing"):
        require_spec("discord-openapi.json", folder=tmp_path)
