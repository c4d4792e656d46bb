"""How a server's datasets reach the orchestrator, and the uploads already made for one.

``hosted``: the orchestrator fetches the zip from a URL the bot signs. Some deployments refuse
such URLs (private, or not a host the service fetches from); then the bot falls back to
uploading the images as blobs, and remembers that for the server, so its members are told once
and every later run goes straight to uploads.

Uploads are made when the run is priced (the service moderates them on the fly, so a member
learns of a refused image before paying) and reused by the submit that follows.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from pydantic import SecretStr

from bot.civitai import models as m
from bot.config import DatasetTransport, Settings
from storage import Store

FALLBACK_KEY_PREFIX = "dataset_transport_fallback:"
# Uploaded blobs are reused this long (a confirmation lives 15 minutes).
UPLOADS_TTL_SECONDS = 3600.0
FALLBACK_NOTE = (
    "Civitai could not fetch the dataset from this bot's link, so its images are uploaded to Civitai "
    "instead (for every run on this server from now on). Nothing else changes."
)


def fallback_key(guild_id: int) -> str:
    return f"{FALLBACK_KEY_PREFIX}{guild_id}"


async def transport_for(settings: Settings, store: Store, guild_id: int, *, can_host: bool) -> DatasetTransport:
    """``hosted`` only when configured, signable (``can_host``) and not refused for this server."""
    transport = settings.effective_transport()
    if transport is DatasetTransport.HOSTED and (not can_host or await store.get_meta(fallback_key(guild_id))):
        return DatasetTransport.BLOBS
    return transport


async def remember_fallback(store: Store, guild_id: int) -> None:
    await store.set_meta(fallback_key(guild_id), DatasetTransport.BLOBS.value)


@dataclass
class _Uploaded:
    at: float
    data: m.BlobsTrainingData


class UploadedDatasets:
    """Blob training data already uploaded, per paying token and dataset (in memory)."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, str], _Uploaded] = {}

    @staticmethod
    def _key(token: SecretStr, digest: str) -> tuple[str, str]:
        return hashlib.sha256(token.get_secret_value().encode()).hexdigest(), digest

    def get(self, token: SecretStr, digest: str) -> m.BlobsTrainingData | None:
        found = self._made.get(self._key(token, digest))
        if found is None or time.monotonic() - found.at > UPLOADS_TTL_SECONDS:
            return None
        return found.data

    def put(self, token: SecretStr, digest: str, data: m.BlobsTrainingData) -> None:
        now = time.monotonic()
        self._made = {k: v for k, v in self._made.items() if now - v.at <= UPLOADS_TTL_SECONDS}
        self._made[self._key(token, digest)] = _Uploaded(now, data)
