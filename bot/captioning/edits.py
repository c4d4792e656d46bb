"""Members' own edits of a draft's captions, before they pay for training.

Edits come from the Edit captions modal ({file: caption}) or an uploaded ``captions.txt``
(``file name<TAB>caption`` per line) or zip of ``.txt`` files. They are applied to the draft's
dataset like generated captions (a new normalised zip, a new digest), re-price nothing, and
bump the draft's revision.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image

from bot.captioning.apply import apply_captions
from bot.captioning.text import clean
from bot.dataset.captions import CaptionRefused, decode_caption
from bot.dataset.report import DatasetResult
from bot.errors import UserFacingError
from bot.jobs.dataset_files import DatasetItem, dataset_items
from bot.jobs.submission import ConfirmationExpired, Requester, TrainingService
from storage.models import Job, JobStatus

MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # thousands of captions, and not a dataset sent by mistake
THUMBNAIL_PX = 256


class CaptionsRefused(UserFacingError):
    def __init__(self, message: str) -> None:
        super().__init__(message, title="Captions not applied")


def too_big(filename: str) -> CaptionsRefused:
    return CaptionsRefused(f"`{filename}` is over {MAX_UPLOAD_BYTES // 1024 // 1024} MiB: send only the captions.")


@dataclass(frozen=True)
class EditedDraft:
    job: Job
    dataset: DatasetResult
    changed: list[str]  # files whose caption changed


def parse_upload(filename: str, data: bytes, names: list[str]) -> dict[str, str]:
    """{image file: caption} from an edited ``captions.txt`` or a zip of ``.txt`` files.

    Files are matched by name (``img01.jpg``) or stem (``img01``); an unknown file or a line
    without a TAB is refused with its line number, so nothing is half-applied.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise too_big(filename)
    by_stem = {PurePosixPath(name).stem: name for name in names}
    found: dict[str, str] = {}
    problems: list[str] = []
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for entry in archive.namelist():
                path = PurePosixPath(entry)
                if path.suffix.lower() != ".txt" or "__MACOSX" in path.parts or path.name.startswith("."):
                    continue
                _take(found, problems, by_stem, path.stem, _text(archive.read(entry), entry), entry)
    else:
        for number, line in enumerate(_text(data, filename).splitlines(), start=1):
            if not line.strip():
                continue
            name, tab, caption = line.partition("\t")
            if not tab:
                problems.append(f"line {number} has no TAB between the file name and the caption")
                continue
            _take(found, problems, by_stem, PurePosixPath(name.strip()).stem, caption, f"line {number}")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise CaptionsRefused(f"Nothing was changed: {shown}. Fix `{filename}` and send it again.")
    if not found:
        raise CaptionsRefused(
            f"`{filename}` holds no captions: send `captions.txt` (file name, TAB, caption per line)."
        )
    return found


def _text(data: bytes, where: str) -> str:
    try:
        return decode_caption(data).text
    except CaptionRefused as exc:
        raise CaptionsRefused(f"`{where}`: {exc.reason} {exc.fix}") from None


def _take(
    found: dict[str, str], problems: list[str], by_stem: dict[str, str], stem: str, text: str, where: str
) -> None:
    name = by_stem.get(stem)
    if name is None:
        problems.append(f"{where} names `{stem}`, which is not an image of this dataset")
    else:
        found[name] = clean(text)


def thumbnails(zip_path: Path, names: list[str]) -> list[bytes]:
    """Small JPEGs of ``names`` for the Edit captions pages (blocking)."""
    out = []
    with zipfile.ZipFile(zip_path) as archive:
        for name in names:
            with Image.open(io.BytesIO(archive.read(name))) as image:
                image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, "JPEG", quality=80)
                out.append(buffer.getvalue())
    return out


class DraftCaptions:
    """Reading and changing the captions of a member's training draft."""

    def __init__(self, training: TrainingService) -> None:
        self.training = training
        self.store = training.store

    async def draft(self, job_id: str, requester: Requester) -> Job:
        job = await self.training.own_job(job_id, requester)
        if job.status is not JobStatus.DRAFT:
            raise CaptionsRefused("This run is no longer waiting for Confirm, so its captions can't change.")
        if self.training.expired(job):
            raise ConfirmationExpired()
        return job

    async def items(self, job: Job) -> list[DatasetItem]:
        return await asyncio.to_thread(dataset_items, self.training.dataset_path(job))

    async def latest_draft(self, requester: Requester) -> Job:
        job_id = await self.store.captions.latest_draft_id(requester.guild_id, requester.member.user_id)
        if job_id is None:
            raise CaptionsRefused(
                "You have no run waiting for Confirm here. Start one with `/train flux1`, then send the captions."
            )
        return await self.draft(job_id, requester)

    async def apply(self, job: Job, captions: dict[str, str]) -> EditedDraft:
        """Apply ``captions`` to the draft; the job comes back with its new dataset and revision."""
        source = self.training.dataset_path(job)
        current = {item.name: item.caption or "" for item in await asyncio.to_thread(dataset_items, source)}
        changed = [name for name, text in captions.items() if current.get(name, "") != text]
        dataset = await asyncio.to_thread(
            apply_captions, source, captions, self.training.settings, trigger_word=job.params.get("trigger_word"),
            store=self.training.datasets, label="your edited captions",
        )  # fmt: skip
        if not dataset.accepted or dataset.digest is None:
            raise CaptionsRefused("The dataset with these captions did not pass the check: " + dataset.to_text(500))
        if not await self.store.captions.replace_draft_dataset(job.id, dataset.digest, dataset.image_count):
            raise CaptionsRefused("This run was confirmed or cancelled meanwhile: its captions were not changed.")
        updated = await self.store.jobs.get(job.id)
        assert updated is not None
        return EditedDraft(updated, dataset, changed)
