"""The normalised zip: flat, stored (no compression), fixed timestamps and permissions.

The same files in the same order always give the same bytes, so the digest identifies the
dataset. Nothing is compressed: images are already compressed, captions are tiny, and deflate
output differs between zlib builds.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import IO

FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644
UNIX = 3


class NormalisedZip:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.names: list[str] = []

    def add(self, name: str, data: bytes | IO[bytes], size: int) -> None:
        info = zipfile.ZipInfo(name, date_time=FIXED_TIMESTAMP)
        info.compress_type = zipfile.ZIP_STORED
        info.create_system = UNIX
        info.external_attr = FILE_MODE << 16
        info.file_size = size
        with self._zip.open(info, "w") as dest:
            if isinstance(data, bytes):
                dest.write(data)
            else:
                shutil.copyfileobj(data, dest, 1024 * 1024)
        self.names.append(name)

    def close(self) -> None:
        self._zip.close()
