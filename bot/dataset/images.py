"""One image: prove it decodes completely, then make it something the trainer takes.

Verification is a full decode with truncated images refused. Every JPEG goes through the strict
decoder (bot/dataset/jpeg.py), which also refuses data damaged in the middle, where Pillow
would pad with grey. libjpeg reads every entropy-coded byte of every scan whatever the scale
of the decode (it must, to find where each block ends), so a JPEG is decoded at the smallest
scale it needs: 1/8 for one that needs no change, about the trainer's size for a large one
(which is downscaled anyway); a cut-off or damaged file fails exactly as in a full decode, at
a fraction of the cost and memory. Anything else is decoded fully, fixed (orientation, colour
mode, size, format) and re-encoded.

An image kept unchanged keeps only its picture's bytes (bot/dataset/image_data.py): nothing
appended or hidden in it reaches the normalised zip. Every decode holds its pixels in the
process's budget (bot/dataset/budget.py) while it runs.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import IO, Any

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from bot.dataset.budget import BudgetUser
from bot.dataset.entries import EXPORT_FIX
from bot.dataset.errors import EntryRefused
from bot.dataset.image_data import NotImageData, Spans, image_spans
from bot.dataset.jpeg import STRICT_MODES, CorruptJpeg, decode_strict

# Never hand the trainer a silently truncated picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Only these decoders may touch member uploads: Pillow can open dozens more (EPS even runs
# Ghostscript), and none of them is a format people train on.
DECODABLE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF", "AVIF", "HEIF")
KEEP_MODES = ("RGB", "L")
JPEG_QUALITY = 95
THUMBNAIL_SIDE = 128
ORIENTATION_TAG = 0x0112
_SUFFIXES = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",)}
_TRAINER_FORMATS = "the trainer takes JPEG and PNG"
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}


class ImageRefused(EntryRefused):
    """An image that cannot be used: unreadable, damaged, too small or too large."""


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int
    min_side: int
    max_side: int


@dataclass
class ImageOutcome:
    name: str  # the name in the normalised zip
    source_format: str
    width: int
    height: int
    encoded: bytes | None  # None: the ``kept`` ranges of the original go into the zip unchanged
    kept: Spans = field(default_factory=list)
    changes: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    thumbnail: Image.Image | None = None


def process_image(
    source: IO[bytes], name: str, limits: ImageLimits, *, want_thumbnail: bool, budget: BudgetUser | None = None
) -> ImageOutcome:
    """Verify and normalise one image read from ``source``; raise ``ImageRefused`` with a fix."""
    # Pillow's own bomb guard uses this global; every check in this process shares the setting.
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    head = source.read(64)
    source.seek(0)
    try:
        image = Image.open(source, formats=_decoders())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels(limits) from exc
    except UnidentifiedImageError as exc:
        raise _unidentified(head) from exc
    except Exception as exc:  # Pillow raises many types on malformed headers
        raise _damaged() from exc
    with image:
        try:
            return _Normaliser(image, source, head, name, limits, want_thumbnail, budget).run()
        except ImageRefused:
            raise
        except Exception as exc:  # decoding untrusted data: any failure means a damaged file
            raise _damaged() from exc


class _Normaliser:
    def __init__(
        self,
        image: Image.Image,
        source: IO[bytes],
        head: bytes,
        name: str,
        limits: ImageLimits,
        want_thumbnail: bool,
        budget: BudgetUser | None,
    ) -> None:
        self.image = image
        self.source = source
        self.head = head
        self.name = name
        self.limits = limits
        self.want_thumbnail = want_thumbnail
        self.budget = budget
        self.format = "JPEG" if image.format == "MPO" else str(image.format)
        self.original_size = image.size
        self.changes: list[tuple[str, str]] = []

    def run(self) -> ImageOutcome:
        image, limits = self.image, self.limits
        width, height = self.original_size
        if width * height > limits.max_pixels:
            raise _too_many_pixels(limits)
        if min(width, height) < limits.min_side:
            raise ImageRefused(
                f"The image is {width}×{height} px; images must be at least {limits.min_side} px on each side.",
                "Remove it or use a larger version.",
            )
        if self.format != "JPEG":
            with self._decoding(width * height):
                return self._decode_with_pillow()
        as_is = image.mode in KEEP_MODES and _orientation(image) == 1 and max(width, height) <= limits.max_side
        # The smallest scale (1/8), or the thumbnail's, yet the whole stream is still read.
        thumb_side = THUMBNAIL_SIDE if self.want_thumbnail else 1
        size = (thumb_side, thumb_side) if as_is else _jpeg_decode_size(width, height, limits.max_side)
        # A progressive JPEG's coefficients are buffered for the whole image whatever the scale.
        pixels = width * height if image.info.get("progressive") else size[0] * size[1]
        with self._decoding(pixels):
            if as_is:
                outcome = self._kept(self._decode_strict(image.mode, size))
                outcome.width, outcome.height = width, height
                return outcome
            if image.mode in STRICT_MODES:
                return self._reencode(self._decode_strict(image.mode, size), high_depth=False)
            # CMYK and YCCK: checked strictly at 1/8, then decoded by Pillow, which knows
            # Adobe's inverted CMYK.
            self._decode_strict("CMYK", (1, 1))
            image.draft(image.mode, size)
            image.load()
            return self._reencode(image, high_depth=False)

    def _decode_with_pillow(self) -> ImageOutcome:
        image, (width, height) = self.image, self.original_size
        image.load()
        if getattr(image, "is_animated", False):
            self.changes.append(("kept the first frame", "animations cannot be trained on"))
        high_depth = _png_bit_depth(self.head) == 16
        if self.format == "PNG" and image.mode in KEEP_MODES and not high_depth and not self.changes:
            if _orientation(image) == 1 and max(width, height) <= self.limits.max_side:
                return self._kept(image)
        return self._reencode(image, high_depth)

    def _decoding(self, pixels: int) -> AbstractContextManager[None]:
        return self.budget.hold(pixels) if self.budget else nullcontext()

    def _decode_strict(self, mode: str, min_size: tuple[int, int]) -> Image.Image:
        try:
            with _contents(self.source) as data:
                decoded = decode_strict(data, mode, min_size)
        except CorruptJpeg as exc:
            raise _damaged() from exc
        # The header's metadata, for the orientation (EXIF or XMP) when re-encoding.
        decoded.info.update({key: self.image.info[key] for key in ("exif", "xmp") if key in self.image.info})
        return decoded

    def _kept(self, image: Image.Image) -> ImageOutcome:
        new_name = _name_for(self.name, self.format)
        if new_name != self.name:
            self.changes.append((f"renamed to `{new_name}`", f"the file is a {self.format}"))
        try:
            with _contents(self.source) as data:
                total, kept = len(data), image_spans(data, self.format)
        except NotImageData as exc:
            raise _damaged() from exc
        removed = total - sum(end - start for start, end in kept)
        if removed:
            self.changes.append(
                (
                    f"left out {removed:,} bytes that are not part of the picture",
                    "data after the image's end or in metadata it does not need can hide another file",
                )
            )
        return ImageOutcome(
            name=new_name,
            source_format=self.format,
            width=image.width,
            height=image.height,
            encoded=None,
            kept=kept,
            changes=self.changes,
            thumbnail=_thumbnail(image) if self.want_thumbnail else None,
        )

    def _reencode(self, image: Image.Image, high_depth: bool) -> ImageOutcome:
        """Fix and encode ``image``, the decoded pixels (the opened image's, or the strict
        decoder's at a reduced scale)."""
        changes, max_side = self.changes, self.limits.max_side
        icc = self.image.info.get("icc_profile") if self.image.mode in KEEP_MODES else None
        if _orientation(image) != 1:
            changes.append(("rotated upright", "applied the camera's EXIF orientation"))
            image = ImageOps.exif_transpose(image)
        image, what = _to_trainable_mode(image)
        if what:
            changes.append((what, "the trainer takes RGB"))
        elif high_depth:
            changes.append(("16-bit → 8-bit", "the trainer takes 8-bit images"))
        if max(image.size) > max_side:
            image = ImageOps.contain(image, (max_side, max_side), Image.Resampling.LANCZOS)
        if max(image.size) < max(self.original_size):  # by the resample, or by JPEG's scaled decode
            before = "×".join(map(str, self.original_size))
            changes.append(
                (
                    f"downscaled {before} → {image.width}×{image.height}",
                    f"images over {max_side} px on the long side only slow training down",
                )
            )
        lossy = self.format in ("JPEG", "AVIF", "HEIF") or _is_lossy_webp(self.format, self.source)
        target = "JPEG" if lossy else "PNG"
        new_name = _name_for(self.name, target)
        if target != self.format:
            changes.append((f"converted {self.format} → {target} as `{new_name}`", _TRAINER_FORMATS))
        buffer = io.BytesIO()
        options = {"icc_profile": icc} if icc else {}
        if target == "JPEG":
            image.save(buffer, "JPEG", quality=JPEG_QUALITY, **options)
        else:
            image.save(buffer, "PNG", **options)
        return ImageOutcome(
            name=new_name,
            source_format=self.format,
            width=image.width,
            height=image.height,
            encoded=buffer.getvalue(),
            changes=changes,
            thumbnail=_thumbnail(image) if self.want_thumbnail else None,
        )


@contextmanager
def _contents(source: IO[bytes]) -> Iterator[Any]:
    """The whole entry as a buffer: in place for an in-memory entry, read for a spooled one."""
    if isinstance(source, io.BytesIO):
        with source.getbuffer() as view:
            yield view
    else:
        source.seek(0)
        yield source.read()


def _to_trainable_mode(image: Image.Image) -> tuple[Image.Image, str | None]:
    mode = image.mode
    if mode in KEEP_MODES:
        return image, None
    if mode.startswith("I") or mode == "F":
        wide = image.convert("I") if mode.startswith("I;16") else image
        if wide.getextrema()[1] > 255:  # type: ignore[operator]
            wide = wide.point(lambda value: value / 256)
        return wide.convert("L").convert("RGB"), "16-bit → 8-bit RGB"
    if "A" in mode or "a" in mode or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat, "transparency flattened onto white"
    return image.convert("RGB"), f"{mode} → RGB"


@functools.cache
def _decoders() -> tuple[str, ...]:
    """The allowed formats this Pillow build has plugins for (HEIF only with a plugin installed)."""
    Image.init()
    return tuple(name for name in DECODABLE_FORMATS if name in Image.OPEN)


def _thumbnail(image: Image.Image) -> Image.Image:
    thumb = image.convert("RGB") if image.mode != "RGB" else image.copy()
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR)
    return thumb


