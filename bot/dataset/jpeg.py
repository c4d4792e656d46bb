"""Strict JPEG decoding: libjpeg-turbo with its "corrupt data" warnings treated as errors.

Pillow drops libjpeg's warnings, so it decodes a JPEG whose entropy-coded data was zeroed,
overwritten, cut out in the middle or ended early by a stray marker, and pads the rest with
grey. simplejpeg's strict mode raises on those warnings instead; it also releases the GIL
for the whole decode, so worker threads really run in parallel (Pillow's chunked decode
does not). Headers, EXIF and ICC still come from Pillow; the pixels come from here, at the
scale they are needed (except a CMYK JPEG's, which Pillow decodes after it passed here).
"""

from __future__ import annotations

from typing import Any

import simplejpeg
from PIL import Image

STRICT_MODES = ("RGB", "L")  # what Pillow opens a YCbCr or greyscale JPEG as
_COLORSPACES = {"RGB": "RGB", "L": "GRAY", "CMYK": "CMYK"}  # CMYK: also YCCK, converted by libjpeg


class CorruptJpeg(Exception):
    """libjpeg found the data damaged, even where Pillow would have decoded it."""


def decode_strict(data: Any, mode: str, min_size: tuple[int, int]) -> Image.Image:
    """Decode ``data`` (bytes or any buffer) at the smallest libjpeg scale of at least ``min_size``.

    libjpeg reads every entropy-coded byte whatever the scale, so a 1/8 decode proves the
    whole stream as well as a full one. ``mode`` is one of ``STRICT_MODES``, or ``"CMYK"``
    to verify a CMYK or YCCK JPEG (whose pixels Pillow then decodes, inverting Adobe's CMYK).
    """
    gray = mode == "L"
    try:
        pixels = simplejpeg.decode_jpeg(
            data,
            colorspace=_COLORSPACES[mode],
            min_width=max(1, min_size[0]),
            min_height=max(1, min_size[1]),
            strict=True,
        )
    except ValueError as exc:
        raise CorruptJpeg(str(exc)) from exc
    return Image.fromarray(pixels[:, :, 0] if gray else pixels, mode)
