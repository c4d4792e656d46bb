"""Checking a zip on disk: every rule of DESIGN §4, the normalised zip, and the report.

Entries are read and decoded by a few worker threads (zlib and Pillow release the GIL, so
this scales with cores) while the calling thread writes the results, in a fixed order, into
the normalised zip. Only a bounded window of entries is in flight, each held in memory up to
``SPOOL_BYTES`` and on disk beyond, so memory stays flat whatever the zip's size.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from PIL import Image

from bot.config import Settings
from bot.dataset.archive import ByteBudget, CapExceeded, open_archive, read_entry
from bot.dataset.captions import MAX_CAPTION_BYTES, Caption, CaptionRefused, decode_caption, mentions
from bot.dataset.contact_sheet import MAX_TILES, render_contact_sheet
from bot.dataset.entries import Plan, PlannedEntry, plan_entries
from bot.dataset.errors import DatasetError
from bot.dataset.images import DecodeBudget, ImageLimits, ImageOutcome, ImageRefused, process_image
from bot.dataset.normalised import NormalisedZip
from bot.dataset.report import Change, DatasetResult, Refusal, Resolution, Skipped, count_formats
from bot.dataset.store import DatasetStore
from bot.text import counted, verb

SPOOL_BYTES = 16 * 1024 * 1024
MAX_WORKERS = 4
# Pixels decoded at once across workers (about 48 MB as RGB): bounds memory whatever the count
# of workers. A bigger image (up to MAX_IMAGE_PIXELS) is decoded alone.
DECODE_PIXELS_AT_ONCE = 16_000_000


def work_root(settings: Settings) -> Path:
    """Where intake keeps its temporary files: ``DATA_DIR/tmp``, on the store's filesystem."""
    root = settings.data_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return root


def check_zip(
    path: Path,
    settings: Settings,
    *,
    trigger_word: str | None = None,
    store: DatasetStore | None = None,
    source: str | None = None,
) -> DatasetResult:
    """Inspect and normalise the zip at ``path``; never raises for a bad dataset.

    With ``store`` an accepted dataset's normalised zip is kept there (``result.zip_path``);
    without it (the offline CLI) only its digest is reported.
    """
    with tempfile.TemporaryDirectory(dir=work_root(settings), prefix="check-") as work:
        return _Check(path, settings, trigger_word, store, Path(work), source or path.name).run()


@dataclass
class _Done:
    """What a worker produced for one image and its caption."""

    image: PlannedEntry
    caption_entry: PlannedEntry | None
    outcome: ImageOutcome | None = None
    payload: IO[bytes] | None = None  # the original bytes, when kept unchanged
    payload_size: int = 0
    caption: Caption | None = None
    refusals: list[Refusal] = field(default_factory=list)

    def close(self) -> None:
        if self.payload is not None:
            self.payload.close()