def _jpeg_decode_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The least size to ask libjpeg's scaled decode (1/2, 1/4, 1/8…) for, when downscaling anyway.

    Decoding at 1/2 costs half as much as a full decode and needs no resampling afterwards
    (a 12 MP LANCZOS resample costs several full decodes). When a power-of-two scale lands the
    long side between 3/4 of ``max_side`` and ``max_side`` it is used as is; otherwise the
    decode stops at the smallest scale still above ``max_side`` and LANCZOS does the rest.
    """
    long_side = max(width, height)
    if long_side <= max_side:
        return width, height
    for scale in (8, 4, 2):
        if max_side * 3 / 4 <= long_side / scale <= max_side:
            return max(1, width // scale), max(1, height // scale)
    ratio = long_side / max_side
    return max(1, int(width / ratio)), max(1, int(height / ratio))


def _orientation(image: Image.Image) -> int:
    value = image.getexif().get(ORIENTATION_TAG, 1)
    return value if isinstance(value, int) else 1


def _name_for(name: str, image_format: str) -> str:
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem = name
    if dot and "." + suffix.lower() in _SUFFIXES[image_format]:
        return name
    return stem + _SUFFIXES[image_format][0]


def _png_bit_depth(head: bytes) -> int | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) > 24:
        return head[24]
    return None


def _is_lossy_webp(source_format: str, source: IO[bytes]) -> bool:
    """Walk the RIFF chunks: ``VP8 `` holds lossy data, ``VP8L`` lossless."""
    if source_format != "WEBP":
        return False
    source.seek(12)
    while header := source.read(8):
        if len(header) < 8:
            return False
        kind, size = header[:4], struct.unpack("<I", header[4:])[0]
        if kind == b"VP8 ":
            return True
        if kind == b"VP8L":
            return False
        source.seek(size + (size & 1), io.SEEK_CUR)
    return False


def _too_many_pixels(limits: ImageLimits) -> ImageRefused:
    return ImageRefused(
        f"The image has more than {limits.max_pixels / 1_000_000:g} megapixels.",
        f"Resize it to at most {limits.max_side} px on the long side.",
    )


def _damaged() -> ImageRefused:
    return ImageRefused("The image is damaged or cut short and cannot be decoded.", "Export it again, or remove it.")


def _unidentified(head: bytes) -> ImageRefused:
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return ImageRefused("HEIC/HEIF images cannot be read here.", EXPORT_FIX + _IPHONE_HINT)
        if brand in (b"avif", b"avis"):
            return ImageRefused("AVIF images cannot be read here.", EXPORT_FIX)
    if head.startswith(b"\xff\x0a") or head[4:8] == b"JXL ":
        return ImageRefused("JPEG XL images cannot be read here.", EXPORT_FIX)
    return ImageRefused("The file is not an image this bot can read.", EXPORT_FIX)


_IPHONE_HINT = " On an iPhone, Settings → Camera → Formats → Most Compatible saves JPEGs."
