"""What the submit path reads from a stored, normalised dataset zip: images and captions.

The normalised zip is flat (``name.ext`` with an optional ``name.txt`` beside it), so a
caption belongs to the image with the same stem.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
CAPTION_SUFFIXES = (".txt", ".caption")
DEFAULT_PROMPTS_FROM_CAPTIONS = 3


@dataclass(frozen=True)
class DatasetItem:
    name: str
    caption: str | None


def dataset_items(zip_path: Path) -> list[DatasetItem]:
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        captions = {}
        for name in names:
            path = PurePosixPath(name)
            if path.suffix.lower() in CAPTION_SUFFIXES:
                captions[path.stem] = archive.read(name).decode("utf-8").strip() or None
        return [
            DatasetItem(name, captions.get(PurePosixPath(name).stem))
            for name in names
            if PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES
        ]


def iter_images(zip_path: Path) -> Iterator[tuple[DatasetItem, bytes]]:
    """Each image's bytes, one at a time (a dataset may be hundreds of MiB)."""
    items = dataset_items(zip_path)
    with zipfile.ZipFile(zip_path) as archive:
        for item in items:
            yield item, archive.read(item.name)


def read_dataset_image(zip_path: Path, index: int) -> bytes | None:
    """The ``index``-th image of a dataset (``dataset_items`` order), or None past the end."""
    items = dataset_items(zip_path)
    if index >= len(items):
        return None
    with zipfile.ZipFile(zip_path) as archive:
        return archive.read(items[index].name)


def default_sample_prompts(zip_path: Path | None, trigger_word: str | None) -> list[str]:
    """Up to three distinct captions from the dataset, else prompts built from the trigger word.

    Captions describe the training images in the trainer's own words, so samples rendered from
    them show best how well the LoRA learned its subject.
    """
    prompts: list[str] = []
    if zip_path is not None:
        for item in dataset_items(zip_path):
            if item.caption and item.caption not in prompts:
                prompts.append(item.caption)
            if len(prompts) == DEFAULT_PROMPTS_FROM_CAPTIONS:
                break
    if prompts:
        return prompts
    subject = trigger_word or "the subject"
    return [f"a photo of {subject}", f"{subject}, close-up portrait, soft light", f"{subject} in a busy city street"]
