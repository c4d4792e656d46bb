"""Zip structure: what is refused, what is skipped, how names are read and flattened, bombs."""

from __future__ import annotations

import stat
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from bot.dataset import DatasetError, DatasetResult, check_zip
from bot.dataset.archive import ByteBudget, read_entry
from tests.dataset_helpers import (
    add_entry,
    image_bytes,
    make_zip,
    patch_headers,
    settings_for,
    zip_names,
)

JPEG = image_bytes()


def check(tmp_path: Path, files: dict[str, bytes], **settings: object) -> DatasetResult:
    path = make_zip(tmp_path / "in.zip", files)
    return check_zip(path, settings_for(tmp_path, **settings))


def refusal_for(result: DatasetResult, file: str | None) -> str:
    reasons = [f"{r.reason} {r.fix}" for r in result.refusals if r.file == file]
    assert reasons, f"no refusal for {file}: {result.refusals}"
    return reasons[0]


def test_not_a_zip_is_refused_with_a_fix(tmp_path: Path) -> None:
    path = tmp_path / "photos.zip"
    path.write_bytes(b"Rar!\x1a\x07\x00" + b"\x00" * 100)
    result = check_zip(path, settings_for(tmp_path))
    assert not result.accepted
    assert "not a zip" in result.refusals[0].reason
    assert ".rar" in result.refusals[0].fix


def test_truncated_zip_is_refused(tmp_path: Path) -> None:
    whole = make_zip(tmp_path / "whole.zip", {"a.jpg": JPEG}).read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole[: len(whole) // 2])
    result = check_zip(cut, settings_for(tmp_path))
    assert not result.accepted and result.refusals[0].file is None


def test_encrypted_entry_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "in.zip", {"a.jpg": JPEG, "b.jpg": JPEG})
    path.write_bytes(patch_headers(path.read_bytes(), b"b.jpg", flag_bits=0x1))
    result = check_zip(path, settings_for(tmp_path))
    assert "password" in refusal_for(result, "b.jpg")


@pytest.mark.parametrize(
    ("name", "words"),
    [("/etc/a.jpg", "absolute"), ("C:\\Users\\me\\a.jpg", "absolute"), ("photos/../../a.jpg", "..")],
)
def test_unsafe_paths_are_refused(tmp_path: Path, name: str, words: str) -> None:
    result = check(tmp_path, {"ok.jpg": JPEG, name: JPEG})
    assert words in refusal_for(result, name.replace("\\", "/"))
    assert not result.accepted


def test_symlink_entry_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "in.zip", {"a.jpg": JPEG})
    link = zipfile.ZipInfo("b.jpg")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    add_entry(path, link, b"/etc/passwd")
    result = check_zip(path, settings_for(tmp_path))
    assert "symbolic link" in refusal_for(result, "b.jpg")


@pytest.mark.parametrize("name", ["more.zip", "set/old.rar", "x.7z", "y.tar.gz"])
def test_nested_archives_are_refused(tmp_path: Path, name: str) -> None:
    result = check(tmp_path, {"a.jpg": JPEG, name: b"PK\x03\x04 whatever"})
    assert "Archives inside" in refusal_for(result, name)


def test_junk_is_skipped_with_a_note_and_left_out(tmp_path: Path) -> None:
    junk = {
        "__MACOSX/photos/._a.jpg": b"\x00\x05\x16\x07",
        "photos/._a.jpg": b"\x00\x05\x16\x07",
        "photos/.DS_Store": b"\x00\x00\x00\x01Bud1",
        "Thumbs.db": b"\xd0\xcf\x11\xe0",
        "photos/desktop.ini": b"[.ShellClassInfo]",
        "notes.pdf": b"%PDF-1.4",
    }
    result = check(tmp_path, {"photos/a.jpg": JPEG, **junk})
    assert result.accepted, result.refusals
    assert {s.file for s in result.skipped} == set(junk)
    reasons = {s.file: s.reason for s in result.skipped}
    assert "macOS" in reasons["__MACOSX/photos/._a.jpg"] and "Windows" in reasons["Thumbs.db"]
    assert "not an image" in reasons["notes.pdf"]
    assert result.image_count == 1
    assert "Skipped (6)" in result.to_text()


