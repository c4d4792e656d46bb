"""Sorting a zip's entries, from its directory alone: images, captions, junk, and the refused.

Names are decoded the way the archiver meant them (UTF-8 flag, Info-ZIP Unicode path field,
UTF-8 written without the flag, else cp437), Windows backslashes become folders, folders are
flattened, and the result is NFC-normalised so a macOS name and a Windows name for the same
file agree. Nothing is decompressed here.
"""

from __future__ import annotations

import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from enum import StrEnum

from bot.dataset.archive import AES_METHOD, REBUILD_ZIP, SUPPORTED_METHODS
from bot.dataset.report import Change, Refusal, Skipped

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif",
                  ".heic", ".heif"}  # fmt: skip
CAPTION_SUFFIXES = {".txt", ".caption"}
ARCHIVE_SUFFIXES = {".zip", ".rar", ".7z", ".tar", ".gz", ".tgz", ".bz2", ".tbz2", ".xz", ".txz", ".zst", ".lz",
                    ".lzma", ".cab", ".iso", ".jar", ".z", ".zipx", ".arj", ".lzh"}  # fmt: skip
# Image files no decoder here reads; refused (not skipped) so nobody trains without them unawares.
UNREADABLE_IMAGE_SUFFIXES = {".jxl", ".psd", ".svg", ".cr2", ".cr3", ".nef", ".arw", ".dng", ".orf", ".rw2",
                             ".raf", ".raw"}  # fmt: skip
JUNK_NAMES = {".ds_store": "macOS folder settings", "thumbs.db": "Windows thumbnail cache",
              "desktop.ini": "Windows folder settings"}  # fmt: skip
EXPORT_FIX = "Export it as JPEG or PNG (any photo editor or viewer can \"Export as\" / \"Save as\" JPEG)."
_FORBIDDEN = re.compile(r'[<>:"|?*]')
_UNICODE_PATH_FIELD = 0x7075


class EntryKind(StrEnum):
    IMAGE = "image"
    CAPTION = "caption"


@dataclass(frozen=True)
class PlannedEntry:
    info: zipfile.ZipInfo
    original: str  # the path inside the zip, as the member sees it
    name: str  # flattened and cleaned base name
    kind: EntryKind

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0] if "." in self.name else self.name

    @property
    def suffix(self) -> str:
        return "." + self.name.rsplit(".", 1)[1].lower() if "." in self.name else ""

    @property
    def key(self) -> str:
        """Images and their captions pair on this (case-insensitive, like Windows and macOS)."""
        return self.stem.casefold()


@dataclass
class Plan:
    images: list[PlannedEntry] = field(default_factory=list)
    captions: dict[str, PlannedEntry] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    flattened: int = 0


def plan_entries(infos: list[zipfile.ZipInfo]) -> Plan:
    plan = Plan()
    images: dict[str, list[PlannedEntry]] = {}
    captions: dict[str, list[PlannedEntry]] = {}
    for info in infos:
        entry = _classify(info, plan)
        if entry is None:
            continue
        target = images if entry.kind is EntryKind.IMAGE else captions
        target.setdefault(entry.key, []).append(entry)
    for group in images.values():
        if _unique(group, plan):
            plan.images.append(group[0])
    for key, group in captions.items():
        if _unique(group, plan):
            plan.captions[key] = group[0]
    plan.images.sort(key=lambda e: (e.key, e.name))
    return plan


def _unique(group: list[PlannedEntry], plan: Plan) -> bool:
    if len(group) == 1:
        return True
    names = ", ".join(f"`{e.original}`" for e in group)
    what = "images" if group[0].kind is EntryKind.IMAGE else "captions"
    plan.refusals.append(
        Refusal(
            group[0].original,
            f"Several {what} share the name `{group[0].stem}` once folders are flattened: {names}.",
            "Rename them so every image (and its caption) has its own name.",
        )
    )
    return False


