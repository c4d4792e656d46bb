"""The normalised zip: flat, stored (no compression), fixed timestamps and permissions.

The same files in the same order always give the same bytes, so the digest identifies the
dataset. Nothing is compressed: images are already compressed, captions are tiny, and deflate
output differs between zlib builds.

The digest is computed while the zip is written: zipfile only ever seeks back into the header
of the entry being written, so all before it is final and is hashed after each entry (from the
page cache, while the workers decode), instead of reading the whole zip again at the end.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from bot.dataset.image_data import Spans

COPY_CHUNK = 1024 * 1024

FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644
UNIX = 3


class NormalisedZip:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("w+b")
        self._zip = zipfile.ZipFile(self._file, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.names: list[str] = []
        self._sha256 = hashlib.sha256()
        self._hashed = 0
        self.digest: str | None = None  # hex SHA-256 of the whole file, once closed

    def add(self, name: str, data: bytes) -> None:
        with self._entry(name, len(data)) as dest:
            dest.write(data)

    def add_ranges(self, name: str, source: IO[bytes], spans: Spans) -> None:
        """Copy only the ``spans`` of ``source`` (an image's picture, without passengers)."""
        with self._entry(name, sum(end - start for start, end in spans)) as dest:
            for start, end in spans:
                source.seek(start)
                while start < end:
                    chunk = source.read(min(COPY_CHUNK, end - start))
                    if not chunk:
                        raise OSError(f"{name} is shorter than its image data")
                    dest.write(chunk)
                    start += len(chunk)

    @contextmanager
    def _entry(self, name: str, size: int) -> Iterator[IO[bytes]]:
        info = zipfile.ZipInfo(name, date_time=FIXED_TIMESTAMP)
        info.compress_type = zipfile.ZIP_STORED
        info.create_system = UNIX
        info.external_attr = FILE_MODE << 16
        info.file_size = size
        with self._zip.open(info, "w") as dest:
            yield dest
        self.names.append(name)
        self._hash_written()

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._zip.close()
            self._hash_written()
            self.digest = self._sha256.hexdigest()
        finally:
            self._file.close()

    def _hash_written(self) -> None:
        self._file.flush()
        end = self._file.tell()
        while self._hashed < end:
            chunk = os.pread(self._file.fileno(), min(end - self._hashed, 4 * 1024 * 1024), self._hashed)
            if not chunk:
                raise OSError(f"{self.path} is shorter than written")
            self._sha256.update(chunk)
            self._hashed += len(chunk)
