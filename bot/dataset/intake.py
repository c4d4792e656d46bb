"""The entry points the cogs call: a stream or a URL in, a ``DatasetResult`` out.

The download runs on the event loop; the check (zip reading, image decoding, normalising) is
blocking work and runs in a thread via ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterable
from pathlib import Path

from aiohttp.abc import AbstractResolver

from bot.config import Settings
from bot.dataset.check import check_zip, work_root
from bot.dataset.report import DatasetResult
from bot.dataset.sources import download, too_big, write_capped
from bot.dataset.store import DatasetStore


async def intake_from_stream(
    chunks: AsyncIterable[bytes],
    settings: Settings,
    *,
    trigger_word: str | None = None,
    store: DatasetStore | None = None,
    source: str = "attachment",
    declared_size: int | None = None,
) -> DatasetResult:
    """Check a zip arriving as chunks (a Discord attachment's body).

    ``declared_size`` (the attachment's size) refuses an oversized zip before any download.
    An accepted dataset is kept in ``store`` (default: the one under ``DATA_DIR``).
    Raises ``DatasetError`` when the zip is over the size cap.
    """
    if declared_size is not None and declared_size > settings.max_zip_bytes:
        raise too_big(settings.max_zip_bytes)
    with tempfile.TemporaryDirectory(dir=work_root(settings), prefix="intake-") as tmp:
        path = Path(tmp) / "dataset.zip"
        await write_capped(chunks, path, settings.max_zip_bytes)
        return await _check(path, settings, trigger_word, store, source)


async def intake_from_url(
    url: str,
    settings: Settings,
    *,
    trigger_word: str | None = None,
    store: DatasetStore | None = None,
    resolver: AbstractResolver | None = None,
) -> DatasetResult:
    """Download an https ``dataset_url`` (public addresses only) and check it.

    ``resolver`` replaces the system DNS lookup (tests); every address it returns is still
    checked. Raises ``DatasetError`` for a refused or failed download.
    """
    with tempfile.TemporaryDirectory(dir=work_root(settings), prefix="intake-") as tmp:
        path = Path(tmp) / "dataset.zip"
        await download(url, path, settings, resolver=resolver)
        return await _check(path, settings, trigger_word, store, _display_source(url))


async def _check(
    path: Path, settings: Settings, trigger_word: str | None, store: DatasetStore | None, source: str
) -> DatasetResult:
    store = store or DatasetStore.from_settings(settings)
    return await asyncio.to_thread(check_zip, path, settings, trigger_word=trigger_word, store=store, source=source)


def _display_source(url: str) -> str:
    """The link without its query string, which may carry an access token."""
    return url.split("?", 1)[0].split("#", 1)[0]
