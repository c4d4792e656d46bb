"""``python -m bot dataset check``: exit codes, JSON, text, run as the operator would."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from tests.dataset_helpers import image_bytes, make_zip
from tests.test_entrypoint import clean_env, run_module

MARKDOWN = re.compile(r"\*\*|`")


def env_for(tmp_path: Path) -> dict[str, str]:
    return clean_env() | {"DATA_DIR": str(tmp_path / "data")}


def check(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = run_module("dataset", "check", *args, env=env or env_for(tmp_path), cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def test_accepted_dataset_exits_0_with_json(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "good.zip", {"a.jpg": image_bytes(), "a.txt": b"sks man", "b.webp": image_bytes("WEBP")})
    sheet = tmp_path / "sheet.png"
    code, stdout, stderr = check(tmp_path, str(path), "--json", "--trigger-word", "sks", "--sheet", str(sheet))
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["accepted"] is True and report["image_count"] == 2
    assert report["digest"] and len(report["digest"]) == 64 and report["zip_path"] is None
    assert Image.open(sheet).format == "PNG"
    assert not (tmp_path / "data" / "datasets").exists()  # the offline check keeps nothing


def test_refused_dataset_exits_1_and_says_why_in_plain_text(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "bad.zip", {"a.jpg": image_bytes()[:200], "b.jpg": image_bytes()})
    code, stdout, _ = check(tmp_path, str(path), "--json")
    assert code == 1
    report = json.loads(stdout)
    assert report["accepted"] is False
    assert report["refusals"][0]["file"] == "a.jpg" and "cut short" in report["refusals"][0]["reason"]
    code, stdout, _ = check(tmp_path, str(path))
    assert code == 1
    # A terminal shows Markdown as noise: the Discord report's **bold** and `code` are gone.
    assert stdout.startswith("Dataset refused: 1 problem to fix") and "- a.jpg: " in stdout
    assert not MARKDOWN.search(stdout), stdout


def test_warnings_in_json_are_plain_and_counts_agree_with_their_nouns(tmp_path: Path) -> None:
    # One small image, with a caption without the trigger word, and one caption without an image.
    small = image_bytes(size=(200, 160))
    path = make_zip(tmp_path / "one.zip", {"dir/a.jpg": small, "dir/a.txt": b"a man", "dir/orphan.txt": b"x"})
    code, stdout, _ = check(tmp_path, str(path), "--json", "--trigger-word", "sks")
    assert code == 0
    warnings = json.loads(stdout)["warnings"]
    assert warnings, stdout
    for text in [*warnings, *(c["what"] for c in json.loads(stdout)["changes"])]:
        assert not MARKDOWN.search(text), text
    joined = " | ".join(warnings)
    assert "Only 1 image:" in joined
    assert "1 image is under" in joined
    assert "1 caption does not contain the trigger word" in joined
    assert "1 caption has no image and was left out: dir/orphan.txt" in joined

    code, stdout, _ = check(tmp_path, str(path), "--trigger-word", "sks")
    assert stdout.startswith("Dataset accepted: 1 image, 1 captioned"), stdout
    assert "1 images" not in stdout and "1 files" not in stdout and "1 captions" not in stdout
    assert not MARKDOWN.search(stdout), stdout


def test_a_zip_cut_short_is_called_damaged_not_another_archive_type(tmp_path: Path) -> None:
    whole = make_zip(tmp_path / "whole.zip", {f"{n}.jpg": image_bytes() for n in range(3)}).read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole[: len(whole) // 2])
    code, stdout, _ = check(tmp_path, str(cut))
    assert code == 1
    assert "damaged or cut short" in stdout
    assert ".rar" not in stdout and ".7z" not in stdout
    # Something that is not a zip at all still gets the archive-type advice.
    other = tmp_path / "photos.rar"
    other.write_bytes(b"Rar!\x1a\x07\x00" + b"\x00" * 100)
    code, stdout, _ = check(tmp_path, str(other))
    assert code == 1 and "not a zip" in stdout and ".rar" in stdout


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_missing_file_and_folder_exit_2_with_what_to_do(tmp_path: Path, as_json: bool) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    flags = ["--json"] if as_json else []
    for target, expected in ((tmp_path / "nope.zip", "No such file"), (folder, "is a folder, not a zip: zip it")):
        code, stdout, stderr = check(tmp_path, str(target), *flags)
        assert code == 2
        if as_json:
            # With --json, whatever happens, standard output is JSON.
            assert expected in json.loads(stdout)["error"] and stderr == ""
        else:
            assert expected in stderr and stdout == ""


def test_with_json_a_settings_error_is_json_too(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "good.zip", {"a.jpg": image_bytes()})
    env = env_for(tmp_path) | {"POLL_DELAYS_SECONDS": "2,5"}
    code, stdout, _ = check(tmp_path, str(path), "--json", env=env)
    assert code == 2
    assert "POLL_DELAYS_SECONDS" in json.loads(stdout)["error"]


def test_the_check_leaves_nothing_in_the_current_folder(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "good.zip", {"a.jpg": image_bytes(), "b.jpg": image_bytes()})
    env = {k: v for k, v in clean_env().items() if k != "DATA_DIR"}  # DATA_DIR left at ./data
    before = set(os.listdir(tmp_path))
    code, _, _ = check(tmp_path, str(path), "--sheet", str(tmp_path / "sheet.png"), env=env)
    assert code == 0
    assert set(os.listdir(tmp_path)) - before == {"sheet.png"}
