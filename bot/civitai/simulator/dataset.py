"""Training data as the orchestrator sees it: a zip fetched from ``sourceUrl`` (image count must
match ``count``) or blobs uploaded earlier. A few thumbnails are kept to derive sample images,
as JPEG bytes: a run holds them for its whole life, and decoded they would cost about 0.6 MiB
each (Pillow keeps RGB as 4 bytes a pixel) in every followed run."""

from __future__ import annotations

import asyncio
import io
import tempfile
import zipfile
from pathlib import PurePosixPath
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from PIL import Image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
THUMBNAILS = 4
THUMBNAIL_SIZE = 384
MAX_ZIP_BYTES = 2 * 1024**3


class DatasetError(Exception):
    """The step fails with this reason (shown to nobody by the real API but the job event)."""


def _is_image_entry(name: str) -> bool:
    path = PurePosixPath(name)
    junk = path.name.startswith(".") or "__MACOSX" in path.parts
    return not name.endswith("/") and not junk and path.suffix.lower() in IMAGE_SUFFIXES


def thumbnail(data: bytes) -> bytes | None:
    """A small JPEG of the image (CPU work: call it off the event loop)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE))  # JPEG: decode at a reduced scale
            image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
            out = io.BytesIO()
            image.convert("RGB").save(out, "JPEG", quality=90)
            return out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def thumbnails(images: list[bytes]) -> list[bytes]:
    return [thumb for thumb in map(thumbnail, images) if thumb is not None]


def _read_zip(file: IO[bytes], expected: int) -> list[bytes]:
    try:
        archive = zipfile.ZipFile(file)
    except zipfile.BadZipFile:
        raise DatasetError("The training data is not a readable zip file.") from None
    with archive:
        names = [info.filename for info in archive.infolist() if _is_image_entry(info.filename)]
        if len(names) != expected:
            raise DatasetError(f"The zip holds {len(names)} images but trainingData.count is {expected}.")
        thumbs = []
        for name in names[:THUMBNAILS]:
            try:
                image = thumbnail(archive.read(name))
            except (zipfile.BadZipFile, OSError, RuntimeError):
                raise DatasetError(f"The zip entry {name!r} cannot be read.") from None
            if image is not None:
                thumbs.append(image)
        return thumbs


def route_url(url: str, host_routes: dict[str, str]) -> str:
    """Send requests for a routed host (e.g. ``dataset.test``) to a real base URL (loopback in tests)."""
    parts = urlsplit(url)
    target = host_routes.get(parts.hostname or "")
    if not target:
        return url
    base = urlsplit(target)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


async def fetch_zip(session: aiohttp.ClientSession, url: str, expected: int, max_seconds: float = 60.0
                    ) -> list[bytes]:
    """Download the zip (streamed to a spooled temp file, never whole in memory) and check it."""
    with tempfile.SpooledTemporaryFile(max_size=16 * 1024**2) as file:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=max_seconds)) as response:
                if response.status != 200:
                    raise DatasetError(f"trainingData.sourceUrl not reachable (HTTP {response.status}).")
                size = 0
                async for chunk in response.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > MAX_ZIP_BYTES:
                        raise DatasetError("The training data zip is larger than 2 GiB.")
                    file.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DatasetError(f"trainingData.sourceUrl not reachable ({type(exc).__name__}).") from None
        file.seek(0)
        return await asyncio.to_thread(_read_zip, file, expected)
