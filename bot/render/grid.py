"""The comparison grid posted when a run succeeds: one row per epoch, one column per prompt.

A trainer picks the epoch to keep by looking down a column, so rows are labelled with the
epoch and columns with (the start of) the prompt. Missing samples are drawn as grey cells
rather than dropped, so columns stay aligned.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence

from PIL import Image, ImageDraw

from bot.render.fonts import font
from bot.render.png import encode_png

BACKGROUND = (24, 25, 28)
MISSING = (60, 62, 68)
TEXT = (235, 235, 235)


def comparison_grid(
    samples: Mapping[int, Sequence[bytes | None]],
    prompts: Sequence[str],
    *,
    cell: int = 256,
    max_width: int = 2400,
    row_label: str = "Epoch {}",
) -> bytes:
    """Render ``samples`` ({epoch: [image bytes per prompt]}) as a labelled PNG grid
    (``row_label`` formats each row's key: other grids label rows otherwise)."""
    epochs = sorted(samples)
    columns = max([len(prompts), *(len(v) for v in samples.values())], default=1) or 1
    cell = max(64, min(cell, (max_width - 120) // columns))
    label_w, header_h, gap = 110, 70, 6
    width = label_w + columns * (cell + gap) + gap
    height = header_h + len(epochs) * (cell + gap) + gap
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    small, big = font(14), font(22)

    for col in range(columns):
        x = label_w + gap + col * (cell + gap)
        prompt = prompts[col] if col < len(prompts) else f"prompt {col + 1}"
        wrapped = textwrap.wrap(prompt, width=max(8, cell // 8))
        lines = wrapped[:3]
        if len(wrapped) > 3:
            lines[-1] = lines[-1][:-1] + "…"
        draw.multiline_text((x, 6), "\n".join(lines), fill=TEXT, font=small, spacing=2)

    for row, epoch in enumerate(epochs):
        y = header_h + gap + row * (cell + gap)
        draw.text((10, y + cell // 2 - 12), row_label.format(epoch), fill=TEXT, font=big)
        for col in range(columns):
            x = label_w + gap + col * (cell + gap)
            images = samples[epoch]
            data = images[col] if col < len(images) else None
            sheet.paste(_thumbnail(data, cell), (x, y))

    # A grid of photos is large: Pillow's per-row filter search (and worse, optimize=True)
    # costs seconds for a 10-epoch grid; see bot.render.png.
    return encode_png(sheet)


def _thumbnail(data: bytes | None, cell: int) -> Image.Image:
    tile = Image.new("RGB", (cell, cell), MISSING)
    if data is None:
        return tile
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (cell, cell))
            picture = image.convert("RGB")
    except (OSError, ValueError):
        return tile
    picture.thumbnail((cell, cell))
    tile.paste(picture, ((cell - picture.width) // 2, (cell - picture.height) // 2))
    return tile
