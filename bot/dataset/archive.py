"""Reading an untrusted zip safely: the directory, entry names, and capped decompression.

Nothing here trusts the sizes a zip declares. The directory is bounded before ``zipfile``
parses it (a few bytes per entry can otherwise cost hundreds in memory), and every entry is
read through ``read_entry``, which counts the bytes actually decompressed and stops, before
writing them anywhere, as soon as a cap would be passed.
"""

from __future__ import annotations

import struct
import threading
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from bot.dataset.errors import DatasetError

READ_CHUNK = 256 * 1024
# A central directory entry is 46 bytes plus its name and extra fields; 2 KiB per entry allows
# long Unicode names and every common extra field while bounding what zipfile will parse.
DIRECTORY_BYTES_PER_ENTRY = 2048
# Entries smaller than this are never refused for their compression ratio: small text and
# flat images compress well without being a threat.
RATIO_EXEMPT_BYTES = 1024 * 1024
SUPPORTED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
AES_METHOD = 99  # WinZip AES encryption announces itself as compression method 99

_LOCAL_HEADER = b"PK\x03\x04"  # every zip with files starts with one
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"

REBUILD_ZIP = "Re-create the zip with your system's standard \"Compress\" / \"Send to → Compressed folder\"."


class CapExceeded(DatasetError):
    """A cap that stops the whole check (a zip bomb), not just one file."""


class ByteBudget:
    """Bytes that may still be decompressed across all entries; shared by the worker threads."""

    def __init__(self, total_cap: int, ratio_cap: float) -> None:
        self.total_cap = total_cap
        self.ratio_cap = ratio_cap
        self.used = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def stop(self) -> None:
        """Make every further ``take`` fail, so workers stop reading after a fatal problem."""
        self._stopped.set()

    def take(self, size: int, file: str) -> None:
        with self._lock:
            if self._stopped.is_set():
                raise CapExceeded("The check was stopped.", file=file)
            if self.used + size > self.total_cap:
                self._stopped.set()
                raise self.overrun(file)
            self.used += size

    def overrun(self, file: str | None = None) -> CapExceeded:
        return CapExceeded(
            f"The zip unpacks to more than {_mib(self.total_cap)}, the limit.",
            "Split the dataset or use smaller images.",
            file=file,
        )


@contextmanager
def open_archive(path: Path, max_entries: int) -> Iterator[zipfile.ZipFile]:
    """Open ``path`` as a zip after bounding its directory; refuse anything that is not a zip.

    The zip is opened on a file object we own: zipfile then never closes it on its own, which
    keeps concurrent readers in several threads safe (each read seeks under zipfile's lock).
    """
    too_many = DatasetError(f"The zip has more than {max_entries} entries.", "Remove files or split the dataset.")
    entries, directory_size = _directory_extent(path)
    if entries > max_entries or directory_size > max_entries * DIRECTORY_BYTES_PER_ENTRY:
        raise too_many
    with path.open("rb") as file:
        try:
            archive = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise DatasetError("The file is not a readable zip (it may be damaged or cut short).", REBUILD_ZIP) from exc
        with archive:
            if len(archive.infolist()) > max_entries:
                raise too_many
            yield archive


def _directory_extent(path: Path) -> tuple[int, int]:
    """(entry count, central directory size) from the end records, without parsing entries."""
    not_a_zip = DatasetError(
        "The file is not a zip.", "Send a .zip file (other archive types such as .rar or .7z are not accepted)."
    )
    cut_short = DatasetError(
        "The zip is damaged or cut short: its end, where a zip lists its files, is missing.",
        "Download or copy the zip again (the copy stopped early), or re-create it.",
    )
    with path.open("rb") as file:
        starts_as_zip = file.read(len(_LOCAL_HEADER)) == _LOCAL_HEADER
        file.seek(0, 2)
        size = file.tell()
        tail_len = min(size, 22 + 65535)
        file.seek(size - tail_len)
        tail = file.read(tail_len)
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) - at < 22:
            # A zip's directory is at its end: a zip that lost its end was cut short (an upload
            # or a download that stopped), which no other archive type would explain.
            raise cut_short if starts_as_zip else not_a_zip
        entries, directory_size = struct.unpack("<HI", tail[at + 10 : at + 16])
        if entries != 0xFFFF and directory_size != 0xFFFFFFFF:
            return entries, directory_size
        # Zip64: the locator just before the end record points at the zip64 end record.
        locator = tail[at - 20 : at] if at >= 20 else b""
        if not locator.startswith(_ZIP64_LOCATOR):
            raise not_a_zip
        (record_at,) = struct.unpack("<Q", locator[8:16])
        if record_at + 56 > size:
            raise not_a_zip
        file.seek(record_at)
        record = file.read(56)
        if not record.startswith(_ZIP64_EOCD):
            raise not_a_zip
        entries64, directory_size64 = struct.unpack("<QQ", record[32:48])
        return entries64, directory_size64


def read_entry(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    sink: IO[bytes],
    budget: ByteBudget,
    *,
    max_bytes: int | None = None,
) -> int:
    """Decompress one entry into ``sink``, counting real bytes; never writes past a cap.

    Raises ``DatasetError`` for a cap (total, ratio, ``max_bytes``) or a corrupt entry.
    """
    name = info.orig_filename
    produced = 0
    ratio_limit = budget.ratio_cap * max(info.compress_size, 1)
    try:
        with archive.open(info) as source:
            while chunk := source.read(READ_CHUNK):
                produced += len(chunk)
                if max_bytes is not None and produced > max_bytes:
                    raise DatasetError(f"The file is larger than {_mib(max_bytes)}.", "Shorten it.", file=name)
                if produced > RATIO_EXEMPT_BYTES and produced > ratio_limit:
                    budget.stop()
                    raise CapExceeded(
                        f"The file expands more than {budget.ratio_cap:g}× when unpacked, which is how zip bombs "
                        "work.",
                        "Remove it, or send the images without this file.",
                        file=name,
                    )
                budget.take(len(chunk), name)
                sink.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        # zipfile stops at the declared size and then checks the CRC, so a lying header ends here.
        raise DatasetError(
            "The file is damaged inside the zip (its data does not match its header).", REBUILD_ZIP, file=name
        ) from exc
    return produced


def _mib(size: int) -> str:
    if size >= 1024**3:
        return f"{size / 1024**3:g} GiB"
    return f"{size / 1024**2:g} MiB"
