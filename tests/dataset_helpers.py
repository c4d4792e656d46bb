"""Builders for dataset test fixtures, made at run time (no binary fixtures in the repository)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

from PIL import Image

from bot.config import Settings


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"data_dir": tmp_path / "data", "dataset_workers": 2}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class RecordedProgress:
    """An ``IntakeProgress`` that records what a member would have seen."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int | None, int | None]] = []

    async def downloading(self, received: int, total: int | None) -> None:
        self.events.append(("downloading", received, total))

    async def checking(self, images: int | None) -> None:
        self.events.append(("checking", images, None))

    async def waiting(self) -> None:
        self.events.append(("waiting", None, None))


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (96, 80), mode: str = "RGB", **save: object) -> bytes:
    """A small image with some structure (a gradient), so encoders behave as on real pictures."""
    base = Image.linear_gradient("L").resize(size)
    if mode == "RGB":
        image = Image.merge("RGB", (base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT), base.rotate(90)))
    else:
        image = Image.merge("RGB", (base, base, base)).convert(mode)
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def png_16bit_rgb(width: int = 80, height: int = 72) -> bytes:
    """A 48-bit RGB PNG written by hand (Pillow only writes 8-bit RGB)."""
    rows = b"".join(b"\x00" + struct.pack(">HHH", 65535, 32768, 0) * width for _ in range(height))
    return _png(width, height, bit_depth=16, colour_type=2, raw=rows)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, *, bit_depth: int, colour_type: int, raw: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def make_zip(
    path: Path,
    files: dict[str, bytes],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    date_time: tuple[int, int, int, int, int, int] = (2024, 5, 1, 12, 0, 0),
) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.compress_type = compression
            archive.writestr(info, data)
    return path


def add_entry(path: Path, info: zipfile.ZipInfo, data: bytes) -> None:
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(info, data)


def patch_headers(data: bytes, name: bytes, **fields: int) -> bytes:
    """Rewrite fields of ``name``'s local and central headers (flag_bits, file_size, crc…)."""
    # (signature, offset of the name length, offset of the name, {field: (offset, format)})
    headers = (
        (b"PK\x03\x04", 26, 30, {"flag_bits": (6, "<H"), "crc": (14, "<I"), "file_size": (22, "<I")}),
        (
            b"PK\x01\x02",
            28,
            46,
            {"flag_bits": (8, "<H"), "crc": (16, "<I"), "file_size": (24, "<I"), "external_attr": (38, "<I")},
        ),
    )
    out = bytearray(data)
    for signature, length_at, name_at, layout in headers:
        at = out.find(signature)
        while at >= 0:
            (name_len,) = struct.unpack_from("<H", out, at + length_at)
            if bytes(out[at + name_at : at + name_at + name_len]) == name:
                for field, value in fields.items():
                    if field in layout:
                        offset, fmt = layout[field]
                        struct.pack_into(fmt, out, at + offset, value)
            at = out.find(signature, at + 4)
    return bytes(out)


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def zip_member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)
