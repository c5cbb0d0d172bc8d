"""Optimised steering: choose an edit vector that moves its attribute and keeps the others still.

The closed-form steerings (:mod:`~idinvert_plugins.editors.interfacegan`: the boundary normal, covariance
steering, class means, InterFaceGAN's conditional projection, compensation) only see *linear boundaries in W*.
On a generator whose attributes are entangled in W they still drag other attributes along on single faces (the
absolute cross-talk of :func:`~idinvert_plugins.editors.crosstalk.measure_crosstalk`), because what a
boundary in W calls "unchanged" is not what the classifier sees in the image. This module optimises the edit
vector against the measure itself: through the generator and the attribute classifier, on the generator's own
samples,

``loss = - mean_i t_i + weight * sum_j relu(mean_i |o_ij| - ratio * mean_i t_i) + hinge * mean_i relu(margin - t_i)``

where ``t_i`` is face i's change of the target attribute towards its other side (what an edit of ``step`` along
the vector does, in spreads) and ``o_ij`` the change of attribute j of another family. The vector stays unit
length (it is renormalised after every update), so ``step`` keeps its meaning; it starts from a given vector (the
best closed-form steering) and is one vector for all faces, like every other direction: a global, low-capacity
change of the code, not a per-image adversarial perturbation. Whether it generalises is measured on other
samples and on inverted held-out test faces (``benchmarks/crosstalk.py`` screens it beside the closed forms).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from .directions import Direction

#: The ratio the optimisation aims below (the clean criterion allows 0.5: the margin absorbs the classifier's
#: jitter and the gap between the samples it is fitted on and those it is measured on).
TARGET_RATIO = 0.3


@dataclass
class SteeringOptions:
    """Hyperparameters of :func:`optimize_steering` (one home; ``benchmarks/crosstalk.py`` passes them)."""

    step: float = 3.0
    iterations: int = 150
    batch: int = 24
    lr: float = 0.02
    weight: float = 4.0
    ratio: float = TARGET_RATIO
    hinge: float = 1.0
    margin: float = 0.05
    realism: float = 1.0
    seed: int = 0


@torch.enable_grad()
def optimize_steering(
    direction: Direction,
    codes: torch.Tensor,
    render: Callable[[torch.Tensor], torch.Tensor],
    score: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    *,
    thresholds: Mapping[str, float],
    families: Mapping[str, str],
    scales: Mapping[str, float] | None = None,
    options: SteeringOptions | None = None,
    realism: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> Direction:
    """A copy of ``direction`` whose edit vector is optimised as the module docstring says.

    ``codes``: W+ codes ``[N, L, D]`` of the generator's samples to fit on (a batch is drawn from them per
    iteration); ``render(codes)`` must be differentiable in the codes and ``score(images)`` in the images
    (``{attribute: [N] readings}``, the columns of the cross-talk measure, including ``direction.name``);
    ``thresholds`` says which side of the direction's attribute a face is on (it is edited towards the other);
    ``families`` maps every column to its family (same-family columns are not penalised: a hair colour edit
    must lower the other hair colours); ``scales`` is every column's spread. ``realism(images)`` (e.g. the
    generator's discriminator) scores each image's realism, higher = more real: with it, the loss also pays
    ``options.realism * mean_i relu(realism(original_i) - realism(edited_i))``, so the vector cannot buy a clean
    classifier reading with images the generator does not make. The returned direction keeps the
    boundary (for scoring codes), the layers and the extras, with ``source`` ending in ``-optimized``.
    """
    opts = options or SteeringOptions()
    name = direction.name
    codes = torch.as_tensor(codes).detach()
    if codes.ndim != 3 or len(codes) < 2:
        raise ValueError(f"codes must be W+ codes [N, L, D] with N >= 2, got {list(codes.shape)}")
    with torch.no_grad():
        images = render(codes)
        base = {k: v.detach().double() for k, v in score(images).items()}
        real0 = realism(images).detach().double().reshape(-1) if realism is not None else None
        del images
    if name not in base:
        raise ValueError(f"the scorer reads no attribute named {name!r} (it reads {', '.join(base)})")
    spread = {c: float(scales[c]) if scales and scales.get(c) else 1.0 for c in base}
    others = [c for c in base if families[c] != families[name]]
    sign = torch.where(base[name] > float(thresholds[name]), -1.0, 1.0).double()
    vector = direction.vector.detach().clone().double().requires_grad_(True)
    optimiser = torch.optim.Adam([vector], lr=opts.lr)
    generator = torch.Generator().manual_seed(opts.seed)
    L, D = codes.shape[1:]
    mask = direction.offsets(L, D).ne(0).any(-1, keepdim=True).double()  # the layers the direction edits
    for it in range(opts.iterations):
        idx = torch.randperm(len(codes), generator=generator)[: opts.batch]
        unit = vector / vector.norm(dim=-1, keepdim=True)
        rows = unit if unit.ndim == 2 else unit.expand(L, -1)
        offsets = rows * mask
        s = sign[idx]
        edited = codes[idx].double() + (s * opts.step).view(-1, 1, 1) * offsets
        images = render(edited.to(codes.dtype))
        after = score(images)
        t = s * (after[name].double() - base[name][idx]) / spread[name]
        target = t.mean()
        drag = torch.stack([((after[c].double() - base[c][idx]).abs() / spread[c]).mean() for c in others]) \
            if others else torch.zeros(1, dtype=torch.float64)
        loss = (-target + opts.weight * torch.relu(drag - opts.ratio * target).sum()
                + opts.hinge * torch.relu(opts.margin - t).mean())
        if real0 is not None:
            lost = torch.relu(real0[idx] - realism(images).double().reshape(-1)).mean()
            loss = loss + opts.realism * lost
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            vector /= vector.norm(dim=-1, keepdim=True)
        if progress is not None:
            own = float(target.detach())
            progress(it, {"loss": float(loss.detach()), "target": own,
                          "worst": float(drag.detach().max()) / max(own, 1e-8),
                          "success": float((t.detach() > 0).double().mean()),
                          **({"realism_lost": float(lost.detach())} if real0 is not None else {})})
    base_source = direction.source.split("-covariance")[0].split("-class-means")[0].split("-conditional")[0] \
        .split("-compensated")[0].split("-optimized")[0]
    return Direction(vector.detach().float(), name=name, attribute=direction.attribute, layers=direction.layers,
                     accuracy=direction.accuracy, source=f"{base_source}-optimized", extra=dict(direction.extra),
                     normal=direction.boundary)


__all__ = ["TARGET_RATIO", "SteeringOptions", "optimize_steering"]
