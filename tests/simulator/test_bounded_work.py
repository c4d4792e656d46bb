"""The simulator's own work stays off the event loop it shares with the bot, and a run keeps
only compact thumbnails of its dataset while it trains (simulated mode: every followed run)."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest
from PIL import Image

from bot.civitai.simulator import Simulator
from bot.civitai.simulator.dataset import THUMBNAIL_SIZE, thumbnails
from tests.dataset_helpers import image_bytes
from tests.simulator.conftest import Api, available, make_image, training_body

ON_THE_LOOP: list[str] = []


@pytest.fixture
def decodes_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Pillow decode made on the event loop's thread (the test's main thread)."""
    ON_THE_LOOP.clear()
    original = Image.open

    def watched(*args: Any, **kwargs: Any) -> Image.Image:
        if threading.current_thread() is threading.main_thread():
            ON_THE_LOOP.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(Image, "open", watched)
    return ON_THE_LOOP


async def test_uploads_and_runs_decode_images_off_the_event_loop(
    sim: Simulator, api: Api, decodes_on_the_loop: list[str]
) -> None:
    airs = []
    for i in range(2):
        uploaded = await api.client.post("/v2/consumer/blobs", files={"file": (f"{i}.png", make_image(i), "image/png")})
        assert uploaded.status_code == 201
        airs.append(f"urn:air:other:other:orchestrator:blob@{uploaded.json()['id']}")
    data = {"type": "blobs", "items": [{"air": air} for air in airs]}
    workflow = await api.finished((await api.submit(training_body(data=data, epochs=2))).json()["id"])
    assert workflow["status"] == "succeeded" and available(workflow) == [1, 2]
    assert decodes_on_the_loop == []


def test_a_run_keeps_small_jpeg_thumbnails_not_decoded_photos() -> None:
    photo = image_bytes(size=(2048, 1536))
    (thumb,) = thumbnails([photo, b"not an image"])
    # A decoded 384-px RGB thumbnail is 384 * 288 * 4 bytes (Pillow's RGB) = 432 KiB per image.
    assert isinstance(thumb, bytes) and len(thumb) < 64 * 1024
    with Image.open(io.BytesIO(thumb)) as image:
        assert image.format == "JPEG" and max(image.size) == THUMBNAIL_SIZE
