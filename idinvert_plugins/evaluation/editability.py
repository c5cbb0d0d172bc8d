"""Editability of inverted codes (issue 5 item 7; the paper's Table II and manipulation figures).

For each attribute direction, every test code is moved by ``step`` along the direction towards the other side
of the attribute (down if the attribute reads "on" in its reconstruction, up otherwise), rendered, and scored
by an attribute predictor (the domain's attribute classifier). Reported per attribute:

* ``change_per_unit``: the targeted attribute's change in the intended direction per unit step (classifier
  units: a probability for binary and one-class-of-categorical attributes, the attribute's own units for
  continuous ones) and ``change_per_unit_std``, the same divided by the attribute's spread over the real
  test images;
* ``success_rate``: the share of images whose targeted attribute moved in the intended direction;
  ``flip_rate``: the share whose attribute crossed its threshold;
* ``others``: the mean absolute change per unit step of every *other* attribute (in spreads of the real
  images): disentanglement, smaller is better; ``others_mean`` averages them.

These are read from the cross-talk measurement of :mod:`idinvert_plugins.editors.crosstalk`
(:func:`editability_rows`), the one ``idinvert bench`` ranks methods by (:mod:`.measures`).
:func:`measure_editability` measures and reads in one call, with a ``render`` and a ``score`` callable, so it is
tested with a stub whose scores are linear in the code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..editors.crosstalk import CrossTalk
from ..editors.directions import Direction

ScoreFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]
RenderFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AttributeTarget:
    """What a direction edits, as the classifier reads it: ``attribute`` (a classifier head), its ``kind``,
    for a categorical head the ``positive`` class index, and ``threshold``, where the attribute flips (0.5 for
    probabilities, the attribute's own threshold for continuous ones)."""

    name: str
    attribute: str
    kind: str
    positive: int | None = None
    positive_name: str | None = None
    threshold: float = 0.5

    def score(self, raw: Mapping[str, torch.Tensor], head: Mapping[str, Any]) -> torch.Tensor:
        """A scalar per image from the classifier's raw outputs (see the module docstring for the units)."""
        from ..models.classifier import denormalise

        y = raw[self.attribute].float()
        if self.kind == "binary":
            return torch.sigmoid(y)
        if self.kind == "categorical":
            return torch.softmax(y, dim=1)[:, self.positive]
        return denormalise(dict(head), y)

    def labels(self, attributes: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """Ground-truth 0/1 labels from the domain's attribute table (None if the table lacks the column):
        the positive class of a categorical attribute (stored as class indices, or names), a continuous value
        above ``threshold``, a binary value above 0.5."""
        if self.attribute not in attributes:
            return None
        values = np.asarray(attributes[self.attribute])
        if self.kind == "categorical":
            hit = values == (self.positive_name if values.dtype.kind in "US" else self.positive)
            return hit.astype(np.int64)
        return (values.astype(np.float64) > self.threshold).astype(np.int64)


def resolve_targets(directions: Mapping[str, Direction], heads: Sequence[Mapping[str, Any]],
                    domain: Any = None) -> tuple[dict[str, AttributeTarget], dict[str, str]]:
    """Match each direction to a classifier head. Returns the targets and, for directions that cannot be
    measured, the reason (unsupervised directions, attributes the classifier lacks, cyclic hues).

    A direction names its attribute in its metadata (``attribute``) or by its name. For a categorical head
    the positive class comes from ``extra["positive"]`` or the name's suffix (``hair_color-blond`` as
    ``idinvert directions learn`` names them, or ``hair_color_blond``, ``hair_color=blond``). Class names and
    thresholds come from ``domain``'s schema (a registered domain or its name; None: the domain whose schema
    holds the heads).
    """
    from ..domains import domain_of_heads, get_domain

    dom = get_domain(domain) if domain is not None else domain_of_heads(h["name"] for h in heads)
    specs = dom.attribute_specs if dom is not None else {}

    by_name = {h["name"]: h for h in heads}
    targets: dict[str, AttributeTarget] = {}
    skipped: dict[str, str] = {}
    for name, direction in directions.items():
        candidates = [a for a in (direction.attribute, name) if a]
        head = next((by_name[a] for a in candidates if a in by_name), None)
        suffix = None
        for head_name in sorted(by_name, key=len, reverse=True):  # "hair_color-blond": "hair_color", "blond"
            if head is not None and head_name != head["name"]:
                continue
            pattern = re.escape(head_name) + r"[_=:\-](.+)"
            match = next(filter(None, (re.fullmatch(pattern, a) for a in candidates)), None)
            if match:
                head, suffix = by_name[head_name], match.group(1)
                break
        if head is None:
            skipped[name] = "no classifier head for this direction (unsupervised or unknown attribute)"
            continue
        attr, kind = head["name"], head["kind"]
        spec = specs.get(attr)
        if kind == "categorical":
            positive_name = direction.extra.get("positive") or suffix
            classes = list(spec.values) if spec is not None else [str(i) for i in range(head["num_classes"])]
            if positive_name is None or str(positive_name) not in classes:
                skipped[name] = (f"categorical attribute {attr!r} without a known positive class "
                                 f"(name it like {attr}_{classes[0]}); classes: {', '.join(classes)}")
                continue
            targets[name] = AttributeTarget(name, attr, kind, classes.index(str(positive_name)), str(positive_name))
        elif kind == "continuous":
            if head.get("cyclic") or spec is None or spec.threshold is None:
                skipped[name] = f"{attr!r} has no threshold (cyclic or unlabelled), so no direction of change"
                continue
            targets[name] = AttributeTarget(name, attr, kind, threshold=float(spec.threshold))
        else:
            targets[name] = AttributeTarget(name, attr, kind)
    return targets, skipped


def classifier_scorer(classifier: nn.Module, targets: Mapping[str, AttributeTarget], batch: int = 128,
                      differentiable: bool = False) -> ScoreFn:
    """``images -> {target name: [N] scores}`` with the attribute classifier (images of another resolution are
    resized to the classifier's). ``differentiable``: the scores keep their graph back to the images (for
    optimising through the classifier, :mod:`~idinvert_plugins.editors.optimized_steering`)."""
    heads = {h["name"]: h for h in classifier.attributes}
    device = next(classifier.parameters()).device
    size = int(classifier.resolution)

    grad_mode = torch.enable_grad() if differentiable else torch.no_grad()  # (set_grad_enabled acts on creation)

    @grad_mode
    def score(images: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, list[torch.Tensor]] = {name: [] for name in targets}
        for i in range(0, len(images), batch):
            x = images[i : i + batch].to(device).float()
            if x.shape[-1] != size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            raw = classifier(x)
            for name, t in targets.items():
                out[name].append(t.score(raw, heads[t.attribute]).cpu())
        return {name: torch.cat(v) for name, v in out.items()}

    return score


#: Real test images over which the editability spreads are measured (at least).
SPREAD_IMAGES = 1000
#: The must-show threshold of issue 5: share of IDInvert-inverted images whose targeted attribute moves the
#: intended way at the documented step.
SUCCESS_TARGET = 0.9


def real_spreads(scores: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Each attribute's spread (standard deviation) over the real images ``scores`` were read from: the unit of
    ``change_per_unit_std`` and ``others``. A constant reading counts as spread 1 (no rescaling).

    Measure them over :data:`SPREAD_IMAGES` or more images: over a few, a rare class's probability barely
    varies and dividing by its spread blows the per-unit changes up."""
    out = {}
    for name, v in scores.items():
        std = float(v.double().std()) if len(v) > 1 else 0.0
        out[name] = std if std > 1e-6 else 1.0
    return out


def edit_codes(codes: torch.Tensor, direction: Direction, strengths: torch.Tensor) -> torch.Tensor:
    """``codes`` ``[N, L, D]`` moved by ``strengths`` ``[N]`` (one per code) along the direction's layers."""
    offsets = direction.offsets(codes.shape[1], codes.shape[2]).to(codes)
    return codes + strengths.to(codes).view(-1, 1, 1) * offsets


def editability_rows(crosstalk: CrossTalk) -> dict[str, dict[str, Any]]:
    """The per-attribute editability of the module docstring, read from a measured cross-talk
    (``statistic="absolute"``: the other attributes' changes are mean absolute changes): what ``idinvert evaluate``
    prints for the same edits that ``idinvert bench`` ranks."""
    ct = crosstalk
    if ct.extra.get("statistic") != "absolute":
        raise ValueError("editability rows need a cross-talk measured with statistic='absolute' (the other "
                         f"attributes' mean absolute change), got {ct.extra.get('statistic', 'signed')!r}")
    scales = ct.extra.get("scales") or {}
    rows: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(ct.rows):
        target = ct.target(name)
        others = {c: float(ct.matrix[i, j]) for j, c in enumerate(ct.columns) if c != name}
        rows[name] = {
            "step": float(ct.step),
            "change_per_unit": target * float(scales.get(name, 1.0)),
            "change_per_unit_std": target,
            "success_rate": float(ct.success[name]),
            "flip_rate": float(ct.flip.get(name, float("nan"))),
            "others": others,
            "others_mean": float(np.mean(list(others.values()))) if others else float("nan"),
            "n": int(ct.n),
        }
    return rows


def measure_editability(
    codes: torch.Tensor,
    directions: Mapping[str, Direction],
    render: RenderFn,
    score: ScoreFn,
    *,
    step: float,
    thresholds: Mapping[str, float],
    scales: Mapping[str, float] | None = None,
    keep_images: bool = False,
) -> tuple[dict[str, dict[str, Any]], dict[str, torch.Tensor]]:
    """Edit every code along every direction by ``step`` towards the attribute's other side and measure the
    changes (see the module docstring): :func:`~idinvert_plugins.editors.crosstalk.measure_crosstalk`, read by
    :func:`editability_rows`. ``score`` must return a score for every name in ``directions`` (other readings are
    ignored).

    Returns ``(rows, edited)``: per direction its measurements, and (with ``keep_images``) the rendered edits.
    """
    from ..editors.crosstalk import measure_crosstalk

    names = list(directions)
    rendered: list[torch.Tensor] = []

    def render_kept(c: torch.Tensor) -> torch.Tensor:
        images = render(c)
        if keep_images:
            rendered.append(images)
        return images

    def score_names(images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = score(images)
        return {n: out[n] for n in names if n in out}

    ct = measure_crosstalk(codes, directions, render_kept, score_names, thresholds=thresholds,
                           families={n: n for n in names}, step=step, scales=scales, statistic="absolute")
    edited = dict(zip(names, rendered[1:], strict=True)) if keep_images else {}
    return editability_rows(ct), edited


def interpolation_codes(codes: torch.Tensor, ts: Sequence[float] = (0.25, 0.5, 0.75)) -> torch.Tensor:
    """Codes between each test code and the next one (cyclically): ``[N * len(ts), L, D]``, code-major."""
    partner = codes.roll(-1, dims=0)
    t = torch.tensor(list(ts), dtype=codes.dtype).view(1, -1, 1, 1)
    return (codes.unsqueeze(1) + t * (partner - codes).unsqueeze(1)).reshape(-1, *codes.shape[1:])


def summarise(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Means over attributes: change per unit (spreads), success rate, others' change (spreads)."""
    if not rows:
        return {}
    return {k: float(np.mean([r[src] for r in rows.values()]))
            for k, src in (("change_per_unit_std", "change_per_unit_std"), ("success_rate", "success_rate"),
                           ("flip_rate", "flip_rate"), ("others_mean", "others_mean"))}
