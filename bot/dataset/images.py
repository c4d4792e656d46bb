"""One image: prove it decodes completely, then make it something the trainer takes.

Verification is a full decode with truncated images refused. Every JPEG goes through the strict
decoder (bot/dataset/jpeg.py), which also refuses data damaged in the middle, where Pillow
would pad with grey. For a JPEG that needs no change the decode runs at 1/8 scale: libjpeg
still reads every entropy-coded byte of every scan (it must, to find where each block ends),
so a cut-off or damaged file fails exactly as in a full decode, at a fraction of the cost;
the untouched bytes are then kept as they are. Anything else is decoded fully, fixed
(orientation, colour mode, size, format) and re-encoded.
"""

from __future__ import annotations

import functools
import io
import struct
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import IO

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from bot.dataset.entries import EXPORT_FIX
from bot.dataset.errors import EntryRefused
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
    encoded: bytes | None  # None: the original bytes go into the zip unchanged
    changes: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    thumbnail: Image.Image | None = None


class DecodeBudget:
    """Bounds the pixels being decoded at once across worker threads.

    Memory then depends on this budget, not on the number of workers: small images decode in
    parallel, very large ones one at a time (an image over the whole budget waits for it all).
    """

    def __init__(self, pixels: int) -> None:
        self.total = pixels
        self._free = pixels
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        need = min(pixels, self.total)
        with self._changed:
            self._changed.wait_for(lambda: self._free >= need)
            self._free -= need
        try:
            yield
        finally:
            with self._changed:
                self._free += need
                self._changed.notify_all()


def process_image(
    source: IO[bytes], name: str, limits: ImageLimits, *, want_thumbnail: bool, budget: DecodeBudget | None = None
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
        budget: DecodeBudget | None,
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
        if self.format == "JPEG":
            if image.mode in KEEP_MODES and _orientation(image) == 1 and max(width, height) <= limits.max_side:
                return self._verify_jpeg_as_is()
            # Pillow decodes the pixels to re-encode (straight into its own buffer: a strict
            # decode at this scale would need a second full-size copy), after a strict check of
            # the whole stream at 1/8 scale, since Pillow would pass damage in the middle.
            self._decode_strict(image.mode if image.mode in STRICT_MODES else "CMYK", (1, 1))
            image.draft(image.mode, _jpeg_decode_size(width, height, limits.max_side))
        with self._decoding(image.width * image.height):
            image.load()
            if getattr(image, "is_animated", False) and image.format != "MPO":
                self.changes.append(("kept the first frame", "animations cannot be trained on"))
            high_depth = _png_bit_depth(self.head) == 16
            if self.format == "PNG" and image.mode in KEEP_MODES and not high_depth and not self.changes:
                if _orientation(image) == 1 and max(width, height) <= limits.max_side:
                    return self._kept(image)
            return self._reencode(high_depth)

    def _decoding(self, pixels: int) -> AbstractContextManager[None]:
        return self.budget.hold(pixels) if self.budget else nullcontext()

    def _verify_jpeg_as_is(self) -> ImageOutcome:
        width, height = self.image.size
        # The smallest scale (1/8), or the thumbnail's, yet the whole stream is still read.
        target = (THUMBNAIL_SIDE, THUMBNAIL_SIDE) if self.want_thumbnail else (1, 1)
        outcome = self._kept(self._decode_strict(self.image.mode, target))
        outcome.width, outcome.height = width, height
        return outcome

    def _decode_strict(self, mode: str, min_size: tuple[int, int]) -> Image.Image:
        source = self.source
        try:
            if isinstance(source, io.BytesIO):
                with source.getbuffer() as view:  # no copy of the entry's bytes
                    return decode_strict(view, mode, min_size)
            source.seek(0)
            return decode_strict(source.read(), mode, min_size)
        except CorruptJpeg as exc:
            raise _damaged() from exc

    def _kept(self, image: Image.Image) -> ImageOutcome:
        new_name = _name_for(self.name, self.format)
        if new_name != self.name:
            self.changes.append((f"renamed to `{new_name}`", f"the file is a {self.format}"))
        return ImageOutcome(
            name=new_name,
            source_format=self.format,
            width=image.width,
            height=image.height,
            encoded=None,
            changes=self.changes,
            thumbnail=_thumbnail(image) if self.want_thumbnail else None,
        )

    def _reencode(self, high_depth: bool) -> ImageOutcome:
        image, changes, max_side = self.image, self.changes, self.limits.max_side
        icc = image.info.get("icc_profile") if image.mode in KEEP_MODES else None
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
    """The size to ask libjpeg's scaled decode (1/2, 1/4, 1/8) for, when downscaling anyway.

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
