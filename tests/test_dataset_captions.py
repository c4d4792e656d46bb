"""Captions: pairing by name, counts, orphans, the trigger word, encodings."""

from __future__ import annotations

from pathlib import Path

from bot.dataset import DatasetStore, check_zip
from tests.dataset_helpers import image_bytes, make_zip, settings_for, zip_member, zip_names

JPEG = image_bytes()


def test_caption_counts_orphans_and_trigger_word(tmp_path: Path) -> None:
    files = {
        "a.jpg": JPEG,
        "a.txt": b"a photo of sks dog",
        "b.jpg": JPEG,
        "b.caption": b"a cat on a sofa",
        "c.jpg": JPEG,
        "d.jpg": JPEG,
        "d.txt": b"  \n",
        "e.jpg": JPEG,
        "e.txt": b"\xef\xbb\xbfSKS, running",
        "orphan.txt": b"no image for me",
        "f.jpg": JPEG,
        "f.txt": b"sksdog is not the word",
    }
    path = make_zip(tmp_path / "in.zip", files)
    result = check_zip(path, settings_for(tmp_path), trigger_word="sks", store=DatasetStore(tmp_path / "s", 30))
    assert result.accepted, result.refusals
    assert result.image_count == 6
    assert result.captioned == 4  # a, b, e, f; d's caption is blank
    assert sorted(result.uncaptioned) == ["c.jpg", "d.jpg"]
    assert result.orphan_captions == ["orphan.txt"]
    assert sorted(result.captions_missing_trigger) == ["b.caption", "f.txt"]
    changes = {(c.file, c.what) for c in result.changes}
    assert ("b.caption", "renamed to `b.txt`") in changes
    assert ("e.txt", "removed the byte-order mark") in changes
    assert result.zip_path is not None
    assert zip_names(result.zip_path) == [
        "a.jpg", "a.txt", "b.jpg", "b.txt", "c.jpg", "d.jpg", "d.txt", "e.jpg", "e.txt", "f.jpg", "f.txt"
    ]  # fmt: skip
    assert zip_member(result.zip_path, "e.txt") == b"SKS, running"
    text = " ".join(result.warnings)
    assert "2 of 6 images have no caption" in text
    assert "2 captions do not contain the trigger word “sks”" in text
    assert "1 caption has no image" in text
    assert any(s.file == "orphan.txt" for s in result.skipped)


def test_non_utf8_captions_are_errors_naming_the_file(tmp_path: Path) -> None:
    files = {
        "a.jpg": JPEG,
        "a.txt": "café au lait".encode("cp1252"),
        "b.jpg": JPEG,
        "b.txt": "hello".encode("utf-16"),
    }
    result = check_zip(make_zip(tmp_path / "in.zip", files), settings_for(tmp_path))
    assert not result.accepted
    reasons = {r.file: f"{r.reason} {r.fix}" for r in result.refusals}
    assert "not UTF-8" in reasons["a.txt"] and "byte 3" in reasons["a.txt"]
    assert "UTF-16" in reasons["b.txt"] and "UTF-8" in reasons["b.txt"]


def test_oversized_caption_is_refused(tmp_path: Path) -> None:
    files = {"a.jpg": JPEG, "a.txt": b"word " * 20_000}
    result = check_zip(make_zip(tmp_path / "in.zip", files), settings_for(tmp_path))
    assert not result.accepted and result.refusals[0].file == "a.txt"


def test_no_captions_at_all_warns_once(tmp_path: Path) -> None:
    result = check_zip(make_zip(tmp_path / "in.zip", {"a.jpg": JPEG, "b.jpg": JPEG}), settings_for(tmp_path))
    assert result.accepted
    assert [w for w in result.warnings if "caption" in w] == [
        "No image has a caption: training relies on the trigger word alone."
    ]