def test_nested_folders_and_backslashes_are_flattened(tmp_path: Path) -> None:
    files = {"photos\\set one\\a.jpg": JPEG, "photos\\set one\\a.txt": b"sks", "deep/er/b.jpg": JPEG}
    store_dir = tmp_path / "store"
    from bot.dataset import DatasetStore

    store = DatasetStore(store_dir, 30)
    path = make_zip(tmp_path / "in.zip", files)
    result = check_zip(path, settings_for(tmp_path), store=store)
    assert result.accepted, result.refusals
    assert result.zip_path is not None
    assert zip_names(result.zip_path) == ["a.jpg", "a.txt", "b.jpg"]
    assert result.captioned == 1
    assert any("sub-folders" in c.what for c in result.changes)


def test_duplicate_names_after_flattening_are_refused_naming_both(tmp_path: Path) -> None:
    result = check(tmp_path, {"one/x.jpg": JPEG, "two/x.jpg": JPEG, "y.jpg": JPEG, "Y.png": image_bytes("PNG")})
    text = " ".join(r.reason for r in result.refusals)
    assert "`one/x.jpg`" in text and "`two/x.jpg`" in text
    assert "`y.jpg`" in text and "`Y.png`" in text
    assert not result.accepted


def rename_in_zip(data: bytes, placeholder: bytes, real: bytes) -> bytes:
    assert len(placeholder) == len(real) and data.count(placeholder) == 2  # local + central header
    return data.replace(placeholder, real)


def test_cp437_and_unflagged_utf8_names_are_decoded(tmp_path: Path) -> None:
    # Without the UTF-8 flag: one name in cp437 (0x82 is é), one in UTF-8 as many tools write.
    path = make_zip(tmp_path / "in.zip", {"caf_.jpg": JPEG, "th__.jpg": JPEG, "thé.txt": b"tea"})
    data = rename_in_zip(path.read_bytes(), b"caf_.jpg", b"caf\x82.jpg")
    path.write_bytes(rename_in_zip(data, b"th__.jpg", "thé.jpg".encode()))
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("thé.jpg".encode().decode("cp437")).flag_bits & 0x800 == 0
    store_result = check_zip(path, settings_for(tmp_path))
    assert store_result.accepted, store_result.refusals
    assert sorted(store_result.uncaptioned) == ["café.jpg"]
    assert store_result.captioned == 1  # thé.jpg pairs with the flagged UTF-8 caption thé.txt


def test_info_zip_unicode_path_field_and_nfd_names(tmp_path: Path) -> None:
    unicode_name = "übung.jpg".encode()
    extra = struct.pack("<HHB", 0x7075, 5 + len(unicode_name), 1) + struct.pack("<I", zlib.crc32(b"_bung.jpg"))
    info = zipfile.ZipInfo("_bung.jpg")
    info.extra = extra + unicode_name
    path = make_zip(tmp_path / "in.zip", {"cafe\u0301.jpg": JPEG, "café.txt": b"nfc caption", "übung.txt": b"x"})
    add_entry(path, info, JPEG)
    result = check_zip(path, settings_for(tmp_path))
    assert result.accepted, result.refusals
    assert result.captioned == 2 and not result.orphan_captions


def test_too_many_entries_is_refused_before_reading(tmp_path: Path) -> None:
    result = check(tmp_path, {f"{i}.jpg": JPEG for i in range(6)}, max_zip_entries=5)
    assert "more than 5 entries" in result.refusals[0].reason


def test_unsupported_compression_method_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "in.zip", {"a.jpg": JPEG, "b.jpg": JPEG})
    data = bytearray(path.read_bytes())
    for signature, method_at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.find(signature)
        while at >= 0:
            struct.pack_into("<H", data, at + method_at, 9)  # Deflate64
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))
    result = check_zip(path, settings_for(tmp_path))
    assert "compression method (9)" in refusal_for(result, "a.jpg")


