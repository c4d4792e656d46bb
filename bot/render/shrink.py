"""Make an image fit an upload limit (Discord: 10 MiB per file by default)."""

from __future__ import annotations

import io

from PIL import Image


def shrink_to_fit(data: bytes, limit: int, *, filename: str = "image.png") -> tuple[bytes, str]:
    """Return ``(bytes, filename)`` no larger than ``limit``; unchanged when already small.

    Oversized images are re-encoded as JPEG at falling quality, then at smaller sizes, because
    a smaller sample is more useful in a thread than a missing one.
    """
    if len(data) <= limit:
        return data, filename
    with Image.open(io.BytesIO(data)) as image:
        picture = image.convert("RGB")
    stem = filename.rsplit(".", 1)[0]
    scale = 1.0
    while True:
        for quality in (90, 80, 70, 55):
            size = (max(1, int(picture.width * scale)), max(1, int(picture.height * scale)))
            candidate = picture if scale == 1.0 else picture.resize(size, Image.Resampling.LANCZOS)
            out = io.BytesIO()
            candidate.save(out, format="JPEG", quality=quality, optimize=True)
            if out.tell() <= limit:
                return out.getvalue(), f"{stem}.jpg"
        if max(picture.size) * scale < 64:
            raise ValueError(f"cannot shrink {filename} below {limit} bytes")
        scale *= 0.7
