"""The outputs of ``idinvert bench``: the markdown leaderboard (one table per generator, methods as rows) and the
Pareto plot of fidelity against editability, drawn with Pillow.

Everything above :data:`NOTES_MARKER` is regenerated on every run; what follows it (hand-written notes) is kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from ..metrics.registry import main_value
from .plots import PALETTE, _text_size, _ticks, font

NOTES_MARKER = "<!-- notes: everything below this line is kept when the leaderboard is regenerated -->"
#: The columns shown first, in this order (any other measured metric follows, third-party ones included).
COLUMN_ORDER = ("mse", "psnr", "ssim", "perceptual", "fd", "swd", "attributes", "edit_success", "crosstalk",
                "fd_edited", "fd_interpolated", "seconds_per_image", "time_to_quality")


def _fmt(value: Any, fmt: str = "{:.4g}") -> str:
    v = main_value(value)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "never" if v > 0 else "-inf"
    return fmt.format(v)


def _columns(gen: Mapping[str, Any]) -> list[str]:
    meta = gen.get("metrics", {})
    measured = {name for r in gen["rows"].values() for name in r["metrics"]
                if meta.get(name, {}).get("table", True)}
    known = [c for c in COLUMN_ORDER if c in measured]
    return known + sorted(measured - set(known))


def _label(gen: Mapping[str, Any], name: str) -> str:
    meta = gen.get("metrics", {}).get(name, {})
    label = meta.get("label") or name
    arrow = {True: " ↑", False: " ↓"}.get(meta.get("higher_is_better"), "")
    return label + arrow


def generator_section(gen: Mapping[str, Any], base: Path) -> str:
    """One generator's table, what was left out, the frontier and the plot."""
    cols = _columns(gen)
    lines = [f"## {gen['name']}", "",
             f"{gen['architecture']}, {gen['resolution']} px, domain `{gen['domain']}`; {gen['n']} held-out images; "
             f"measured {gen.get('date', '?')} on {_machine(gen.get('machine', {}))}.", "",
             f"Command: `{gen.get('command') or '(from Python)'}`", ""]
    fmts = {name: gen.get("metrics", {}).get(name, {}) for name in cols}
    header = ["method", "from", *(_label(gen, c) for c in cols)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    front = set(gen.get("pareto", []))
    for key, row in gen["rows"].items():
        plugin = row["plugin"].removeprefix("idinvert_plugins.builtins.")
        origin = f"third-party ({plugin})" if row.get("third_party") else "built-in"
        opts = ", ".join(f"{k}={v}" for k, v in row.get("options", {}).items())
        name = f"**{key}**" if key in front else key
        name += f" ({opts})" if opts else ""
        cells = [_fmt(row["metrics"].get(c), _fmt_of(fmts[c])) for c in cols]
        lines.append("| " + " | ".join([name, origin, *cells]) + " |")
    lines += ["", f"Bold: on the Pareto front of {' and '.join(_label(gen, a) for a in ('mse', 'fd_edited'))}. "
              f"Time to IDInvert MSE: seconds per image until the mean reconstruction MSE reaches "
              f"{_fmt(gen.get('mse_target'), '{:.5f}')} (IDInvert's after its steps), from each method's per-step "
              "curve; 'never' if it does not within its steps. Directions edited: "
              f"{', '.join(gen.get('directions', [])) or 'none'} (step {gen['config']['edit_step']:g})."]
    skipped = gen.get("skipped", {})
    if skipped:
        lines += ["", "Not benchmarked: " + "; ".join(f"`{k}` ({v})" for k, v in skipped.items()) + "."]
    not_measured = sorted({f"{m} ({why})" for r in gen["rows"].values()
                           for m, why in r.get("not_measured", {}).items()})
    if not_measured:
        lines += ["", "Not measured: " + "; ".join(not_measured) + "."]
    baselines = " and ".join(gen.get("baselines", ["idinvert", "image2stylegan"]))
    dom = gen.get("dominating", [])
    lines += ["", f"Pareto front (MSE, FD of the edited images): {', '.join(gen.get('pareto', [])) or 'n/a'}. "
              + (f"Dominating both {baselines}: {', '.join(dom)}." if dom else
                 f"No method dominates both {baselines} on these two.")]
    if gen.get("pareto_plot"):
        lines += ["", f"![fidelity against editability, {gen['name']}]({gen['pareto_plot']})"]
    return "\n".join(lines)


def _fmt_of(meta: Mapping[str, Any]) -> str:
    fmt = meta.get("fmt") or "{:.4g}"
    try:
        fmt.format(1.0)
    except (ValueError, IndexError, KeyError):  # a plugin's format that does not take one number
        return "{:.4g}"
    return fmt


def _machine(m: Mapping[str, Any]) -> str:
    if not m:
        return "?"
    text = f"{m.get('processor') or '?'} ({m.get('cpu_count')} cores, torch {m.get('torch')}, {m.get('threads')} " \
           f"thread(s), {m.get('device')})"
    return text + (f", {m['gpu']}" if m.get("gpu") else "")


def render_leaderboard(results: Mapping[str, Any], base: Path, json_path: str | None = None) -> str:
    parts = ["# Leaderboard: every inversion method, one harness", "",
             "Generated by `idinvert bench` (`idinvert_plugins/evaluation/bench.py`): every registered inversion "
             "method, built-in or third-party, inverts the same held-out images of each generator and is measured by "
             "every registered metric (`idinvert plugins` lists both). FD is a Fréchet distance in the domain "
             "classifier's features, not FID. ↓ lower is better, ↑ higher is better. The inversions are cached per "
             "method (`--cache`) in the one cache that `idinvert evaluate` also inverts and measures through "
             "(`evaluation/measures.py`): its paper tables are views of the same inversions and metric values on "
             "the same images, and this table reuses its. Metrics marked JSON-only (the SWDs of the edited and "
             "interpolated images) are in the JSON file."
             + (f" Every number: [{json_path}]({json_path})." if json_path else ""), ""]
    for gen in results["generators"].values():
        parts += [generator_section(gen, base), ""]
    return "\n".join(parts)


def write_leaderboard(results: Mapping[str, Any], path: str | Path, json_path: str | None = None) -> Path:
    """Write the markdown leaderboard to ``path``, keeping the text after :data:`NOTES_MARKER`."""
    path = Path(path)
    tail = "## Notes\n\n_None yet._\n"
    if path.is_file():
        old = path.read_text(encoding="utf-8")
        if NOTES_MARKER in old:
            tail = old.split(NOTES_MARKER, 1)[1].lstrip("\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{render_leaderboard(results, path.parent, json_path)}\n{NOTES_MARKER}\n\n{tail}",
                    encoding="utf-8")
    return path


# -- the Pareto plot ------------------------------------------------------------------------------------------------
def pareto_plot(gen: Mapping[str, Any], path: str | Path, x: str = "mse", y: str = "fd_edited",
                size: tuple[int, int] = (640, 460)) -> Path:
    """Every method as a labelled point of ``x`` against ``y`` (both lower is better), the Pareto front joined.
    Methods without both values are listed under the plot instead."""
    rows = gen["rows"]
    pts = {k: (main_value(r["metrics"].get(x)), main_value(r["metrics"].get(y))) for k, r in rows.items()}
    missing = [k for k, p in pts.items() if not all(math.isfinite(v) for v in p)]
    pts = {k: p for k, p in pts.items() if k not in missing}
    w, h = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    f, small = font(13), font(11)
    left, right, top, bottom = 70, 20, 34, 56 + (16 if missing else 0)
    draw.text((left, 8), f"{gen['name']}: fidelity vs editability (n={gen['n']}; lower-left is better)",
              fill="black", font=f)
    box = (left, top, w - right, h - bottom)
    draw.rectangle(box, outline=(120, 120, 120))
    if pts:
        xs, ys = [p[0] for p in pts.values()], [p[1] for p in pts.values()]
        x0, x1 = _pad(min(xs), max(xs))
        y0, y1 = _pad(min(ys), max(ys))

        def to_px(a: float, b: float) -> tuple[float, float]:
            return (box[0] + (a - x0) / (x1 - x0) * (box[2] - box[0]),
                    box[3] - (b - y0) / (y1 - y0) * (box[3] - box[1]))

        for v, label in _ticks(x0, x1):
            px = to_px(v, y0)[0]
            draw.line([(px, box[3]), (px, box[3] + 4)], fill="black")
            tw, _ = _text_size(draw, label, small)
            draw.text((px - tw / 2, box[3] + 6), label, fill="black", font=small)
        for v, label in _ticks(y0, y1):
            py = to_px(x0, v)[1]
            draw.line([(box[0] - 4, py), (box[0], py)], fill="black")
            tw, th = _text_size(draw, label, small)
            draw.text((box[0] - 6 - tw, py - th / 2 - 1), label, fill="black", font=small)
        front = [k for k in gen.get("pareto", []) if k in pts]
        if len(front) > 1:
            draw.line([to_px(*pts[k]) for k in front], fill=(150, 150, 150), width=2)
        pixels = {k: to_px(a, b) for k, (a, b) in pts.items()}
        placed = [(px - 6, py - 6, px + 6, py + 6) for px, py in pixels.values()]  # labels keep off every point
        for i, k in enumerate(sorted(pts)):
            px, py = pixels[k]
            colour = PALETTE[i % len(PALETTE)]
            r = 5 if k in front else 4
            draw.ellipse([px - r, py - r, px + r, py + r], fill=colour if k in front else "white", outline=colour,
                         width=2)
            tw, th = _text_size(draw, k, small)
            lx, ly = _label_position(px, py, tw, th, placed, box)
            placed.append((lx, ly, lx + tw, ly + th))
            draw.text((lx, ly), k, fill=colour, font=small)
    else:
        draw.text((box[0] + 10, box[1] + 10), f"no method has both {x} and {y}", fill="black", font=f)
    xl = f"{x} (reconstruction error)"
    tw, _ = _text_size(draw, xl, f)
    draw.text(((box[0] + box[2]) / 2 - tw / 2, box[3] + 22), xl, fill="black", font=f)
    yl = Image.new("RGB", (box[3] - box[1], 18), "white")
    ImageDraw.Draw(yl).text((2, 2), f"{y} (FD of the edited images)", fill="black", font=f)
    img.paste(yl.rotate(90, expand=True), (4, box[1]))
    if missing:
        draw.text((left, h - 18), "not plotted (no value): " + ", ".join(missing), fill=(90, 90, 90), font=small)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def _label_position(px: float, py: float, tw: float, th: float, taken: list[tuple[float, float, float, float]],
                    box: tuple[float, float, float, float]) -> tuple[float, float]:
    """Where a ``tw`` x ``th`` label of the point ``(px, py)`` goes: the first of right, left, above, below (then the
    same further out) that stays in ``box`` and overlaps no earlier label or point; else the least overlapping."""
    def overlap(x: float, y: float) -> float:
        area = sum(max(0.0, min(x + tw, q[2]) - max(x, q[0])) * max(0.0, min(y + th, q[3]) - max(y, q[1]))
                   for q in taken)
        outside = x < box[0] + 1 or x + tw > box[2] - 1 or y < box[1] + 1 or y + th > box[3] - 1
        return area + (1e6 if outside else 0.0)

    candidates = []
    for reach in (0, 1, 2, 3):
        dy = reach * (th + 2)
        candidates += [(px + 7, py - th / 2 - 1 + dy), (px - 7 - tw, py - th / 2 - 1 + dy),
                       (px - tw / 2, py - 8 - th - dy), (px - tw / 2, py + 8 + dy),
                       (px + 7, py - th / 2 - 1 - dy), (px - 7 - tw, py - th / 2 - 1 - dy)]
    scored = [(overlap(x, y), n, (x, y)) for n, (x, y) in enumerate(candidates)]
    return min(scored)[2]


def _pad(lo: float, hi: float) -> tuple[float, float]:
    span = hi - lo if hi > lo else max(abs(hi), 1e-6)
    return lo - 0.08 * span, hi + 0.12 * span


__all__ = ["COLUMN_ORDER", "NOTES_MARKER", "pareto_plot", "render_leaderboard", "write_leaderboard"]
