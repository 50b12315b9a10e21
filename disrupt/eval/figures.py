"""Labelled image grids (Pillow only): one picture to look at instead of a folder of files.

:func:`compose_grid` lays out tensors ``(3, H, W)`` in ``[0, 1]`` in rows and columns,
each scaled to fit a square cell (aspect kept, centred on a white background), with
a header row of column titles and a left column of row labels. :func:`grid_size`
gives the picture's size for a layout, so callers and tests know it in advance.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from disrupt.imaging.pixels import to_pil

__all__ = ["HEADER", "LABEL_WIDTH", "PAD", "compose_grid", "grid_size"]

PAD = 4  #: pixels between cells
HEADER = 28  #: height of the column-title row
LABEL_WIDTH = 190  #: width of the row-label column
_LINE = 12  # line height of Pillow's default bitmap font


def grid_size(rows: int, cols: int, cell: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of a :func:`compose_grid` picture."""
    width = LABEL_WIDTH + cols * (cell + PAD) + PAD
    height = HEADER + rows * (cell + PAD) + PAD
    return width, height


def _fit(image: Tensor, cell: int) -> Image.Image:
    """``(3, H, W)`` in ``[0, 1]`` -> an RGB ``cell x cell`` tile, aspect kept, centred."""
    if image.ndim == 4:
        image = image[0]
    pil = to_pil(image.float())
    w, h = pil.size
    scale = cell / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # Nearest when enlarging keeps single pixels visible (64x64 outputs); bicubic when shrinking.
    method = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BICUBIC
    tile = Image.new("RGB", (cell, cell), "white")
    tile.paste(pil.resize(size, method), ((cell - size[0]) // 2, (cell - size[1]) // 2))
    return tile


def _wrap(text: str, width_px: int) -> list[str]:
    """Split ``text`` into lines of at most ``width_px`` pixels (6 px per character)."""
    limit = max(4, width_px // 6)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            while len(word) > limit:
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:limit])
                word = word[limit:]
            candidate = f"{line} {word}".strip()
            if len(candidate) > limit and line:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def compose_grid(
    rows: Sequence[Sequence[Tensor | None]],
    *,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    cell: int = 128,
    title: str | None = None,
) -> Image.Image:
    """Lay out images in a labelled grid.

    Args:
        rows: ``rows[r][c]`` is an image ``(3, H, W)`` or ``(1, 3, H, W)`` in ``[0, 1]``,
            or ``None`` for an empty (grey) cell. Every row has ``len(col_labels)`` entries.
        row_labels: one label per row (``\\n`` starts a new line; long lines wrap).
        col_labels: one title per column.
        cell: side of each square cell in pixels.
        title: optional text in the header's top-left corner.

    Returns:
        An RGB PIL image of size :func:`grid_size` ``(len(rows), len(col_labels), cell)``.
    """
    if len(row_labels) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(row_labels)} row labels")
    if any(len(r) != len(col_labels) for r in rows):
        raise ValueError(f"every row needs {len(col_labels)} images")
    if cell < 8:
        raise ValueError(f"cell must be at least 8 pixels, got {cell}")
    canvas = Image.new("RGB", grid_size(len(rows), len(col_labels), cell), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    if title:
        draw.text((PAD, PAD), _wrap(title, LABEL_WIDTH - PAD)[0], fill="black", font=font)
    for c, label in enumerate(col_labels):
        x0 = LABEL_WIDTH + PAD + c * (cell + PAD)
        for k, line in enumerate(_wrap(label, cell)[:2]):
            draw.text((x0, PAD + k * _LINE), line, fill="black", font=font)
    for r, (images, label) in enumerate(zip(rows, row_labels, strict=True)):
        y0 = HEADER + PAD + r * (cell + PAD)
        max_lines = max(1, cell // _LINE)
        for k, line in enumerate(_wrap(label, LABEL_WIDTH - 2 * PAD)[:max_lines]):
            draw.text((PAD, y0 + k * _LINE), line, fill="black", font=font)
        for c, image in enumerate(images):
            x0 = LABEL_WIDTH + PAD + c * (cell + PAD)
            tile = Image.new("RGB", (cell, cell), (200, 200, 200)) if image is None else _fit(
                image, cell)
            canvas.paste(tile, (x0, y0))
    return canvas