class _Check:
    def __init__(
        self,
        path: Path,
        settings: Settings,
        trigger_word: str | None,
        store: DatasetStore | None,
        work: Path,
        source: str,
    ) -> None:
        self.path = path
        self.settings = settings
        self.trigger_word = trigger_word.strip() if trigger_word and trigger_word.strip() else None
        self.store = store
        self.work = work
        self.result = DatasetResult(source=source, trigger_word=self.trigger_word)
        self.budget = ByteBudget(settings.max_uncompressed_bytes, settings.max_compression_ratio)
        self.limits = ImageLimits(settings.max_image_pixels, settings.min_image_side, settings.max_image_side)
        self.decoding = DecodeBudget(DECODE_PIXELS_AT_ONCE)
        self.output: NormalisedZip | None = None
        self.sizes: list[tuple[str, int, int]] = []
        self.formats: list[str] = []
        self.tiles: list[tuple[str, Image.Image]] = []
        self.early_sheet: tuple[int, Future[bytes]] | None = None  # (image count it shows, the PNG)

    def run(self) -> DatasetResult:
        try:
            with open_archive(self.path, self.settings.max_zip_entries) as archive:
                plan = plan_entries(archive.infolist())
                self._note_plan(plan)
                if self._fits_caps(plan):
                    self.output = NormalisedZip(self.work / "normalised.zip")
                    self._process(archive, plan)
        except DatasetError as exc:
            self.result.refusals.append(Refusal(exc.file, exc.reason, exc.fix))
        self._finish()
        return self.result

    def _note_plan(self, plan: Plan) -> None:
        result = self.result
        result.skipped += plan.skipped
        result.refusals += plan.refusals
        result.changes += plan.changes
        if plan.flattened:
            result.changes.append(
                Change(
                    "(folders)",
                    f"moved {counted(plan.flattened, 'file')} out of sub-folders",
                    "the trainer reads one folder",
                )
            )
        image_keys = {image.key for image in plan.images}
        for key, caption in sorted(plan.captions.items()):
            if key not in image_keys:
                result.orphan_captions.append(caption.original)
                result.skipped.append(Skipped(caption.original, "caption without an image"))

    def _fits_caps(self, plan: Plan) -> bool:
        """Refuse up front what the directory already shows to be too big (honest declarations)."""
        count, limit = len(plan.images), self.settings.max_images
        if count > limit:
            self.result.refusals.append(
                Refusal(None, f"The zip holds {counted(count, 'image')}; the limit is {limit}.", "Remove some images.")
            )
            return False
        entries = plan.images + list(plan.captions.values())
        declared = sum(entry.info.file_size for entry in entries)
        if declared > self.settings.max_uncompressed_bytes:
            raise self.budget.overrun()
        return True

    def _process(self, archive: zipfile.ZipFile, plan: Plan) -> None:
        workers = self.settings.dataset_workers or min(MAX_WORKERS, os.cpu_count() or 1)
        window: deque[Future[_Done]] = deque()
        with ThreadPoolExecutor(workers, thread_name_prefix="dataset") as pool:
            try:
                consumed = 0
                for ordinal, image in enumerate(plan.images):
                    caption = plan.captions.get(image.key)
                    window.append(pool.submit(self._work, archive, image, caption, ordinal < MAX_TILES))
                    if len(window) > 2 * workers:  # two waiting per worker: bounded memory
                        self._consume(window.popleft().result())
                        consumed += 1
                        if consumed == MAX_TILES and consumed < len(plan.images):
                            self._render_sheet_early(pool, len(plan.images))
                while window:
                    self._consume(window.popleft().result())
            finally:
                self.budget.stop()  # a no-op after success; after a failure, workers stop reading
                for future in window:
                    if not future.cancel() and future.exception() is None:
                        future.result().close()

    def _work(self, archive: zipfile.ZipFile, image: PlannedEntry, caption: PlannedEntry | None, thumb: bool) -> _Done:
        done = _Done(image, caption)
        spool = self._spool(image.info)
        try:
            done.payload_size = read_entry(archive, image.info, spool, self.budget)
            spool.seek(0)
            done.outcome = process_image(
                spool, image.name, self.limits, want_thumbnail=thumb, budget=self.decoding
            )
            if done.outcome.encoded is None:
                spool.seek(0)
                done.payload = spool
        except ImageRefused as exc:
            done.refusals.append(Refusal(image.original, exc.reason, exc.fix))
        except CapExceeded:
            raise  # stops the whole check
        except DatasetError as exc:  # this entry is damaged; the others are still checked
            done.refusals.append(Refusal(exc.file, exc.reason, exc.fix))
        finally:
            if done.payload is None:
                spool.close()
        if caption is not None:
            try:
                buffer = io.BytesIO()
                read_entry(archive, caption.info, buffer, self.budget, max_bytes=MAX_CAPTION_BYTES)
                done.caption = decode_caption(buffer.getvalue())
            except CaptionRefused as exc:
                done.refusals.append(Refusal(caption.original, exc.reason, exc.fix))
            except CapExceeded:
                done.close()
                raise
            except DatasetError as exc:
                done.refusals.append(Refusal(exc.file, exc.reason, exc.fix))
        return done

    def _render_sheet_early(self, pool: ThreadPoolExecutor, planned: int) -> None:
        """Every tile is in: render the sheet now, on a worker, while the other images decode.

        It is rendered for ``planned`` images; ``_finish`` uses it only if that many were taken
        (none refused), else renders again, so the sheet is the same either way.
        """
        if not self.result.refusals:
            self.early_sheet = (planned, pool.submit(render_contact_sheet, list(self.tiles), planned))

    def _spool(self, info: zipfile.ZipInfo) -> IO[bytes]:
        """Memory for what fits in ``SPOOL_BYTES``, else a file. zipfile never yields more than
        the declared size (it stops there and checks the CRC), so the declared size decides."""
        if info.file_size <= SPOOL_BYTES:
            return io.BytesIO()  # the JPEG decoder then reads it in place, without a copy
        return tempfile.TemporaryFile(dir=str(self.work))

    def _consume(self, done: _Done) -> None:
        try:
            self.result.refusals += done.refusals
            if done.outcome is not None:
                self._take_image(done, done.outcome)
            if done.outcome is not None and done.caption is not None and done.caption_entry is not None:
                self._take_caption(done.outcome, done.caption_entry, done.caption)
            elif done.outcome is not None:
                self.result.uncaptioned.append(done.outcome.name)
        finally:
            done.close()

    def _take_image(self, done: _Done, outcome: ImageOutcome) -> None:
        self.sizes.append((outcome.name, outcome.width, outcome.height))
        self.formats.append(outcome.source_format)
        self.result.changes += [Change(done.image.original, what, why) for what, why in outcome.changes]
        if outcome.thumbnail is not None:
            self.tiles.append((outcome.name, outcome.thumbnail))
        if self._writing():
            assert self.output is not None
            if outcome.encoded is not None:
                self.output.add(outcome.name, outcome.encoded, len(outcome.encoded))
            elif done.payload is not None:
                self.output.add(outcome.name, done.payload, done.payload_size)

    def _take_caption(self, image: ImageOutcome, entry: PlannedEntry, caption: Caption) -> None:
        name = image.name.rsplit(".", 1)[0] + ".txt"
        if entry.name != name:
            self.result.changes.append(Change(entry.original, f"renamed to `{name}`", "captions are .txt files"))
        if caption.had_bom:
            self.result.changes.append(Change(entry.original, "removed the byte-order mark", "plain UTF-8 text"))
        if caption.empty:
            self.result.uncaptioned.append(image.name)
        else:
            self.result.captioned += 1
            if self.trigger_word and not mentions(caption.text, self.trigger_word):
                self.result.captions_missing_trigger.append(entry.original)
        if self._writing():
            assert self.output is not None
            encoded = caption.encoded
            self.output.add(name, encoded, len(encoded))

    def _writing(self) -> bool:
        """Keep building the normalised zip only while the dataset can still be accepted."""
        return self.output is not None and not self.result.refusals

    def _finish(self) -> None:
        result = self.result
        result.image_count = len(self.sizes)
        result.formats = count_formats(self.formats)
        self._resolutions()
        if not result.refusals:
            self._count_rules()
        self._warn()
        if self.early_sheet is not None and self.early_sheet[0] == result.image_count:
            result.contact_sheet = self.early_sheet[1].result()
        elif self.tiles:
            result.contact_sheet = render_contact_sheet(self.tiles, result.image_count)
        if self.output is not None:
            self.output.close()
            if not result.refusals:
                assert self.output.digest is not None
                self._keep(self.output.path, self.output.digest)

    def _resolutions(self) -> None:
        if not self.sizes:
            return
        ordered = sorted(self.sizes, key=lambda s: (s[1] * s[2], s[1], s[0]))
        self.result.resolution_min = Resolution(ordered[0][1], ordered[0][2])
        middle = ordered[(len(ordered) - 1) // 2]
        self.result.resolution_median = Resolution(middle[1], middle[2])
        self.result.resolution_max = Resolution(ordered[-1][1], ordered[-1][2])

    def _count_rules(self) -> None:
        count, minimum = self.result.image_count, self.settings.min_images
        if count == 0:
            self.result.refusals.append(
                Refusal(None, "The zip holds no images.", "Put your JPEG or PNG images in the zip (folders are fine).")
            )
        elif count < minimum:
            self.result.refusals.append(
                Refusal(
                    None, f"The zip holds {counted(count, 'image')}; at least {minimum} are needed.", "Add more images."
                )
            )

    def _warn(self) -> None:
        result, settings = self.result, self.settings
        warnings = result.warnings
        count = result.image_count
        if 0 < count < settings.warn_below_images:
            warnings.append(
                f"Only {counted(count, 'image')}: a LoRA usually needs at least {settings.warn_below_images}."
            )
        small = [name for name, w, h in self.sizes if min(w, h) < settings.warn_below_image_side]
        if small:
            warnings.append(
                f"{counted(len(small), 'image')} {verb(len(small), 'is', 'are')} under "
                f"{settings.warn_below_image_side} px on the short side and may train blurry: {_names(small)}."
            )
        if count and result.captioned == 0:
            warnings.append("No image has a caption: training relies on the trigger word alone.")
        elif result.uncaptioned:
            missing = len(result.uncaptioned)
            warnings.append(
                f"{missing} of {counted(count, 'image')} {verb(missing, 'has', 'have')} no caption: "
                f"{_names(result.uncaptioned)}."
            )
        if lacking := len(result.captions_missing_trigger):
            warnings.append(
                f"{counted(lacking, 'caption')} {verb(lacking, 'does', 'do')} not contain the trigger word "
                f"“{result.trigger_word}”: {_names(result.captions_missing_trigger)}."
            )
        if orphans := len(result.orphan_captions):
            warnings.append(
                f"{counted(orphans, 'caption')} {verb(orphans, 'has', 'have')} no image and "
                f"{verb(orphans, 'was', 'were')} left out: {_names(result.orphan_captions)}."
            )

    def _keep(self, path: Path, digest: str) -> None:
        result = self.result
        result.digest = digest
        result.zip_bytes = path.stat().st_size
        result.accepted = True
        if self.store is not None:
            self.store.put(path, result.digest)
            result.zip_path = self.store.path_for(result.digest)


def _names(names: list[str], shown: int = 3) -> str:
    listed = ", ".join(f"`{n}`" for n in names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")
