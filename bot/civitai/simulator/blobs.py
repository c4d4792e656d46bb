"""Blob storage with signed, expiring content URLs (like the orchestrator's ``blobs/content/{token}``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.civitai.simulator.state import new_id

CONTENT_PATH = "/v2/consumer/blobs/content/"


class BlobUrlError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class StoredBlob:
    id: str
    owner: str  # owner_key of the token that may read and refresh it
    kind: str  # "image", "model", or "thumbnail" (kept for samples, never served)
    content_type: str = "application/octet-stream"
    filename: str = "blob"
    size: tuple[int, int] | None = None
    available: bool = False
    blocked_reason: str | None = None  # moderation refused it: never served


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class BlobStore:
    """Blob contents in memory, or in ``directory`` when given (datasets can be large)."""

    def __init__(
        self,
        url_ttl: float = 3600.0,
        directory: Path | None = None,
        *,
        key: bytes | None = None,
        on_change: Callable[[StoredBlob], None] | None = None,
    ) -> None:
        self.url_ttl = url_ttl
        # A persisted key keeps URLs signed before a restart valid after it.
        self.key = key or secrets.token_bytes(32)
        self._blobs: dict[str, StoredBlob] = {}
        self._data: dict[str, bytes] = {}
        self._dir = directory
        self._on_change = on_change
        if directory:
            directory.mkdir(parents=True, exist_ok=True)

    def load(self, blobs: list[StoredBlob]) -> None:
        self._blobs.update((blob.id, blob) for blob in blobs)

    def _changed(self, blob: StoredBlob) -> None:
        if self._on_change is not None:
            self._on_change(blob)

    def reserve(self, owner: str, kind: str) -> StoredBlob:
        """A blob that exists (it has an id) but has no content yet (``available: false``)."""
        blob = StoredBlob(new_id(), owner, kind)
        self._blobs[blob.id] = blob
        self._changed(blob)
        return blob

    def fill(self, blob: StoredBlob, data: bytes, content_type: str, filename: str,
             size: tuple[int, int] | None = None) -> StoredBlob:
        if self._dir:
            (self._dir / blob.id).write_bytes(data)
        else:
            self._data[blob.id] = data
        blob.content_type, blob.filename, blob.size, blob.available = content_type, filename, size, True
        self._changed(blob)
        return blob

    def block(self, blob: StoredBlob, reason: str) -> StoredBlob:
        """Moderation refused the content: the blob exists but is never available."""
        blob.available, blob.blocked_reason = False, reason
        self._changed(blob)
        return blob

    def get(self, blob_id: str) -> StoredBlob | None:
        return self._blobs.get(blob_id)

    def read(self, blob_id: str) -> bytes:
        return (self._dir / blob_id).read_bytes() if self._dir else self._data[blob_id]

    def sign(self, base_url: str, blob_id: str) -> tuple[str, datetime]:
        expires_ms = int((time.time() + self.url_ttl) * 1000)
        payload = f"{blob_id}.{expires_ms}".encode()
        signature = _b64(hmac.new(self.key, payload, hashlib.sha256).digest())
        return f"{base_url}{CONTENT_PATH}{_b64(payload)}~{signature}", datetime.fromtimestamp(expires_ms / 1000, UTC)

    def verify(self, token: str) -> StoredBlob:
        """The blob a content token grants, or ``BlobUrlError`` with a status the document lists
        for the content route: 400 malformed, 401 forged or expired, 404 gone."""
        encoded, _, signature = token.partition("~")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            blob_id, _, expires_ms = payload.decode().rpartition(".")
            expires = int(expires_ms)
        except ValueError:
            raise BlobUrlError(400, "The blob URL is malformed.") from None
        expected = _b64(hmac.new(self.key, payload, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature):
            raise BlobUrlError(401, "The blob URL signature is invalid.")
        if time.time() * 1000 > expires:
            raise BlobUrlError(401, "The blob URL has expired: refresh the blob or re-read the workflow.")
        blob = self._blobs.get(blob_id)
        if blob is None or not blob.available or blob.kind == "thumbnail":
            raise BlobUrlError(404, "The blob does not exist.")
        return blob
