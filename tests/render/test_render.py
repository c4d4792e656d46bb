from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.render.grid import comparison_grid
from bot.render.progress import progress_bar
from bot.render.shrink import shrink_to_fit


def png(colour: tuple[int, int, int], size: tuple[int, int] = (300, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def test_grid_has_a_row_per_epoch_and_a_column_per_prompt() -> None:
    samples = {1: [png((255, 0, 0)), png((0, 255, 0))], 2: [png((0, 0, 255)), None]}
    data = comparison_grid(samples, ["a red thing", "a green thing"], cell=100)
    with Image.open(io.BytesIO(data)) as grid:
        assert grid.format == "PNG"
        # label column 110 + 2 cells of 100 + 3 gaps of 6; header 70 + 2 rows + 3 gaps.
        assert grid.size == (110 + 2 * 106 + 6, 70 + 2 * 106 + 6)
        rgb = grid.convert("RGB")
        # Centre of the epoch-1/prompt-1 cell shows the red sample; epoch-2/prompt-2 is missing.
        assert rgb.getpixel((116 + 50, 76 + 50)) == (255, 0, 0)
        assert rgb.getpixel((116 + 106 + 50, 76 + 106 + 50)) == (60, 62, 68)


def test_grid_survives_a_broken_sample() -> None:
    data = comparison_grid({1: [b"not an image"]}, ["p"], cell=64)
    assert Image.open(io.BytesIO(data)).size[0] > 64


def test_shrink_keeps_small_files_and_fits_big_ones() -> None:
    small = png((1, 2, 3))
    assert shrink_to_fit(small, 10_000_000, filename="s.png") == (small, "s.png")
    noisy = Image.effect_noise((1200, 1200), 100).convert("RGB")
    out = io.BytesIO()
    noisy.save(out, format="PNG")
    big = out.getvalue()
    limit = len(big) // 10
    data, name = shrink_to_fit(big, limit, filename="s.png")
    assert len(data) <= limit and name == "s.jpg"
    assert Image.open(io.BytesIO(data)).format == "JPEG"


@pytest.mark.parametrize(("fraction", "text"), [(0.0, "0%"), (0.5, "50%"), (1.0, "100%"), (1.7, "100%")])
def test_progress_bar(fraction: float, text: str) -> None:
    bar = progress_bar(fraction, width=10)
    assert bar.endswith(text)
    assert bar.count("▰") == round(min(fraction, 1.0) * 10)
    assert progress_bar(None).endswith("?")
