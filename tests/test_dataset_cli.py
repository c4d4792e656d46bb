"""``python -m bot dataset check``: exit codes, JSON, text, run as the operator would."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from tests.dataset_helpers import image_bytes, make_zip
from tests.test_entrypoint import clean_env, run_module


def env_for(tmp_path: Path) -> dict[str, str]:
    return clean_env() | {"DATA_DIR": str(tmp_path / "data")}


def test_accepted_dataset_exits_0_with_json(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "good.zip", {"a.jpg": image_bytes(), "a.txt": b"sks man", "b.webp": image_bytes("WEBP")})
    sheet = tmp_path / "sheet.png"
    result = run_module(
        "dataset", "check", str(path), "--json", "--trigger-word", "sks", "--sheet", str(sheet),
        env=env_for(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["accepted"] is True and report["image_count"] == 2
    assert report["digest"] and len(report["digest"]) == 64 and report["zip_path"] is None
    assert Image.open(sheet).format == "PNG"
    assert not (tmp_path / "data" / "datasets").exists()  # the offline check keeps nothing


def test_refused_dataset_exits_1_and_says_why(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "bad.zip", {"a.jpg": image_bytes()[:200], "b.jpg": image_bytes()})
    as_json = run_module("dataset", "check", str(path), "--json", env=env_for(tmp_path), cwd=tmp_path)
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["accepted"] is False
    assert report["refusals"][0]["file"] == "a.jpg" and "cut short" in report["refusals"][0]["reason"]
    as_text = run_module("dataset", "check", str(path), env=env_for(tmp_path), cwd=tmp_path)
    assert as_text.returncode == 1
    assert "**Dataset refused**" in as_text.stdout and "`a.jpg`" in as_text.stdout


def test_missing_file_exits_2_with_a_message(tmp_path: Path) -> None:
    result = run_module("dataset", "check", str(tmp_path / "nope.zip"), env=env_for(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "No such file" in result.stderr and "Traceback" not in result.stderr
