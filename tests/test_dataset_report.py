"""The normalised zip (deterministic, stable when re-checked), the store, counts and the report."""

from __future__ import annotations

import io
import json
import os
import re
import time
import zipfile
from pathlib import Path

from PIL import Image

from bot.dataset import DatasetResult, DatasetStore, Refusal, check_zip
from bot.dataset.report import Change
from tests.dataset_helpers import image_bytes, make_zip, settings_for

MIXED = {
    "set/b.png": image_bytes("PNG", mode="P"),
    "set/a.jpg": image_bytes("JPEG", size=(100, 90)),
    "set/a.txt": b"\xef\xbb\xbfsks portrait",
    "c.webp": image_bytes("WEBP", quality=70),
    "__MACOSX/set/._a.jpg": b"junk",
}


def test_same_input_gives_the_same_bytes_and_digest(tmp_path: Path) -> None:
    first = make_zip(tmp_path / "one.zip", MIXED, date_time=(2020, 1, 1, 0, 0, 0))
    # The same files in another order, with other timestamps and compression.
    reordered = dict(reversed(list(MIXED.items())))
    second = make_zip(tmp_path / "two.zip", reordered, compression=zipfile.ZIP_STORED, date_time=(2024, 9, 9, 9, 9, 8))
    store = DatasetStore(tmp_path / "store", 30)
    one = check_zip(first, settings_for(tmp_path), store=store)
    two = check_zip(second, settings_for(tmp_path), store=store)
    assert one.accepted and two.accepted
    assert one.digest == two.digest
    assert one.zip_path == two.zip_path and one.zip_path is not None
    assert one.zip_path.name == f"{one.digest}.zip"
    with zipfile.ZipFile(one.zip_path) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["a.jpg", "a.txt", "b.png", "c.jpg"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_a_normalised_zip_checked_again_is_accepted_unchanged(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "store", 30)
    first = check_zip(make_zip(tmp_path / "in.zip", MIXED), settings_for(tmp_path), store=store)
    assert first.accepted and first.changes and first.zip_path is not None
    again = check_zip(first.zip_path, settings_for(tmp_path), store=DatasetStore(tmp_path / "other", 30))
    assert again.accepted
    assert again.digest == first.digest
    assert again.changes == [] and again.skipped == []
    assert again.image_count == first.image_count == 3
    assert again.zip_path is not None and again.zip_path.read_bytes() == first.zip_path.read_bytes()


def test_offline_check_keeps_nothing_but_reports_the_digest(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    result = check_zip(make_zip(tmp_path / "in.zip", MIXED), settings)
    assert result.accepted and result.digest and result.zip_path is None
    assert not (settings.data_dir / "datasets").exists()
    assert list((settings.data_dir / "tmp").iterdir()) == []


def test_store_put_path_for_and_retention(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "store", retention_days=30)
    source = tmp_path / "x.zip"
    source.write_bytes(b"dataset one")
    digest = store.put(source)
    assert not source.exists()
    path = store.path_for(digest)
    assert path is not None and path.read_bytes() == b"dataset one"
    assert store.path_for("../../etc/passwd") is None
    assert store.path_for("0" * 64) is None
    old = time.time() - 31 * 86400
    os.utime(path, (old, old))
    assert store.purge_expired() == [digest]
    assert store.path_for(digest) is None


def test_image_count_limits(tmp_path: Path) -> None:
    three = {f"{i}.jpg": image_bytes() for i in range(3)}
    too_few = check_zip(make_zip(tmp_path / "a.zip", three), settings_for(tmp_path, min_images=4))
    assert not too_few.accepted and "at least 4" in too_few.refusals[0].reason
    too_many = check_zip(make_zip(tmp_path / "b.zip", three), settings_for(tmp_path, max_images=2))
    assert not too_many.accepted and "limit is 2" in too_many.refusals[0].reason
    warned = check_zip(make_zip(tmp_path / "c.zip", three), settings_for(tmp_path))
    assert warned.accepted and any("Only 3 images" in w for w in warned.warnings)
    empty = check_zip(make_zip(tmp_path / "d.zip", {"readme.md": b"hi"}), settings_for(tmp_path))
    assert not empty.accepted and "no images" in empty.refusals[0].reason


def test_contact_sheet_is_a_readable_grid_with_more_marker(tmp_path: Path) -> None:
    files = {f"img{i:02}.jpg": image_bytes(size=(96, 96)) for i in range(50)}
    result = check_zip(make_zip(tmp_path / "in.zip", files), settings_for(tmp_path))
    assert result.contact_sheet is not None
    sheet = Image.open(io.BytesIO(result.contact_sheet))
    assert sheet.format == "PNG"
    assert 1000 <= sheet.width <= 1600
    assert sheet.height < 1400  # 48 tiles in 6 rows, the 49th cell says "+2 more"


def test_text_is_bounded_and_says_how_many_more() -> None:
    result = DatasetResult(source="big.zip")
    result.refusals = [Refusal(f"photo_{i:04}.jpg", "The image is damaged.", "Export it again.") for i in range(500)]
    result.changes = [Change(f"x{i}.png", "converted", "because") for i in range(300)]
    result.warnings = ["a warning " * 30 for _ in range(20)]
    text = result.to_text()
    assert len(text) <= 3500
    assert "**Dataset refused**: 500 problems to fix" in text
    more = re.search(r"- and (\d+) more\n\*\*Warnings", text)
    assert more is not None
    assert text.count("`photo_") + int(more.group(1)) == 500


def test_json_report_has_every_section(tmp_path: Path) -> None:
    result = check_zip(make_zip(tmp_path / "in.zip", MIXED), settings_for(tmp_path), trigger_word="sks")
    data = json.loads(result.to_json())
    assert data["accepted"] is True and data["image_count"] == 3
    assert data["resolution"]["max"] == {"width": 100, "height": 90}
    assert data["formats"] == {"JPEG": 1, "PNG": 1, "WEBP": 1}
    assert {c["file"] for c in data["changes"]} >= {"set/a.txt", "set/b.png", "c.webp"}
    assert data["skipped"] == [{"file": "__MACOSX/set/._a.jpg", "reason": "macOS metadata (__MACOSX/)"}]
    assert data["digest"] == result.digest and data["contact_sheet_bytes"] > 0
    assert data["captions_missing_trigger"] == []
    text = result.to_text()
    assert "**Dataset accepted**: 3 images, 1 captioned" in text and "WEBP → JPEG" in text
