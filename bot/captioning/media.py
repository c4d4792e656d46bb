"""Getting the images to caption to the orchestrator, the way the server's datasets travel
(``bot.jobs.transport``): ``hosted``, each step's ``mediaUrl`` is a signed link to that image on
the bot's own web server; ``blobs``, each image is uploaded and its signed blob URL is used.
Uploads run a few at a time and read one image at a time from the zip, so memory stays small
whatever the dataset's size."""

from __future__ import annotations

import asyncio
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from bot.captioning.workflow import MediaToCaption
from bot.civitai.client import OrchestratorSession
from bot.jobs.dataset_files import dataset_items
from bot.web.signing import DatasetUrlSigner

UPLOAD_CONCURRENCY = 4


def _content_type(name: str) -> str:
    return "image/png" if name.lower().endswith(".png") else "image/jpeg"


async def upload_media(session: OrchestratorSession, zip_path: Path, names: Sequence[str]) -> list[MediaToCaption]:
    """Upload the images ``names`` of the zip; their URLs in the same order."""
    limit = asyncio.Semaphore(UPLOAD_CONCURRENCY)
    urls: dict[str, str] = {}

    async def upload(name: str, data: bytes) -> None:
        try:
            blob = await session.upload_blob(data, filename=name, content_type=_content_type(name))
            urls[name] = blob.url or blob.air
        finally:
            limit.release()

    tasks = []
    with zipfile.ZipFile(zip_path) as archive:
        for name in names:
            await limit.acquire()  # at most UPLOAD_CONCURRENCY images read and in flight
            tasks.append(asyncio.create_task(upload(name, archive.read(name))))
    await asyncio.gather(*tasks)
    return [MediaToCaption(name, urls[name]) for name in names]


def hosted_media(
    signer: DatasetUrlSigner, digest: str, zip_path: Path, names: Sequence[str], *, now: float
) -> list[MediaToCaption]:
    """Signed links to the images ``names`` of the stored dataset ``digest``, in the same order."""
    index = {item.name: i for i, item in enumerate(dataset_items(zip_path))}
    return [
        MediaToCaption(name, signer.image_url(digest, index[name], PurePosixPath(name).suffix, now=now))
        for name in names
    ]
