"""Optimise a generator's attribute directions so that each moves its attribute and keeps the others still.

The job behind ``idinvert directions optimize`` and ``benchmarks/crosstalk.py``: match every direction to the
classifier's heads, sample the generator, and run
:func:`~idinvert_plugins.editors.optimized_steering.optimize_steering` per direction through the generator, the
(differentiable) classifier and, when there is one, the generator's discriminator as the realism term.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..editors.directions import Direction
from ..editors.interfacegan import sample_w
from ..editors.optimized_steering import SteeringOptions, optimize_steering
from .editability import classifier_scorer, resolve_targets


def _frozen(module: nn.Module | None) -> nn.Module | None:
    if module is not None:
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
    return module


def optimize_directions(
    G: nn.Module,
    classifier: nn.Module,
    directions: Mapping[str, Direction],
    *,
    names: Sequence[str] | None = None,
    discriminator: nn.Module | None = None,
    codes: torch.Tensor | None = None,
    n: int = 1024,
    seed: int = 0,
    scales: Mapping[str, float] | None = None,
    options: SteeringOptions | None = None,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] | None = print,
) -> tuple[dict[str, Direction], dict[str, str]]:
    """Optimised copies of ``directions`` (``names``: only these; default every direction the classifier can
    read). Returns ``(optimised, skipped)``: ``skipped`` maps each direction left out to the reason (no
    classifier head for it: unsupervised components, cyclic hues).

    ``codes``: W+ codes of G's samples to fit on (default: ``n`` samples drawn with ``seed``); ``scales``: each
    attribute's spread (default: the standard deviation of the classifier's readings over those samples), the
    unit in which changes are compared; ``discriminator``: the realism term (None: none); ``cache_dir``: each
    optimised direction is saved there as it finishes and reused by a rerun (a long run resumes).
    """
    targets, skipped = resolve_targets(directions, classifier.attributes)
    wanted = list(names) if names is not None else list(targets)
    unknown = [k for k in wanted if k not in directions]
    if unknown:
        raise ValueError(f"no direction named {unknown}; the model has {', '.join(sorted(directions))}")
    unreadable = [k for k in wanted if k not in targets]
    if names is not None and unreadable:
        raise ValueError(f"the classifier reads no attribute for {unreadable} ({skipped.get(unreadable[0], '')}): "
                         "optimised steering needs a classifier head per direction")
    wanted = [k for k in wanted if k in targets]
    if not wanted:
        raise ValueError("none of the directions matches a classifier head: nothing to optimise")
    _frozen(G)
    _frozen(classifier)
    _frozen(discriminator)
    score = classifier_scorer(classifier, targets)
    grad_score = classifier_scorer(classifier, targets, differentiable=True)
    if codes is None:
        codes = G.to_wplus(sample_w(G, n, seed=seed, progress=False)[0])
    if scales is None:
        with torch.no_grad():
            readings = score(G.synthesis(codes, noise_mode="const").clamp(-1, 1))
        scales = {k: float(v.double().std()) or 1.0 for k, v in readings.items()}
    families = {k: t.attribute for k, t in targets.items()}
    thresholds = {k: t.threshold for k, t in targets.items()}
    opts = options or SteeringOptions(seed=seed)

    def render(c: torch.Tensor) -> torch.Tensor:
        return G.synthesis(c, noise_mode="const").clamp(-1, 1)

    realism = (lambda x: discriminator(x).reshape(-1)) if discriminator is not None else None
    out: dict[str, Direction] = {}
    for i, name in enumerate(wanted):
        cached = Path(cache_dir) / f"{name}.safetensors" if cache_dir else None
        if cached is not None and cached.is_file():
            out[name] = Direction.load(cached)
            continue
        t0 = time.perf_counter()

        def progress(it: int, m: dict[str, float], name: str = name) -> None:
            if log is not None and (it + 1) % 10 == 0:
                log(f"  {name} {it + 1}/{opts.iterations}: target {m['target']:.3f}, worst {m['worst']:.2f}, "
                    f"success {m['success']:.0%}")

        out[name] = optimize_steering(directions[name], codes, render, grad_score, thresholds=thresholds,
                                      families=families, scales=scales, options=opts, realism=realism,
                                      progress=progress)
        out[name].extra["optimized_from"] = directions[name].source
        if log is not None:
            log(f"optimised {name} ({i + 1}/{len(wanted)}) in {time.perf_counter() - t0:.0f} s")
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            out[name].save(cached)
    return out, {k: v for k, v in skipped.items() if names is None or k in names}


__all__ = ["optimize_directions"]
