"""Figures for the evaluation report, drawn with Pillow alone (no plotting library is a dependency).

* :func:`line_plot`: a few labelled series on shared axes (precision-recall curves, the l_dom sweep);
* :func:`labelled_grid`: a grid of images with column titles and row labels (the paper's Fig. 2 layout,
  manipulation grids, interpolation strips).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..images import to_uint8

#: Series colours (colour-blind-safe Okabe-Ito palette).
PALETTE = ((0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0), (86, 180, 233),
           (240, 228, 66), (0, 0, 0))


def font(size: int = 12) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at ``size`` px (the bitmap default on Pillow builds without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, fnt) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=fnt)
    return right - left, bottom - top


def _ticks(lo: float, hi: float, count: int = 5) -> list[tuple[float, str]]:
    """About ``count`` round tick values covering [lo, hi], with labels just precise enough to tell them apart."""
    if hi <= lo:
        return [(lo, f"{lo:.3g}")]
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    first = math.ceil(lo / step - 1e-9) * step
    values = [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if step / mag == 2.5 else 0)
    if max(abs(lo), abs(hi)) >= 1e5 or decimals > 6:
        return [(v, f"{v:.2e}") for v in values]
    return [(v, f"{v:.{decimals}f}") for v in values]


def line_plot(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    markers: bool = True,
    step: bool = False,
    xticks: Sequence[tuple[float, str]] | None = None,
    legend: str | None = "upper right",
    size: tuple[int, int] = (480, 340),
) -> Path:
    """Draw ``{label: (xs, ys)}`` as lines on one set of axes and save a PNG.

    ``step=True`` draws each series as a staircase: the value of each point holds over the interval from
    the previous point (a precision-recall curve, whose area is the average precision). Non-finite points
    are skipped. Axis limits default to the data's range; ``xticks`` ``[(x, label), ...]`` replaces the
    automatic x ticks (e.g. values plotted at equal spacing). ``legend`` is ``"upper right"``,
    ``"lower left"``, ``"lower right"`` or None (no legend).
    """
    width, height = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    fnt, small = font(13), font(11)
    left, right, top, bottom = 58, 14, 30 if title else 12, 44
    pts = [(float(x), float(y)) for xs, ys in series.values() for x, y in zip(xs, ys)
           if math.isfinite(float(x)) and math.isfinite(float(y))]
    if xlim is None:
        xs_all = [p[0] for p in pts] or [0.0, 1.0]
        xlim = (min(xs_all), max(xs_all))
    if ylim is None:
        ys_all = [p[1] for p in pts] or [0.0, 1.0]
        ylim = (min(ys_all), max(ys_all))
    if xlim[1] - xlim[0] < 1e-12:
        xlim = (xlim[0] - 0.5, xlim[1] + 0.5)
    if ylim[1] - ylim[0] < 1e-12:
        pad = abs(ylim[0]) * 0.1 or 0.5
        ylim = (ylim[0] - pad, ylim[1] + pad)
    plot_w, plot_h = width - left - right, height - top - bottom

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - xlim[0]) / (xlim[1] - xlim[0]) * plot_w,
                top + (1 - (y - ylim[0]) / (ylim[1] - ylim[0])) * plot_h)

    draw.rectangle([left, top, left + plot_w, top + plot_h], outline=(0, 0, 0))
    for tx, label in xticks if xticks is not None else _ticks(*xlim):
        px, _ = to_px(tx, ylim[0])
        draw.line([px, top + plot_h, px, top + plot_h + 4], fill=(0, 0, 0))
        tw, _ = _text_size(draw, label, small)
        draw.text((px - tw / 2, top + plot_h + 6), label, fill=(0, 0, 0), font=small)
    for ty, label in _ticks(*ylim):
        _, py = to_px(xlim[0], ty)
        draw.line([left - 4, py, left, py], fill=(0, 0, 0))
        draw.line([left + 1, py, left + plot_w - 1, py], fill=(235, 235, 235))
        tw, th = _text_size(draw, label, small)
        draw.text((left - 6 - tw, py - th / 2 - 2), label, fill=(0, 0, 0), font=small)
    if title:
        tw, _ = _text_size(draw, title, fnt)
        draw.text(((width - tw) / 2, 8), title, fill=(0, 0, 0), font=fnt)
    if xlabel:
        tw, _ = _text_size(draw, xlabel, fnt)
        draw.text((left + (plot_w - tw) / 2, height - 20), xlabel, fill=(0, 0, 0), font=fnt)
    if ylabel:
        tw, th = _text_size(draw, ylabel, fnt)
        label = Image.new("RGB", (tw + 4, th + 6), "white")
        ImageDraw.Draw(label).text((2, 0), ylabel, fill=(0, 0, 0), font=fnt)
        img.paste(label.rotate(90, expand=True), (4, int(top + (plot_h - tw) / 2)))

    for k, (xs, ys) in enumerate(series.values()):
        colour = PALETTE[k % len(PALETTE)]
        points = [to_px(float(x), float(y)) for x, y in zip(xs, ys)
                  if math.isfinite(float(x)) and math.isfinite(float(y))]
        if step and len(points) > 1:
            stairs = [points[0]]
            for (x0, _), (x1, y1) in zip(points, points[1:]):
                stairs += [(x0, y1), (x1, y1)]
            draw.line(stairs, fill=colour, width=2)
        elif len(points) > 1:
            draw.line(points, fill=colour, width=2)
        if markers and not step:
            for px, py in points:
                draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
    if legend is not None:
        _legend(draw, list(series), legend, (left, top, plot_w, plot_h), small)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def _legend(draw: ImageDraw.ImageDraw, names: list[str], where: str, box: tuple[int, int, int, int], fnt) -> None:
    """A legend box inside the axes ``box`` (left, top, width, height) at corner ``where``."""
    if where not in ("upper right", "lower left", "lower right"):
        raise ValueError(f"legend must be 'upper right', 'lower left', 'lower right' or None, got {where!r}")
    left, top, plot_w, plot_h = box
    sizes = [_text_size(draw, n, fnt) for n in names]
    line_h = max(h for _, h in sizes) + 6
    width = max(w for w, _ in sizes) + 30
    x0 = left + 6 if where == "lower left" else left + plot_w - width - 6
    y0 = top + 6 if where == "upper right" else top + plot_h - line_h * len(names) - 6
    draw.rectangle([x0, y0, x0 + width, y0 + line_h * len(names) + 2], fill="white", outline=(200, 200, 200))
    for k, name in enumerate(names):
        y = y0 + 3 + k * line_h
        colour = PALETTE[k % len(PALETTE)]
        draw.line([x0 + 4, y + line_h / 2 - 2, x0 + 20, y + line_h / 2 - 2], fill=colour, width=3)
        draw.text((x0 + 24, y - 1), name, fill=(0, 0, 0), font=fnt)


def labelled_grid(
    images: torch.Tensor | np.ndarray,
    rows: int,
    cols: int,
    path: str | Path,
    *,
    col_labels: Sequence[str] = (),
    row_labels: Sequence[str] = (),
    scale: int = 1,
    padding: int = 2,
) -> Path:
    """Save ``rows x cols`` images (row-major; float ``[N, C, H, W]`` in [-1, 1] or uint8 ``[N, H, W, C]``)
    as one PNG with optional column titles and row labels; ``scale`` enlarges small images (nearest)."""
    arr = to_uint8(images) if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.shape[0] != rows * cols:
        raise ValueError(f"{arr.shape[0]} images do not fill a {rows} x {cols} grid")
    h, w = arr.shape[1] * scale, arr.shape[2] * scale
    fnt = font(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max((_text_size(probe, t, fnt)[0] for t in row_labels), default=0)
    label_w = label_w + 8 if row_labels else 0
    title_h = 18 if col_labels else 0
    canvas = Image.new("RGB", (label_w + cols * (w + padding) + padding, title_h + rows * (h + padding) + padding),
                       "white")
    draw = ImageDraw.Draw(canvas)
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        tile = Image.fromarray(arr[i])
        if scale != 1:
            tile = tile.resize((w, h), Image.NEAREST)
        canvas.paste(tile, (label_w + padding + c * (w + padding), title_h + padding + r * (h + padding)))
    for c, text in enumerate(col_labels[:cols]):
        tw, _ = _text_size(draw, text, fnt)
        x = label_w + padding + c * (w + padding) + (w - tw) / 2
        draw.text((max(x, label_w), 2), text, fill=(0, 0, 0), font=fnt)
    for r, text in enumerate(row_labels[:rows]):
        _, th = _text_size(draw, text, fnt)
        draw.text((2, title_h + padding + r * (h + padding) + (h - th) / 2 - 2), text, fill=(0, 0, 0), font=fnt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def tile_pngs(paths: Sequence[str | Path], out: str | Path, cols: int = 3) -> Path:
    """Tile PNG files (e.g. one plot per attribute) into one image, ``cols`` per row."""
    tiles = [Image.open(p).convert("RGB") for p in paths]
    if not tiles:
        raise ValueError("no images to tile")
    w, h = max(t.width for t in tiles), max(t.height for t in tiles)
    cols = min(cols, len(tiles))
    rows = -(-len(tiles) // cols)
    canvas = Image.new("RGB", (cols * w, rows * h), "white")
    for i, tile in enumerate(tiles):
        canvas.paste(tile, ((i % cols) * w, (i // cols) * h))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
