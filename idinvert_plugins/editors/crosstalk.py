"""Cross-talk of editing directions: when you edit one attribute, what else moves?

The editability figures count how often the *targeted* attribute moves the intended way. An edit vector can
pass that and still drag other attributes along (a smile edit that turns the hair black), because the
generator correlates attributes in W that the renderer draws independently. This module measures it.

:func:`measure_crosstalk` moves every code by ``step`` along every direction towards the other side of the
direction's own attribute (down if the attribute reads "on", up otherwise; as
:func:`~idinvert_plugins.evaluation.editability.measure_editability` does), renders, reads every attribute with
the classifier and records, per direction (row) and attribute (column), the mean change **per unit step along
the direction's positive sense** (each face's change times the sign it was moved by) in units of the attribute's
spread. Signed means average the classifier's per-image jitter away; a systematic drag survives. From the
matrix, per direction:

* ``success``: share of faces whose target moved the intended way;
* ``target``: the target's own change per unit step (spreads; positive when it moves the intended way);
* ``worst``: the largest ``|change|`` of an attribute of *another family* (another classifier head:
  ``hair_color-black`` is in the family of ``hair_color-blond``, whose edit must lower it), divided by
  ``target``; ``worst_attribute`` names it (``inf`` when the target does not move the intended way);
* ``clean``: ``success >= 0.9`` and ``worst <= 0.5`` (no other attribute moves more than half as much as the
  target), :data:`CLEAN_SUCCESS` and :data:`CLEAN_RATIO`.

:func:`write_heatmap` draws one or more matrices side by side (each entry divided by the row's target change:
the diagonal is 1, red moves up, blue down, same-family cells framed, each row labelled clean or weak).
``benchmarks/crosstalk.py`` measures the bundled generators on their own samples and on inverted held-out test
faces and chooses each shipped direction's edit vector by this measure (``docs/directions.md``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .directions import Direction

#: A direction is clean when its target moves the intended way for at least this share of the faces ...
CLEAN_SUCCESS = 0.9
#: ... and no attribute of another family moves by more than this fraction of the target's own change.
CLEAN_RATIO = 0.5
#: The documented edit step (unit directions in W, ``--edit NAME=3``) at which cross-talk is measured.
DEFAULT_STEP = 3.0

RenderFn = Callable[[torch.Tensor], torch.Tensor]
ScoreFn = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]


@dataclass
class CrossTalk:
    """The measured cross-talk of a set of directions (see the module docstring for the definitions).

    ``matrix[i, j]``: mean change of attribute ``columns[j]`` per unit step along direction ``rows[i]``, in
    spreads of ``columns[j]``. ``families`` maps every row and column name to its family; ``success`` every
    row to its success rate; ``flip`` every row to the share of faces whose own attribute crossed its threshold
    (empty for matrices saved before it was recorded); ``samples`` says which faces were edited
    (``"generator"``, ``"test_faces"``); ``extra["scales"]`` the spreads the columns were divided by.
    """

    rows: list[str]
    columns: list[str]
    families: dict[str, str]
    matrix: np.ndarray
    success: dict[str, float]
    step: float
    n: int
    samples: str = "generator"
    extra: dict[str, Any] = field(default_factory=dict)
    flip: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.matrix = np.asarray(self.matrix, dtype=np.float64)
        if self.matrix.shape != (len(self.rows), len(self.columns)):
            raise ValueError(f"matrix is {list(self.matrix.shape)} for {len(self.rows)} rows and "
                             f"{len(self.columns)} columns")
        missing = [r for r in self.rows if r not in self.columns]
        if missing:
            raise ValueError(f"directions {missing} have no column of their own attribute: every row must be "
                             "one of the measured attributes")

    def target(self, name: str) -> float:
        """The direction's own attribute's change per unit step (spreads; > 0: the intended way)."""
        return float(self.matrix[self.rows.index(name), self.columns.index(name)])

    def worst(self, name: str) -> tuple[float, str | None]:
        """``(ratio, attribute)``: the other-family attribute that moves most, relative to the target's change
        (``inf`` when the target does not move the intended way on average; ``(0, None)`` without others)."""
        i, fam = self.rows.index(name), self.families[name]
        others = [j for j, c in enumerate(self.columns) if self.families[c] != fam]
        if not others:
            return 0.0, None
        j = max(others, key=lambda k: abs(self.matrix[i, k]))
        own = self.target(name)
        if own <= 0:
            return math.inf, self.columns[j]
        return float(abs(self.matrix[i, j]) / own), self.columns[j]

    def clean(self, name: str) -> bool:
        """Target moves the intended way for >= :data:`CLEAN_SUCCESS` of the faces and no other-family attribute
        moves by more than :data:`CLEAN_RATIO` of the target's change."""
        return self.success[name] >= CLEAN_SUCCESS and self.worst(name)[0] <= CLEAN_RATIO

    def entry(self, name: str) -> dict[str, Any]:
        """The JSON record of one direction (what ``summary.json`` stores under ``crosstalk``); an infinite
        ``worst`` is written as None."""
        worst, attribute = self.worst(name)
        return {"clean": self.clean(name), "success": round(self.success[name], 4),
                "worst": None if math.isinf(worst) else round(worst, 4), "worst_attribute": attribute,
                "target_change": round(self.target(name), 4), "step": self.step, "samples": self.samples,
                "n": self.n, "statistic": self.extra.get("statistic", "signed")}

    def clean_count(self) -> int:
        """How many rows are clean."""
        return sum(self.clean(r) for r in self.rows)

    def median_worst(self) -> float:
        """The median of the rows' worst cross-talk (``inf`` counts as larger than any)."""
        return float(np.median([self.worst(r)[0] for r in self.rows])) if self.rows else float("nan")

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-serialisable (:meth:`from_json` reads it back)."""
        return {"rows": self.rows, "columns": self.columns, "families": self.families,
                "matrix": [[round(float(v), 5) for v in r] for r in self.matrix], "success": self.success,
                "step": self.step, "n": self.n, "samples": self.samples, "extra": self.extra, "flip": self.flip}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CrossTalk:
        return cls(list(data["rows"]), list(data["columns"]), dict(data["families"]), np.array(data["matrix"]),
                   dict(data["success"]), float(data["step"]), int(data["n"]), data.get("samples", "generator"),
                   dict(data.get("extra") or {}), dict(data.get("flip") or {}))

    def table(self) -> str:
        """A markdown table: direction, success, target change, worst cross-talk and attribute, clean."""
        lines = ["| direction | success | target change / unit | worst cross-talk | moved most | clean |",
                 "|---|---|---|---|---|---|"]
        for r in self.rows:
            worst, attr = self.worst(r)
            lines.append(f"| {r} | {self.success[r]:.0%} | {self.target(r):.3f} | {worst:.2f} | {attr or ''} | "
                         f"{'clean' if self.clean(r) else 'weak'} |")
        return "\n".join(lines)


@torch.no_grad()
def measure_crosstalk(
    codes: torch.Tensor,
    directions: Mapping[str, Direction],
    render: RenderFn,
    score: ScoreFn,
    *,
    thresholds: Mapping[str, float],
    families: Mapping[str, str],
    step: float = DEFAULT_STEP,
    scales: Mapping[str, float] | None = None,
    samples: str = "generator",
    progress: Callable[[str], None] | None = None,
    statistic: str = "signed",
) -> CrossTalk:
    """Edit every code ``[N, L, D]`` along every direction by ``step`` towards the other side of the direction's
    own attribute and measure every attribute's change (see the module docstring).

    ``score(images)`` returns ``{attribute: [N] readings}``; its names are the columns and must include every
    direction's name. ``thresholds[name]``: where a direction's attribute flips (which side a face is on);
    ``families``: the family of every column; ``scales``: each column's spread (default 1).

    ``statistic="absolute"`` records, for every attribute but the direction's own, the mean *absolute* change
    instead of the signed mean: what a user sees on single faces, where an attribute that moves up on some faces
    and down on others averages out of the signed mean. The target column stays signed (the intended change).
    """
    if statistic not in ("signed", "absolute"):
        raise ValueError(f"statistic must be 'signed' or 'absolute', got {statistic!r}")
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    codes = torch.as_tensor(codes)
    if codes.ndim != 3 or len(codes) == 0:
        raise ValueError(f"codes must be W+ codes [N, L, D] with N >= 1, got {list(codes.shape)}")
    base = {k: v.double() for k, v in score(render(codes)).items()}
    columns = list(base)
    missing = [n for n in directions if n not in base]
    if missing:
        raise ValueError(f"the scorer reads no attribute named {missing}: each direction needs its own "
                         f"column (it reads {', '.join(columns)})")
    no_family = [c for c in columns if c not in families]
    if no_family:
        raise ValueError(f"no family given for {no_family}")
    spread = {c: float(scales[c]) if scales and scales.get(c) else 1.0 for c in columns}
    rows = list(directions)
    matrix = np.zeros((len(rows), len(columns)))
    success, flip = {}, {}
    for i, name in enumerate(rows):
        threshold = float(thresholds[name])
        sign = torch.where(base[name] > threshold, -1.0, 1.0).double()
        offsets = directions[name].offsets(codes.shape[1], codes.shape[2]).to(codes)
        edited = codes + (sign * step).to(codes).view(-1, 1, 1) * offsets
        after = score(render(edited))
        for j, c in enumerate(columns):
            change = sign * (after[c].double() - base[c])
            if statistic == "absolute" and c != name:
                change = change.abs()
            matrix[i, j] = float(change.mean()) / step / spread[c]
        success[name] = float(((after[name].double() - base[name]) * sign > 0).double().mean())
        flip[name] = float(((base[name] > threshold) != (after[name].double() > threshold)).double().mean())
        if progress is not None:
            progress(name)
    fams = {c: str(families[c]) for c in columns}
    return CrossTalk(rows, columns, fams, matrix, success, float(step), int(len(codes)), samples,
                     extra={"statistic": statistic, "scales": spread}, flip=flip)


# -- heatmap ------------------------------------------------------------------------------------------------
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _colour(v: float) -> tuple[int, int, int]:
    """Diverging: blue (-1) - white (0) - red (+1), clipped."""
    v = max(-1.0, min(1.0, v))
    t = abs(v)
    if v >= 0:
        return 255, int(255 * (1 - 0.8 * t)), int(255 * (1 - 0.85 * t))
    return int(255 * (1 - 0.85 * t)), int(255 * (1 - 0.6 * t)), 255


def heatmap_image(crosstalk: CrossTalk, title: str = "", cell: int = 26):
    """One matrix as a PIL image: each entry divided by the row's target change (diagonal 1; clipped to
    [-1, 1]), the value printed in each cell, same-family cells framed in grey, rows labelled with success,
    worst cross-talk and clean/weak. Rows whose target does not move the intended way are scaled by 1."""
    from PIL import Image, ImageDraw

    ct = crosstalk
    font, small = _font(12), _font(9)
    left, top = 330, 175
    width = left + cell * len(ct.columns) + 10
    height = top + cell * len(ct.rows) + 40
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((8, 6), title, fill="black", font=_font(14))
    draw.text((8, 26), f"{ct.samples}: n={ct.n}, step {ct.step:g}; change relative to the target's own; "
                       f"clean: {ct.clean_count()} of {len(ct.rows)}", fill="black", font=font)
    for j, c in enumerate(ct.columns):  # column labels, rotated
        label = Image.new("RGB", (top - 52, cell), "white")
        ImageDraw.Draw(label).text((2, 6), c, fill="black", font=font)
        img.paste(label.rotate(90, expand=True), (left + j * cell, 48))
    for i, r in enumerate(ct.rows):
        own = ct.target(r)
        scale = own if own > 0 else 1.0
        worst, _ = ct.worst(r)
        tag = "clean" if ct.clean(r) else "weak"
        y = top + i * cell
        draw.text((8, y + 6), f"{r}", fill="black", font=font)
        draw.text((150, y + 6), f"{ct.success[r]:>4.0%}  worst {worst:4.2f}  {tag}",
                  fill=(0, 110, 0) if tag == "clean" else (170, 0, 0), font=font)
        for j, c in enumerate(ct.columns):
            v = ct.matrix[i, j] / scale
            x = left + j * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=_colour(v),
                           outline=(150, 150, 150) if ct.families[c] == ct.families[r] else (235, 235, 235))
            draw.text((x + 2, y + 8), f"{v:+.1f}"[:4] if abs(v) < 9.95 else ">9", fill="black", font=small)
    return img


def write_heatmap(panels: Sequence[tuple[str, CrossTalk]], path: str | Path) -> Path:
    """Draw ``(title, crosstalk)`` panels side by side (e.g. before | after) into the PNG ``path``."""
    from PIL import Image

    if not panels:
        raise ValueError("nothing to draw: pass at least one (title, CrossTalk) panel")
    images = [heatmap_image(ct, title) for title, ct in panels]
    out = Image.new("RGB", (sum(i.width for i in images) + 20 * (len(images) - 1), max(i.height for i in images)),
                    "white")
    x = 0
    for im in images:
        out.paste(im, (x, 0))
        x += im.width + 20
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)
    return path


def save_crosstalk(results: Mapping[str, CrossTalk], path: str | Path) -> Path:
    """Write ``{label: CrossTalk}`` as JSON (``benchmarks/crosstalk.py`` keeps its matrices so)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: v.to_json() for k, v in results.items()}, indent=1) + "\n", encoding="utf-8")
    return path


__all__ = ["CLEAN_RATIO", "CLEAN_SUCCESS", "DEFAULT_STEP", "CrossTalk", "heatmap_image", "measure_crosstalk",
           "save_crosstalk", "write_heatmap"]