def zeros_zip(path: Path, name: str, size: int) -> Path:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open(info, "w") as entry:
            block = bytes(1024 * 1024)
            for _ in range(size // len(block)):
                entry.write(block)
    return path


def test_bomb_by_compression_ratio_is_stopped(tmp_path: Path) -> None:
    path = zeros_zip(tmp_path / "bomb.zip", "huge.png", 64 * 1024 * 1024)
    assert path.stat().st_size < 200 * 1024
    result = check_zip(path, settings_for(tmp_path))
    assert not result.accepted
    assert "zip bomb" in refusal_for(result, "huge.png")


def test_declared_total_over_the_cap_is_refused_without_reading(tmp_path: Path) -> None:
    path = zeros_zip(tmp_path / "big.zip", "big.png", 8 * 1024 * 1024)
    result = check_zip(path, settings_for(tmp_path, max_uncompressed_bytes=4 * 1024 * 1024))
    assert "unpacks to more than 4 MiB" in result.refusals[0].reason


def lying_bomb(path: Path, real_size: int, declared_size: int) -> Path:
    """An entry whose headers declare ``declared_size`` bytes but whose data inflates to far more."""
    zeros_zip(path, "liar.png", real_size)
    path.write_bytes(patch_headers(path.read_bytes(), b"liar.png", file_size=declared_size))
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("liar.png").file_size == declared_size
    return path


def test_lying_sizes_never_write_past_the_cap(tmp_path: Path) -> None:
    cap = 1024 * 1024
    path = lying_bomb(tmp_path / "liar.zip", real_size=32 * 1024 * 1024, declared_size=cap // 2)
    sink_path = tmp_path / "written" / "entry.bin"
    sink_path.parent.mkdir()
    with zipfile.ZipFile(path) as archive, sink_path.open("wb") as sink:
        with pytest.raises(DatasetError) as caught:
            read_entry(archive, archive.getinfo("liar.png"), sink, ByteBudget(cap, ratio_cap=1e9))
    assert caught.value.file == "liar.png"
    written = sum(p.stat().st_size for p in sink_path.parent.iterdir())
    assert written <= cap

    settings = settings_for(tmp_path, max_uncompressed_bytes=cap)
    result = check_zip(path, settings)
    assert not result.accepted and result.refusals[0].file == "liar.png"
    assert not any((settings.data_dir / "tmp").iterdir()), "temporary files left behind"


def test_an_honest_entry_past_the_cap_stops_before_writing_past_it(tmp_path: Path) -> None:
    """The streaming count itself: a 6 MiB entry against a 2 MiB budget."""
    path = zeros_zip(tmp_path / "big.zip", "big.png", 6 * 1024 * 1024)
    sink_path = tmp_path / "entry.bin"
    with zipfile.ZipFile(path) as archive, sink_path.open("wb") as sink:
        with pytest.raises(DatasetError, match="unpacks to more than 2 MiB"):
            read_entry(archive, archive.getinfo("big.png"), sink, ByteBudget(2 * 1024 * 1024, ratio_cap=1e9))
    assert sink_path.stat().st_size <= 2 * 1024 * 1024
    with zipfile.ZipFile(path) as archive, sink_path.open("wb") as sink:
        with pytest.raises(DatasetError, match="zip bomb"):
            read_entry(archive, archive.getinfo("big.png"), sink, ByteBudget(1 << 40, ratio_cap=100))
    assert sink_path.stat().st_size <= 2 * 1024 * 1024


def test_a_damaged_entry_names_the_file(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "in.zip", {"a.jpg": JPEG, "b.jpg": JPEG})
    path.write_bytes(patch_headers(path.read_bytes(), b"b.jpg", crc=0xDEADBEEF))
    result = check_zip(path, settings_for(tmp_path))
    assert "damaged" in refusal_for(result, "b.jpg")
    assert not any(r.file == "a.jpg" for r in result.refusals)
