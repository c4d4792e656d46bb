"""Captions into the dataset: a zip with the final ``name.txt`` beside each image, checked again
by the dataset check so the result is a normalised zip with its own digest (and report)."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from bot.config import Settings
from bot.dataset.check import check_zip, work_root
from bot.dataset.normalised import NormalisedZip
from bot.dataset.report import DatasetResult
from bot.dataset.store import DatasetStore
from bot.jobs.dataset_files import CAPTION_SUFFIXES


def write_with_captions(source: Path, captions: Mapping[str, str], dest: Path) -> None:
    """Copy ``source`` (a normalised zip) to ``dest`` with ``captions`` ({image name: text}) as
    the sidecars of those images; other entries are copied unchanged."""
    stems = {PurePosixPath(name).stem for name in captions}
    output = NormalisedZip(dest)
    try:
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                path = PurePosixPath(info.filename)
                if path.suffix.lower() in CAPTION_SUFFIXES and path.stem in stems:
                    continue
                with archive.open(info) as data:
                    output.add_ranges(info.filename, data, [(0, info.file_size)])
                if info.filename in captions:
                    output.add(f"{path.stem}.txt", captions[info.filename].encode("utf-8"))
    finally:
        output.close()


def apply_captions(
    source: Path,
    captions: Mapping[str, str],
    settings: Settings,
    *,
    trigger_word: str | None,
    store: DatasetStore,
    label: str,
) -> DatasetResult:
    """The dataset at ``source`` with ``captions`` applied, checked and kept in ``store``
    (blocking: run it in a thread)."""
    with tempfile.TemporaryDirectory(dir=work_root(settings), prefix="captions-") as tmp:
        captioned = Path(tmp) / "captioned.zip"
        write_with_captions(source, captions, captioned)
        return check_zip(captioned, settings, trigger_word=trigger_word, store=store, source=label)
