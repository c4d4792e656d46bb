"""A fast PNG encoder for the pictures the bot renders on every dataset check and run.

Pillow tries all five PNG row filters on every row of an RGB image and keeps the best, which
makes encoding a contact sheet cost more than decoding the thumbnails in it. Thumbnails of
photos compress about as well with the "Sub" filter alone, and numpy applies it to the whole
image in one step, so the sheet encodes several times faster at a similar size.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUB_FILTER = 1
RGB_COLOUR_TYPE = 2


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_png(image: Image.Image) -> bytes:
    """``image`` as an 8-bit RGB PNG, every row filtered with "Sub", run-length deflated."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    height, width, channels = pixels.shape
    rows = pixels.reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), dtype=np.uint8)
    filtered[:, 0] = SUB_FILTER
    filtered[:, 1 : 1 + channels] = rows[:, :channels]
    # Each byte minus the same channel of the pixel to its left, modulo 256.
    np.subtract(rows[:, channels:], rows[:, :-channels], out=filtered[:, 1 + channels :])
    compressor = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    data = compressor.compress(filtered.tobytes()) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, RGB_COLOUR_TYPE, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
