"""One budget of decoded pixels for the whole process: every check and contact sheet holds its
pixels there, concurrent checks never exceed it together, and a check that waits says so."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import bot.dataset.images as images_module
from bot.dataset import DatasetStore, check_zip, intake_from_stream
from bot.dataset.budget import PixelBudget, shared_budget
from tests.dataset_helpers import RecordedProgress, image_bytes, make_zip, settings_for


def dataset(tmp_path: Path, name: str) -> Path:
    """Images of several kinds and sizes: progressive and baseline JPEGs, PNGs, one big PNG."""
    files = {
        "progressive.jpg": image_bytes("JPEG", size=(600, 500), progressive=True),
        "baseline.jpg": image_bytes("JPEG", size=(600, 500)),
        "large.jpg": image_bytes("JPEG", size=(1600, 1200)),  # downscaled: decoded at reduced scale
        "small.png": image_bytes("PNG", size=(400, 400)),
        "other.png": image_bytes("PNG", size=(450, 400)),
        "big.png": image_bytes("PNG", size=(700, 700)),  # more than the whole budget: decoded alone
    }
    return make_zip(tmp_path / name, files)


def test_concurrent_checks_stay_within_one_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    budget = PixelBudget(300_000)
    strict_decodes: list[int] = []
    real_decode = images_module.decode_strict

    def decode_strict(*args: Any) -> Any:
        strict_decodes.append(budget.in_flight)  # the strict decode runs inside the budget
        return real_decode(*args)

    monkeypatch.setattr(images_module, "decode_strict", decode_strict)
    settings = settings_for(tmp_path, dataset_workers=3, max_image_side=1024)
    zips = [dataset(tmp_path, f"{n}.zip") for n in range(3)]
    with ThreadPoolExecutor(3) as pool:
        results = list(
            pool.map(
                lambda path: check_zip(
                    path, settings, store=DatasetStore(tmp_path / "store", 30), decoding=budget.user()
                ),
                zips,
            )
        )
    assert all(result.accepted for result in results), [r.refusals for r in results]
    # The big PNG holds the whole budget (it runs alone), and nothing ever held more.
    assert budget.peak == budget.total
    assert budget.in_flight == 0
    assert len(strict_decodes) == 3 * 3 and all(held > 0 for held in strict_decodes)


def test_a_progressive_jpeg_holds_its_full_size(tmp_path: Path) -> None:
    """libjpeg buffers a progressive JPEG's coefficients for the whole image whatever the scale
    of the decode, so it weighs its full size; a baseline JPEG only what is decoded."""
    settings = settings_for(tmp_path)
    for kind, weight in ((True, 600 * 500), (False, 128 * 128)):
        path = make_zip(tmp_path / f"{kind}.zip", {"a.jpg": image_bytes("JPEG", size=(600, 500), progressive=kind)})
        budget = PixelBudget(0)  # no limit: only records the peak
        assert check_zip(path, settings, decoding=budget.user()).accepted
        assert budget.peak >= weight and (kind or budget.peak < 600 * 500), (kind, budget.peak)


def test_waits_are_reported_only_behind_other_checks() -> None:
    budget = PixelBudget(100)
    events: dict[str, list[bool]] = {"first": [], "second": []}
    first = budget.user(on_wait=events["first"].append)
    second = budget.user(on_wait=events["second"].append)
    got_in = threading.Event()

    def second_check() -> None:
        with second.hold(80):
            got_in.set()

    def first_again() -> None:
        with first.hold(50):
            pass

    with first.hold(60):
        other = threading.Thread(target=second_check)
        other.start()
        assert not got_in.wait(0.2)  # 60 + 80 > 100: it waits
        assert events["second"] == [True]
    other.join(5)
    assert got_in.is_set() and events["second"] == [True, False]
    # A check's own workers waiting for each other is ordinary progress, not news.
    with first.hold(60):
        own = threading.Thread(target=first_again)
        own.start()
        own.join(0.1)
    own.join(5)
    assert events["first"] == [] and budget.peak == 80 and budget.in_flight == 0


def test_one_budget_per_process_and_setting() -> None:
    assert shared_budget(24_000_000) is shared_budget(24_000_000)
    assert shared_budget(24_000_000) is not shared_budget(1_000)


async def test_a_check_waiting_for_another_says_so(tmp_path: Path) -> None:
    size = 123_457  # a budget of its own in this process
    settings = settings_for(tmp_path, dataset_decode_pixels=size)
    data = make_zip(tmp_path / "in.zip", {f"{n}.png": image_bytes("PNG") for n in range(3)}).read_bytes()

    async def chunks() -> Any:
        yield data

    progress = RecordedProgress()
    with shared_budget(size).user().hold(size):  # another member's check holds it all
        intake = asyncio.create_task(intake_from_stream(chunks(), settings, progress=progress))
        for _ in range(200):
            if ("waiting", None, None) in progress.events:
                break
            await asyncio.sleep(0.02)
        assert progress.events[-1] == ("waiting", None, None)
        assert not intake.done()
    result = await asyncio.wait_for(intake, 30)
    assert result.accepted and result.image_count == 3
    checking = ("checking", 3, None)
    assert progress.events == [checking, ("waiting", None, None), checking]
