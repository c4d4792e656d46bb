"""Confirm in simulated mode does its file and image work off the event loop: with many members
confirming at once, work on the loop delays every other member's command (Discord gives 3 s)."""

from __future__ import annotations

import threading
import zipfile
from typing import Any

import pytest
from PIL import Image

from bot.app import TrainerBot
from tests.stage import Stage, StageMember
from tests.train.helpers import attachment, confirmation, submitted


async def test_confirm_reads_the_zip_and_decodes_images_in_worker_threads(
    stage: Stage, trainer: TrainerBot, alice: StageMember, monkeypatch: pytest.MonkeyPatch
) -> None:
    await alice.slash("train flux1", dataset=attachment(4), trigger_word="sks")
    shown = await confirmation(alice)

    on_the_loop: list[str] = []

    def watch(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        def watched(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is threading.main_thread():
                on_the_loop.append(f"{owner.__name__}.{name}")
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, watched)

    watch(zipfile.ZipFile, "read")  # the stored dataset's images, uploaded as blobs
    watch(Image, "open")  # the simulator checking each upload, making thumbnails for samples
    await alice.click(shown, label="Confirm")
    await alice.wait_ephemeral(submitted)
    assert on_the_loop == []
