from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bot.render.png import encode_png


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_encoded_png_decodes_to_the_same_rgb_pixels(mode: str) -> None:
    noise = Image.effect_noise((97, 53), 80).convert("RGB")  # odd sizes: no row alignment luck
    image = noise.convert(mode)
    decoded = Image.open(io.BytesIO(encode_png(image)))
    assert decoded.format == "PNG" and decoded.mode == "RGB" and decoded.size == (97, 53)
    assert np.array_equal(np.asarray(decoded), np.asarray(image.convert("RGB")))


def test_flat_areas_compress_well() -> None:
    flat = Image.new("RGB", (800, 600), (43, 45, 49))
    assert len(encode_png(flat)) < 5_000
