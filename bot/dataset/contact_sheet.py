"""The contact sheet: a labelled thumbnail grid, sized to read well in a Discord preview."""

from __future__ import annotations

import math
from contextlib import nullcontext

from PIL import Image, ImageDraw

from bot.dataset.budget import BudgetUser
from bot.dataset.images import THUMBNAIL_SIDE
from bot.render.fonts import Font, font
from bot.render.png import encode_png

MAX_TILES = 48
COLUMNS = 8
CELL_WIDTH = THUMBNAIL_SIDE + 16
LABEL_HEIGHT = 20
CELL_HEIGHT = THUMBNAIL_SIDE + LABEL_HEIGHT + 8
MARGIN = 12
HEADER_HEIGHT = 36
BACKGROUND = (43, 45, 49)  # Discord's dark theme, so the sheet sits well in a message
TEXT = (230, 230, 230)
MUTED = (160, 160, 170)


def render_contact_sheet(tiles: list[tuple[str, Image.Image]], total: int, decoding: BudgetUser | None = None) -> bytes:
    """PNG of up to ``MAX_TILES`` (name, thumbnail) pairs; ``total`` counts every image.

    The sheet's pixels are held in ``decoding`` (the process's budget) while it is drawn."""
    shown = tiles[:MAX_TILES]
    hidden = total - len(shown)
    cells = len(shown) + (1 if hidden > 0 else 0)
    columns = COLUMNS if cells >= COLUMNS else max(cells, 1)
    rows = max(1, math.ceil(cells / COLUMNS))
    width = max(columns * CELL_WIDTH, 4 * CELL_WIDTH) + 2 * MARGIN
    height = HEADER_HEIGHT + rows * CELL_HEIGHT + MARGIN
    with decoding.hold(width * height) if decoding else nullcontext():
        return _draw(shown, total, hidden, width, height)


def _draw(shown: list[tuple[str, Image.Image]], total: int, hidden: int, width: int, height: int) -> bytes:
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    label_font = font(13)
    draw.text((MARGIN, 8), f"{total} image{'s' if total != 1 else ''}", fill=TEXT, font=font(18))
    for index, (name, thumb) in enumerate(shown):
        x, y = _cell_origin(index)
        sheet.paste(thumb, (x + (CELL_WIDTH - thumb.width) // 2, y + (THUMBNAIL_SIDE - thumb.height) // 2))
        label = _fit(name, label_font, CELL_WIDTH - 6)
        label_width = label_font.getlength(label)
        draw.text((x + (CELL_WIDTH - label_width) / 2, y + THUMBNAIL_SIDE + 4), label, fill=TEXT, font=label_font)
    if hidden > 0:
        x, y = _cell_origin(len(shown))
        more = f"+{hidden} more"
        more_font = font(20)
        draw.text(
            (x + (CELL_WIDTH - more_font.getlength(more)) / 2, y + THUMBNAIL_SIDE / 2 - 10),
            more,
            fill=MUTED,
            font=more_font,
        )
    # The sheet is rendered on every check, so its encoding cost counts (see bot.render.png).
    return encode_png(sheet)


def _cell_origin(index: int) -> tuple[int, int]:
    row, column = divmod(index, COLUMNS)
    return MARGIN + column * CELL_WIDTH, HEADER_HEIGHT + row * CELL_HEIGHT


def _fit(text: str, label_font: Font, width: int) -> str:
    """Shorten ``text`` with a middle ellipsis so the extension stays visible."""
    if label_font.getlength(text) <= width:
        return text
    keep_end = text[-8:]
    start = text[:-8]
    while start and label_font.getlength(start + "…" + keep_end) > width:
        start = start[:-1]
    return start + "…" + keep_end