def _classify(info: zipfile.ZipInfo, plan: Plan) -> PlannedEntry | None:
    """Return the entry to read, or None after noting why it is left out or refused."""
    original = decode_name(info).replace("\\", "/")
    if original.endswith("/"):
        return None  # a folder: its files are listed on their own
    refuse = _refusal_for_path(original, info)
    if refuse:
        plan.refusals.append(refuse)
        return None
    parts = original.split("/")
    base = unicodedata.normalize("NFC", parts[-1])
    junk = _junk_reason(parts, base)
    if junk:
        plan.skipped.append(Skipped(original, junk))
        return None
    suffix = "." + base.rsplit(".", 1)[-1].lower() if "." in base else ""
    refuse = _refusal_for_content(original, info, suffix)
    if refuse:
        plan.refusals.append(refuse)
        return None
    if suffix in IMAGE_SUFFIXES:
        kind = EntryKind.IMAGE
    elif suffix in CAPTION_SUFFIXES:
        kind = EntryKind.CAPTION
    else:
        plan.skipped.append(Skipped(original, "not an image or a caption"))
        return None
    name = _FORBIDDEN.sub("_", base)
    if name != base:
        plan.changes.append(Change(original, f"renamed to `{name}`", "the name had characters Windows forbids"))
    if len(parts) > 1:
        plan.flattened += 1
    return PlannedEntry(info, original, name, kind)


def _refusal_for_path(original: str, info: zipfile.ZipInfo) -> Refusal | None:
    if original.startswith("/") or re.match(r"^[A-Za-z]:", original):
        return Refusal(original, "The file has an absolute path, which zips must not contain.", REBUILD_ZIP)
    if ".." in original.split("/"):
        return Refusal(original, "The path climbs out of the zip with `..`.", REBUILD_ZIP)
    if any(ord(c) < 32 or ord(c) == 127 for c in original):
        return Refusal(original, "The name contains control characters.", "Rename the file.")
    if stat.S_ISLNK(info.external_attr >> 16):
        return Refusal(original, "The file is a symbolic link.", "Put the real image in the zip instead of a link.")
    return None


def _refusal_for_content(original: str, info: zipfile.ZipInfo, suffix: str) -> Refusal | None:
    if info.flag_bits & 0x1 or info.compress_type == AES_METHOD:
        return Refusal(original, "The file is password-protected.", "Create the zip without a password.")
    if info.compress_type not in SUPPORTED_METHODS:
        return Refusal(original, f"The file uses an unsupported compression method ({info.compress_type}).",
                       REBUILD_ZIP)  # fmt: skip
    if suffix in ARCHIVE_SUFFIXES:
        return Refusal(original, "Archives inside the zip are not accepted.",
                       "Unpack it and put its images directly in the zip.")  # fmt: skip
    if suffix in UNREADABLE_IMAGE_SUFFIXES:
        return Refusal(original, f"{suffix.lstrip('.').upper()} files cannot be read.", EXPORT_FIX)
    return None


def _junk_reason(parts: list[str], base: str) -> str | None:
    if "__MACOSX" in parts[:-1]:
        return "macOS metadata (`__MACOSX/`)"
    if base.startswith("._"):
        return "macOS metadata (`._` file)"
    return JUNK_NAMES.get(base.casefold())


def decode_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as its archiver meant it; ``zipfile`` alone assumes cp437 without the flag."""
    name = info.orig_filename
    if info.flag_bits & 0x800:
        return name
    raw = name.encode("cp437")
    unicode_path = _unicode_path_field(info.extra, raw)
    if unicode_path is not None:
        return unicode_path
    try:
        # Many archivers write UTF-8 without setting the flag; cp437 text is rarely valid UTF-8.
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return name


def _unicode_path_field(extra: bytes, raw_name: bytes) -> str | None:
    """The Info-ZIP Unicode Path extra field (0x7075), when it matches the header's name."""
    at = 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack("<HH", extra[at : at + 4])
        body = extra[at + 4 : at + 4 + size]
        if kind == _UNICODE_PATH_FIELD and len(body) >= 5 and body[0] == 1:
            (crc,) = struct.unpack("<I", body[1:5])
            if crc == zlib.crc32(raw_name):
                try:
                    return body[5:].decode("utf-8")
                except UnicodeDecodeError:
                    return None
        at += 4 + size
    return None
