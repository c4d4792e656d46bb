"""A run's files: sample images for the thread, the comparison grid, fresh download links.

Signed blob URLs expire within minutes to hours, so samples are downloaded and re-uploaded when
an epoch is posted, and a download link is made fresh each time someone asks for one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.civitai.client import OrchestratorSession
from bot.civitai.errors import DownloadLinkExpired, NotFound, OrchestratorError
from bot.civitai.models import Blob, TrainingEpoch, Workflow
from bot.errors import UserFacingError
from bot.jobs.events import EpochReady, SampleImage
from bot.render.grid import comparison_grid
from storage.models import Job

log = logging.getLogger(__name__)

# Sample images are a few hundred KiB; anything far bigger is not one.
MAX_SAMPLE_BYTES = 32 * 1024 * 1024
SAMPLE_DOWNLOAD_CONCURRENCY = 4
# A link handed to a member must stay valid long enough to click it and finish the download.
MIN_LINK_LIFETIME = timedelta(minutes=10)


class EpochUnavailable(UserFacingError):
    def __init__(self, number: int) -> None:
        super().__init__(
            f"Epoch {number} of this run has no file to download (it never finished, or Civitai removed it).",
            title="Nothing to download",
        )


class RunFilesGone(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            "Civitai no longer keeps this run (runs are kept 30 days after they end), so its files are gone.",
            title="Files no longer available",
        )


@dataclass(frozen=True)
class EpochLink:
    number: int
    url: str
    filename: str
    size: int | None
    expires_at: datetime | None


def sample_prompts(workflow: Workflow, job: Job) -> tuple[str, ...]:
    """The prompts the samples were rendered with: the workflow's input, else what was asked."""
    step = workflow.training_step()
    samples = ((step.input or {}) if step is not None else {}).get("samples") or {}
    prompts = samples.get("prompts") if isinstance(samples, dict) else None
    if not isinstance(prompts, list):
        prompts = job.params.get("sample_prompts") or []
    return tuple(str(p) for p in prompts)


def total_epochs(workflow: Workflow, job: Job) -> int:
    output = workflow.training_output()
    listed = len(output.epochs) if output is not None else 0
    asked = job.params.get("epochs")
    return max(listed, asked if isinstance(asked, int) else 0)


def _extension(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "jpg"


def model_filename(job: Job, number: int) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in job.name).strip("_") or "lora"
    return f"{stem[:60]}_epoch_{number:03d}.safetensors"


class EpochFiles:
    """Fetches what an epoch produced, with the job's own token (a session per job)."""

    async def _blob_bytes(self, session: OrchestratorSession, blob: Blob) -> bytes:
        url = blob.url
        if not url:
            url = (await session.refresh_blob(blob.id)).url
        if not url:
            raise DownloadLinkExpired()
        try:
            return await session.download(url, max_bytes=MAX_SAMPLE_BYTES)
        except DownloadLinkExpired:
            fresh = (await session.refresh_blob(blob.id)).url
            if not fresh:
                raise
            return await session.download(fresh, max_bytes=MAX_SAMPLE_BYTES)

    async def samples(self, session: OrchestratorSession, epoch: TrainingEpoch) -> list[bytes | None]:
        """Every sample image of the epoch, None for one that could not be fetched for good."""
        limit = asyncio.Semaphore(SAMPLE_DOWNLOAD_CONCURRENCY)

        async def one(blob: Blob) -> bytes | None:
            if not blob.id:
                return None
            async with limit:
                try:
                    return await self._blob_bytes(session, blob)
                except OrchestratorError as exc:
                    if exc.retryable:
                        raise  # Civitai is having a moment: post the epoch later, complete
                    log.warning("Sample %s of epoch %d could not be fetched: %s", blob.id, epoch.epoch_number,
                                type(exc).__name__)  # fmt: skip
                    return None

        return list(await asyncio.gather(*(one(blob) for blob in epoch.samples)))

    async def epoch_ready(
        self, session: OrchestratorSession, job: Job, workflow: Workflow, epoch: TrainingEpoch
    ) -> EpochReady:
        prompts = sample_prompts(workflow, job)
        fetched = await self.samples(session, epoch)
        images = []
        for index, data in enumerate(fetched):
            if data is not None:
                prompt = prompts[index] if index < len(prompts) else ""
                name = f"epoch_{epoch.epoch_number:02d}_sample_{index + 1}.{_extension(data)}"
                images.append(SampleImage(name, data, prompt))
        return EpochReady(
            job=job,
            number=epoch.epoch_number,
            total=total_epochs(workflow, job),
            air=epoch.air,
            prompts=prompts,
            samples=tuple(images),
            missing_samples=sum(1 for data in fetched if data is None),
        )

    async def grid(self, session: OrchestratorSession, job: Job, workflow: Workflow) -> bytes | None:
        """The labelled comparison grid (epochs × prompts) of every available epoch, as PNG."""
        epochs = workflow.available_epochs()
        if not epochs:
            return None
        fetched = await asyncio.gather(*(self.samples(session, epoch) for epoch in epochs))
        by_epoch = {epoch.epoch_number: images for epoch, images in zip(epochs, fetched, strict=True)}
        return await asyncio.to_thread(comparison_grid, by_epoch, list(sample_prompts(workflow, job)))

    async def fresh_link(self, session: OrchestratorSession, job: Job, number: int) -> EpochLink:
        """A download link for epoch ``number`` made now, valid for at least a few minutes."""
        if job.workflow_id is None:
            raise EpochUnavailable(number)
        try:
            workflow = await session.get(job.workflow_id)
        except NotFound:
            raise RunFilesGone() from None
        output = workflow.training_output()
        epoch = next((e for e in (output.epochs if output else []) if e.epoch_number == number), None)
        if epoch is None or not epoch.available or epoch.model is None:
            raise EpochUnavailable(number)
        blob = epoch.model
        soon = datetime.now(UTC) + MIN_LINK_LIFETIME
        if not blob.url or (blob.url_expires_at is not None and blob.url_expires_at < soon):
            blob = await session.refresh_blob(blob.id)
        if not blob.url:
            raise EpochUnavailable(number)
        size = await session.content_length(blob.url)
        return EpochLink(number, blob.url, model_filename(job, number), size, blob.url_expires_at)
