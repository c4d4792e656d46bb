"""Datasets for the captioning tests: solid colours, so the simulator's captions are predictable."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any

from PIL import Image

from tests.civitai_spec import validate_request

COLOURS = [(200, 40, 40), (50, 90, 200), (60, 160, 70), (230, 210, 60)]  # red, blue, green, yellow
COLOUR_NAMES = ["red", "blue", "green", "yellow"]


def solid_jpeg(index: int, size: tuple[int, int] = (160, 128)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, COLOURS[index % len(COLOURS)]).save(out, "JPEG", quality=95)
    return out.getvalue()


def captioned_zip(images: int, captions: dict[int, str] | None = None) -> bytes:
    """``img00.jpg`` … with a ``.txt`` beside the images listed in ``captions``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for n in range(images):
            archive.writestr(f"set/img{n:02d}.jpg", solid_jpeg(n))
            if captions and n in captions:
                archive.writestr(f"set/img{n:02d}.txt", captions[n])
    return out.getvalue()


async def chunks_of(data: bytes) -> AsyncIterator[bytes]:
    yield data


def sidecars(zip_bytes_or_path: Any) -> dict[str, str]:
    """{image name: caption} of a zip (its ``.txt`` files)."""
    with zipfile.ZipFile(zip_bytes_or_path) as archive:
        return {name[:-4]: archive.read(name).decode("utf-8") for name in archive.namelist() if name.endswith(".txt")}


def assert_valid_captioning_requests(bodies: list[dict[str, Any]]) -> None:
    """Every captioning workflow the simulator received matches the published OpenAPI document."""
    assert bodies, "no captioning request was sent"
    for body in bodies:
        assert {step["$type"] for step in body["steps"]} <= {"mediaCaptioning", "wdTagging"}
        assert validate_request("WorkflowTemplate", body) == [], validate_request("WorkflowTemplate", body)
