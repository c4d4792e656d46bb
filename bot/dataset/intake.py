"""The entry points the cogs call: a stream or a URL in, a ``DatasetResult`` out.

The download runs on the event loop; the check (zip reading, image decoding, normalising) is
blocking work and runs in a thread via ``asyncio.to_thread``. Checks share the process's
budget of decoded pixels: while one waits for another to finish, its progress says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import zipfile
from collections.abc import AsyncIterable
from pathlib import Path, PurePosixPath
from typing import Protocol

from aiohttp.abc import AbstractResolver

from bot.config import Settings
from bot.dataset.budget import shared_budget
from bot.dataset.check import check_zip, work_root
from bot.dataset.entries import IMAGE_SUFFIXES
from bot.dataset.report import DatasetResult
from bot.dataset.sources import download, too_big, write_capped
from bot.dataset.store import DatasetStore


class IntakeProgress(Protocol):
    """Told how an intake goes, so a member watching a large zip sees it move."""

    async def downloading(self, received: int, total: int | None) -> None: ...

    async def checking(self, images: int | None) -> None: ...

    async def waiting(self) -> None:
        """The check waits for another member's check to free the decoding budget."""


async def intake_from_stream(
    chunks: AsyncIterable[bytes],
    settings: Settings,
    *,
    trigger_word: str | None = None,
    store: DatasetStore | None = None,
    source: str = "attachment",
    declared_size: int | None = None,
    progress: IntakeProgress | None = None,
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
        on_bytes = progress.downloading if progress else None
        await write_capped(chunks, path, settings.max_zip_bytes, on_bytes=on_bytes, expected=declared_size)
        return await _check(path, settings, trigger_word, store, source, progress)


async def intake_from_url(
    url: str,
    settings: Settings,
    *,
    trigger_word: str | None = None,
    store: DatasetStore | None = None,
    resolver: AbstractResolver | None = None,
    progress: IntakeProgress | None = None,
) -> DatasetResult:
    """Download an https ``dataset_url`` (public addresses only) and check it.

    ``resolver`` replaces the system DNS lookup (tests); every address it returns is still
    checked. Raises ``DatasetError`` for a refused or failed download.
    """
    with tempfile.TemporaryDirectory(dir=work_root(settings), prefix="intake-") as tmp:
        path = Path(tmp) / "dataset.zip"
        await download(url, path, settings, resolver=resolver, on_bytes=progress.downloading if progress else None)
        return await _check(path, settings, trigger_word, store, _display_source(url), progress)


async def _check(
    path: Path,
    settings: Settings,
    trigger_word: str | None,
    store: DatasetStore | None,
    source: str,
    progress: IntakeProgress | None = None,
) -> DatasetResult:
    store = store or DatasetStore.from_settings(settings)
    if progress is None:
        return await asyncio.to_thread(check_zip, path, settings, trigger_word=trigger_word, store=store, source=source)
    images = await asyncio.to_thread(count_images, path)
    await progress.checking(images)
    reporter = _WaitReporter(progress, images)
    decoding = shared_budget(settings.dataset_decode_pixels).user(on_wait=reporter.notify)
    try:
        return await asyncio.to_thread(
            check_zip, path, settings, trigger_word=trigger_word, store=store, source=source, decoding=decoding
        )
    finally:
        reporter.close()


class _WaitReporter:
    """Carries "waiting" / "checking again" from the check's threads to the progress line.

    Only the latest state is shown, by one task in order, so a burst of changes ends on the
    true one and never interleaves two edits.
    """

    def __init__(self, progress: IntakeProgress, images: int | None) -> None:
        self.progress = progress
        self.images = images
        self.loop = asyncio.get_running_loop()
        self.waiting = False
        self.shown = False
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._show())

    def notify(self, waiting: bool) -> None:
        """Called from a worker thread; news for a loop already closed (shutdown) is dropped."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._set, waiting)

    def _set(self, waiting: bool) -> None:
        self.waiting = waiting
        self.changed.set()

    async def _show(self) -> None:
        while True:
            await self.changed.wait()
            self.changed.clear()
            if self.waiting != self.shown:
                self.shown = self.waiting
                await (self.progress.waiting() if self.waiting else self.progress.checking(self.images))

    def close(self) -> None:
        self.task.cancel()


def count_images(path: Path) -> int | None:
    """Images the zip's directory lists (junk aside), read without decompressing; None when it
    is not a readable zip (the check says why)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [PurePosixPath(info.filename.replace("\\", "/")) for info in archive.infolist()]
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    return sum(
        1
        for name in names
        if name.suffix.lower() in IMAGE_SUFFIXES and "__MACOSX" not in name.parts and not name.name.startswith("._")
    )


def _display_source(url: str) -> str:
    """The link without its query string, which may carry an access token."""
    return url.split("?", 1)[0].split("#", 1)[0]
