"""The byte ranges of a JPEG or PNG that are the picture, and nothing else.

A file can be a valid image and something more: a zip appended after a JPEG's end marker, a
script after a PNG's IEND, a payload in a private PNG chunk or a JPEG comment. Decoders stop
at the end marker and skip what they do not know, so such a "polyglot" verifies as a perfect
image. An image kept without re-encoding is therefore copied as these ranges only: the
structure is walked and only what draws the picture (or says how to show it: colour profile,
orientation, transparency) is kept, up to the end marker.
"""

from __future__ import annotations

import re
import struct
from typing import Any

Spans = list[tuple[int, int]]  # [start, end) byte ranges of the original, in order


class NotImageData(Exception):
    """The structure could not be walked to its end marker (the decoder should have refused it)."""


_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn have no length
_APP0, _APP15, _COM = 0xE0, 0xEF, 0xFE
# The application segments that matter for showing the picture, by their identifier.
_KNOWN_APP = {
    0xE0: (b"JFIF\x00", b"JFXX\x00"),
    0xE1: (b"Exif\x00", b"http://ns.adobe.com/xap/1.0/\x00"),  # orientation; XMP
    0xE2: (b"ICC_PROFILE\x00",),
    0xEE: (b"Adobe",),  # tells the decoder the colour transform
}
# The next marker in entropy-coded data: 0xFF not followed by a stuffed 0x00, RSTn or fill 0xFF.
_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Critical chunks, and the ancillary ones that change how the pixels look.
_PNG_KEPT = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"cICP", b"pHYs"}


def image_spans(data: Any, image_format: str) -> Spans:
    """The ranges of ``data`` (bytes or a buffer) that make the ``JPEG`` or ``PNG`` image."""
    view = memoryview(data).cast("B")
    return _jpeg_spans(view) if image_format == "JPEG" else _png_spans(view)


def _jpeg_spans(data: memoryview) -> Spans:
    if data[:2] != b"\xff\xd8":
        raise NotImageData("no start of image")
    spans: Spans = [(0, 2)]
    at = 2
    while True:
        while at < len(data) and data[at] == 0xFF and at + 1 < len(data) and data[at + 1] == 0xFF:
            at += 1  # fill bytes before a marker
        if at + 2 > len(data) or data[at] != 0xFF:
            raise NotImageData(f"no marker at {at}")
        marker = data[at + 1]
        if marker == _EOI:
            _add(spans, at, at + 2)
            return spans
        if marker in _STANDALONE or marker == _SOI:
            raise NotImageData(f"unexpected marker {marker:#x} at {at}")
        if at + 4 > len(data):
            raise NotImageData("cut short")
        end = at + 2 + struct.unpack_from(">H", data, at + 2)[0]
        if end > len(data):
            raise NotImageData("cut short")
        if _keeps_segment(marker, data[at + 4 : end]):
            _add(spans, at, end)
        if marker == _SOS:  # entropy-coded data follows, up to the next real marker
            found = _MARKER_IN_SCAN.search(data, end)
            if found is None:
                raise NotImageData("scan without an end")
            _add(spans, end, found.start())
            end = found.start()
        at = end


def _keeps_segment(marker: int, body: memoryview) -> bool:
    if marker == _COM:
        return False
    if _APP0 <= marker <= _APP15:
        return any(body[: len(tag)] == tag for tag in _KNOWN_APP.get(marker, ()))
    return True  # frame, tables, scan headers, restart interval: the picture itself


def _png_spans(data: memoryview) -> Spans:
    if data[:8] != _PNG_SIGNATURE:
        raise NotImageData("no PNG signature")
    spans: Spans = [(0, 8)]
    at = 8
    while at + 12 <= len(data):
        length = struct.unpack_from(">I", data, at)[0]
        kind = bytes(data[at + 4 : at + 8])
        end = at + 12 + length  # length, type, data, CRC
        if end > len(data):
            break
        if kind in _PNG_KEPT:
            _add(spans, at, end)
        if kind == b"IEND":
            return spans
        at = end
    raise NotImageData("no IEND chunk")


def _add(spans: Spans, start: int, end: int) -> None:
    """Append a range, merged with the previous one when they touch (one copy, not many)."""
    if spans and spans[-1][1] == start:
        spans[-1] = (spans[-1][0], end)
    else:
        spans.append((start, end))
