"""Images: full verification, refusals with fixes, and every conversion reported."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest
from PIL import Image, ImageChops, features

from bot.dataset import DatasetResult, DatasetStore, check_zip
from tests.dataset_helpers import (
    image_bytes,
    make_zip,
    png_16bit_rgb,
    png_chunk,
    settings_for,
    zip_member,
    zip_names,
)


def check(tmp_path: Path, files: dict[str, bytes], **settings: object) -> DatasetResult:
    path = make_zip(tmp_path / "in.zip", files)
    return check_zip(path, settings_for(tmp_path, **settings), store=DatasetStore(tmp_path / "store", 30))


def only_image(result: DatasetResult) -> tuple[str, Image.Image]:
    assert result.accepted, result.refusals
    assert result.zip_path is not None
    names = zip_names(result.zip_path)
    assert len(names) == 1
    image = Image.open(io.BytesIO(zip_member(result.zip_path, names[0])))
    image.load()
    return names[0], image


def changes_of(result: DatasetResult, file: str) -> str:
    return " | ".join(f"{c.what} ({c.why})" for c in result.changes if c.file == file)


def refusal_of(result: DatasetResult, file: str) -> str:
    assert not result.accepted
    found = [f"{r.reason} {r.fix}" for r in result.refusals if r.file == file]
    assert found, result.refusals
    return found[0]


def test_untouched_jpeg_and_png_keep_their_bytes(tmp_path: Path) -> None:
    jpeg, png = image_bytes("JPEG", quality=90), image_bytes("PNG")
    result = check(tmp_path, {"a.JPG": jpeg, "b.png": png, "c.jpeg": image_bytes("JPEG", mode="L")})
    assert result.accepted and not result.changes
    assert result.zip_path is not None
    assert zip_member(result.zip_path, "a.JPG") == jpeg
    assert zip_member(result.zip_path, "b.png") == png
    assert result.formats == {"JPEG": 2, "PNG": 1}


@pytest.mark.parametrize("keep", [0.3, 0.9, 0.995])
def test_truncated_jpeg_is_refused(tmp_path: Path, keep: float) -> None:
    whole = image_bytes("JPEG", size=(256, 256), quality=95)
    result = check(tmp_path, {"ok.jpg": whole, "cut.jpg": whole[: int(len(whole) * keep)]})
    assert "damaged or cut short" in refusal_of(result, "cut.jpg")


def test_truncated_progressive_jpeg_and_png_are_refused(tmp_path: Path) -> None:
    progressive = image_bytes("JPEG", size=(256, 256), progressive=True)
    png = image_bytes("PNG", size=(256, 256))
    result = check(tmp_path, {"p.jpg": progressive[: len(progressive) * 9 // 10], "q.png": png[: len(png) - 40]})
    assert "cut short" in refusal_of(result, "p.jpg")
    assert "cut short" in refusal_of(result, "q.png")


def damage_mid_scan(jpeg: bytes, how: str) -> bytes:
    """Damage the entropy-coded data halfway between the first scan header and the end marker.

    JPEG has no checksum, so not every damage is detectable: a single flipped bit decodes to
    other valid values, and bytes cut from a late refinement scan of a progressive JPEG can
    read as one long end-of-band run. Damage like these below, libjpeg does notice.
    """
    start = jpeg.index(b"\xff\xda")
    mid = start + (len(jpeg) - start) // 2
    if how == "zeroed":
        return jpeg[:mid] + bytes(256) + jpeg[mid + 256 :]
    if how == "cut out":
        return jpeg[:mid] + jpeg[mid + 256 :]
    return jpeg[:mid] + b"\xff\xd9" + jpeg[mid + 2 :]  # a stray end-of-image marker


# Pillow decodes all of these without complaint (it drops libjpeg's "corrupt data" warnings),
# padding the picture with grey: the check must refuse them on every JPEG path.
@pytest.mark.parametrize("how", ["zeroed", "cut out", "stray marker"])
@pytest.mark.parametrize(
    ("kind", "jpeg", "settings"),
    [
        ("kept as is", image_bytes("JPEG", size=(512, 384), quality=95), {}),
        ("progressive", image_bytes("JPEG", size=(512, 384), quality=95, progressive=True), {}),
        ("greyscale", image_bytes("JPEG", size=(512, 384), mode="L", quality=95), {}),
        ("downscaled", image_bytes("JPEG", size=(512, 384), quality=95), {"max_image_side": 256}),
        ("CMYK", image_bytes("JPEG", size=(512, 384), mode="CMYK", quality=95), {}),
        # Decoded at reduced scale (1/2) since they are downscaled anyway: every scan is still read.
        ("large", image_bytes("JPEG", size=(4000, 3000), quality=95), {}),
        ("large progressive", image_bytes("JPEG", size=(4000, 3000), quality=95, progressive=True), {}),
    ],
)
def test_jpeg_damaged_mid_stream_is_refused(
    tmp_path: Path, how: str, kind: str, jpeg: bytes, settings: dict[str, object]
) -> None:
    result = check(tmp_path, {"ok.jpg": jpeg, "bad.jpg": damage_mid_scan(jpeg, how)}, **settings)
    assert "damaged or cut short" in refusal_of(result, "bad.jpg"), kind
    assert not [r for r in result.refusals if r.file == "ok.jpg"], kind


def test_text_named_like_an_image_is_refused(tmp_path: Path) -> None:
    result = check(tmp_path, {"fake.jpg": b"hello, this is not a picture"})
    assert "not an image" in refusal_of(result, "fake.jpg")


def test_tiny_images_are_refused(tmp_path: Path) -> None:
    result = check(tmp_path, {"tiny.png": image_bytes("PNG", size=(200, 40))})
    assert "200×40" in refusal_of(result, "tiny.png") and "64 px" in refusal_of(result, "tiny.png")


# Over the cap (Pillow only warns; our own check refuses), and over twice the cap (Pillow refuses).
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("size", [(120, 100), (400, 300)])
def test_decompression_bombs_are_refused(tmp_path: Path, size: tuple[int, int]) -> None:
    result = check(tmp_path, {"big.png": image_bytes("PNG", size=size)}, max_image_pixels=10_000)
    assert "megapixels" in refusal_of(result, "big.png")


def test_heic_is_refused_with_how_to_convert(tmp_path: Path) -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200)
    result = check(tmp_path, {"IMG_0001.HEIC": heic, "ok.jpg": image_bytes()})
    message = refusal_of(result, "IMG_0001.HEIC")
    assert "HEIC" in message and "JPEG" in message and "Most Compatible" in message


@pytest.mark.parametrize("name", ["photo.psd", "raw.CR2", "art.svg"])
def test_formats_without_a_decoder_are_refused(tmp_path: Path, name: str) -> None:
    result = check(tmp_path, {name: b"data", "ok.jpg": image_bytes()})
    assert "Export it as JPEG or PNG" in refusal_of(result, name)


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF decoder")
def test_avif_is_converted_to_jpeg(tmp_path: Path) -> None:
    result = check(tmp_path, {"a.avif": image_bytes("AVIF")})
    name, image = only_image(result)
    assert name == "a.jpg" and image.format == "JPEG"
    assert "AVIF → JPEG" in changes_of(result, "a.avif")


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    result = check(tmp_path, {"cam.jpg": image_bytes("JPEG", size=(120, 80), exif=exif.tobytes())})
    name, image = only_image(result)
    assert name == "cam.jpg" and image.size == (80, 120)
    assert image.getexif().get(0x0112) is None
    assert "rotated upright" in changes_of(result, "cam.jpg")


@pytest.mark.parametrize(
    ("name", "data", "expected_name", "words"),
    [
        ("cmyk.jpg", image_bytes("JPEG", mode="CMYK"), "cmyk.jpg", "CMYK → RGB"),
        ("pal.png", image_bytes("PNG", mode="P"), "pal.png", "P → RGB"),
        ("la.png", image_bytes("PNG", mode="LA"), "la.png", "transparency flattened onto white"),
        ("deep.png", image_bytes("PNG", mode="I;16"), "deep.png", "16-bit → 8-bit"),
        ("deep48.png", png_16bit_rgb(), "deep48.png", "16-bit → 8-bit"),
        ("b.bmp", image_bytes("BMP"), "b.png", "BMP → PNG"),
        ("t.tiff", image_bytes("TIFF"), "t.png", "TIFF → PNG"),
        ("g.gif", image_bytes("GIF"), "g.png", "GIF → PNG"),
        ("lossy.webp", image_bytes("WEBP", quality=80), "lossy.jpg", "WEBP → JPEG"),
        ("lossless.webp", image_bytes("WEBP", lossless=True), "lossless.png", "WEBP → PNG"),
    ],
)
def test_conversions_are_made_and_reported(
    tmp_path: Path, name: str, data: bytes, expected_name: str, words: str
) -> None:
    result = check(tmp_path, {name: data})
    out_name, image = only_image(result)
    assert out_name == expected_name
    assert image.mode == "RGB" and image.format in ("JPEG", "PNG")
    assert words in changes_of(result, name)


def test_16bit_values_are_scaled_not_clipped(tmp_path: Path) -> None:
    result = check(tmp_path, {"deep48.png": png_16bit_rgb()})
    _, image = only_image(result)
    red, green, blue = image.getpixel((0, 0))  # type: ignore[misc]
    assert (red, blue) == (255, 0) and 120 <= green <= 135


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (80, 80), (255, 0, 0, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 40, 80))  # left half fully transparent
    out = io.BytesIO()
    rgba.save(out, "PNG")
    result = check(tmp_path, {"alpha.png": out.getvalue()})
    _, image = only_image(result)
    assert image.mode == "RGB"
    assert image.getpixel((10, 10)) == (255, 255, 255)
    assert image.getpixel((70, 10)) == (255, 0, 0)
    assert "transparency flattened onto white" in changes_of(result, "alpha.png")


def test_animation_keeps_the_first_frame_with_a_note(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (80, 80), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100)
    result = check(tmp_path, {"anim.gif": out.getvalue()})
    _, image = only_image(result)
    assert image.getpixel((40, 40))[0] > 200  # type: ignore[index]
    assert "first frame" in changes_of(result, "anim.gif")


@pytest.mark.parametrize(
    ("name", "fmt", "size", "expected"),
    [
        ("wide.png", "PNG", (600, 300), (200, 100)),  # resampled
        ("wide.jpg", "JPEG", (500, 250), (200, 100)),  # 1/2 decode still too big, 1/4 too small: resampled
        ("wide.jpg", "JPEG", (600, 300), (150, 75)),  # libjpeg's 1/4 decode lands within 3/4 of the limit
    ],
)
def test_long_side_over_the_limit_is_downscaled(
    tmp_path: Path, name: str, fmt: str, size: tuple[int, int], expected: tuple[int, int]
) -> None:
    result = check(tmp_path, {name: image_bytes(fmt, size=size)}, max_image_side=200)
    out_name, image = only_image(result)
    assert out_name == name and image.size == expected
    assert f"downscaled {size[0]}×{size[1]} → {expected[0]}×{expected[1]}" in changes_of(result, name)
    assert str(result.resolution_max) == f"{expected[0]}×{expected[1]}"


def test_wrong_extension_is_renamed_and_bytes_kept(tmp_path: Path) -> None:
    jpeg = image_bytes("JPEG")
    result = check(tmp_path, {"really.png": jpeg, "really.txt": b"caption"})
    assert result.accepted, result.refusals
    assert result.zip_path is not None
    assert zip_names(result.zip_path) == ["really.jpg", "really.txt"]
    assert zip_member(result.zip_path, "really.jpg") == jpeg
    assert "renamed to `really.jpg`" in changes_of(result, "really.png")
    assert result.captioned == 1


def test_resolutions_and_small_image_warning(tmp_path: Path) -> None:
    files = {f"{i}.png": image_bytes("PNG", size=(64 + 40 * i, 64 + 40 * i)) for i in range(5)}
    result = check(tmp_path, files, warn_below_image_side=150)
    assert (str(result.resolution_min), str(result.resolution_median), str(result.resolution_max)) == (
        "64×64",
        "144×144",
        "224×224",
    )
    assert any("3 images are under 150 px" in w for w in result.warnings)


def jpeg_segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def after_header(jpeg: bytes, segment: bytes) -> bytes:
    """``segment`` inserted before the first scan (where comments and APPn segments go)."""
    at = jpeg.index(b"\xff\xda")
    return jpeg[:at] + segment + jpeg[at:]


def before_end(png: bytes, chunk: bytes) -> bytes:
    at = png.index(b"IEND") - 4
    return png[:at] + chunk + png[at:]


def a_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.sh", "#!/bin/sh\necho owned\n")
    return out.getvalue()


# Polyglots: valid images that carry something else. Decoders ignore the passenger, so they
# verify as perfect pictures; only the picture may reach the normalised zip.
@pytest.mark.parametrize(
    ("name", "clean", "polyglot"),
    [
        ("zip after a JPEG", image_bytes("JPEG"), image_bytes("JPEG") + a_zip()),
        (
            "zip after a progressive JPEG",
            image_bytes("JPEG", progressive=True),
            image_bytes("JPEG", progressive=True) + a_zip(),
        ),
        ("script after a PNG", image_bytes("PNG"), image_bytes("PNG") + b"<script>alert(1)</script>"),
        ("private PNG chunk", image_bytes("PNG"), before_end(image_bytes("PNG"), png_chunk(b"prVt", a_zip()))),
        ("PNG text chunk", image_bytes("PNG"), before_end(image_bytes("PNG"), png_chunk(b"tEXt", b"k\x00" + a_zip()))),
        ("JPEG comment", image_bytes("JPEG"), after_header(image_bytes("JPEG"), jpeg_segment(0xFE, a_zip()))),
        (
            "unknown JPEG APP segment",
            image_bytes("JPEG"),
            after_header(image_bytes("JPEG"), jpeg_segment(0xE9, a_zip())),
        ),
    ],
)
def test_polyglots_leave_only_the_picture(tmp_path: Path, name: str, clean: bytes, polyglot: bytes) -> None:
    suffix = ".jpg" if polyglot.startswith(b"\xff\xd8") else ".png"
    result = check(tmp_path, {"a" + suffix: polyglot})
    out_name, image = only_image(result)
    assert result.zip_path is not None
    kept = zip_member(result.zip_path, out_name)
    assert kept == clean, name
    assert not zipfile.is_zipfile(io.BytesIO(kept)) and b"script" not in kept
    assert ImageChops.difference(image.convert("RGB"), Image.open(io.BytesIO(clean)).convert("RGB")).getbbox() is None
    removed = len(polyglot) - len(clean)
    assert f"left out {removed:,} bytes that are not part of the picture" in changes_of(result, "a" + suffix)


def test_what_shows_the_picture_is_kept(tmp_path: Path) -> None:
    """ICC profile, EXIF and a restart interval stay in a kept JPEG; gamma and transparency in a PNG."""
    base = Image.linear_gradient("L").resize((96, 80))
    jpeg = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    Image.merge("RGB", (base, base, base)).save(
        jpeg, "JPEG", icc_profile=b"not really a profile", exif=exif, restart_marker_blocks=1
    )
    png = before_end(image_bytes("PNG"), png_chunk(b"gAMA", struct.pack(">I", 45455)))
    result = check(tmp_path, {"a.jpg": jpeg.getvalue(), "b.png": png})
    assert result.accepted and not result.changes, result.changes
    assert result.zip_path is not None
    assert zip_member(result.zip_path, "a.jpg") == jpeg.getvalue()
    assert zip_member(result.zip_path, "b.png") == png
