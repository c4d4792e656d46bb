"""Normalised zips, kept by content (``datasets/<sha256>.zip``) for a retention period.

The same dataset checked twice lands on the same file, so "train further" and the hosted
transport can find it by the digest a job records. Expiry is by modification time, which
``put`` refreshes when a dataset is used again.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

from bot.config import Settings

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_HASH_CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class DatasetStore:
    def __init__(self, root: Path, retention_days: float) -> None:
        self.root = root
        self.retention_seconds = retention_days * 86400

    @classmethod
    def from_settings(cls, settings: Settings) -> DatasetStore:
        return cls(settings.datasets_path, settings.dataset_retention_days)

    def put(self, source: Path, digest: str | None = None) -> str:
        """Move ``source`` into the store (same filesystem: an atomic rename); return its digest.

        Pass ``digest`` only when it was just computed from ``source``. Expired datasets are
        purged on the way, so retention works without a scheduler.
        """
        digest = digest or sha256_file(source)
        self.root.mkdir(parents=True, exist_ok=True)
        target = self._path(digest)
        if target.exists():
            source.unlink()
            os.utime(target)
        else:
            os.replace(source, target)
        self.purge_expired()
        return digest

    def path_for(self, digest: str) -> Path | None:
        """The stored zip for ``digest``, or None when unknown, expired or malformed."""
        if not _DIGEST.match(digest):
            return None
        path = self._path(digest)
        return path if path.is_file() else None

    def remove(self, digest: str) -> bool:
        """Delete one stored dataset now (its owner asked to be forgotten)."""
        path = self.path_for(digest)
        if path is None:
            return False
        path.unlink(missing_ok=True)
        return True

    def purge_expired(self, now: float | None = None) -> list[str]:
        """Delete zips unused for longer than the retention; return their digests."""
        if not self.root.is_dir():
            return []
        cutoff = (time.time() if now is None else now) - self.retention_seconds
        purged = []
        for path in self.root.glob("*.zip"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    purged.append(path.stem)
            except FileNotFoundError:
                continue  # another process purged it first
        return sorted(purged)

    def _path(self, digest: str) -> Path:
        return self.root / f"{digest}.zip"
