"""What limits a weak editing direction: the inversion, the edit, or the generator?

Editability (``idinvert evaluate``) edits *inverted test images*. This benchmark edits the generator's *own
samples* instead, so inversion is out of the picture, and tries the obvious ways to edit better along each
direction, all measured the same way (share of images whose targeted attribute, read by the classifier, moves
towards the attribute's other side: ``success``, as in
:func:`~idinvert_plugins.evaluation.editability.measure_editability`):

* ``shipped``: the shipped direction on all layers at several steps (does a larger step help?);
* ``layers``: the shipped direction restricted to the coarse, middle or fine third of the W+ layers at the
  reference step (is the attribute confined to some layers, the rest adding noise?);
* ``mean-diff``: the difference of the class means of the mapping's output (W, or W+ per layer) over
  ``--fit-n`` other samples (the simplest estimate of "towards the class"; the shipped direction comes from
  a logistic boundary);
* ``pairwise`` (categorical attributes): from each image's current class towards the target class along the
  difference of the two classes' directions, and from the target class towards the runner-up.

If none of them reaches the target success rate, the generator does not carry the attribute along any single
linear direction in W, and a better generator (more training), not a better edit, is the fix.

    python benchmarks/direction_ceiling.py --generator toyfaces-stylegan2-64 \
        --directions hair_color-auburn,hair_color-brown [--n 256] [--fit-n 6000]
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from idinvert_plugins.data.toyfaces import ATTRIBUTE_SPECS
from idinvert_plugins.editors.directions import Direction
from idinvert_plugins.editors.interfacegan import sample_w
from idinvert_plugins.evaluation.editability import AttributeTarget, classifier_scorer, resolve_targets
from idinvert_plugins.evaluation.inversions import render_codes
from idinvert_plugins.evaluation.runner import generator_directions
from idinvert_plugins.hub import load_generator, load_model

TARGET = 0.9
VARIANTS = ("shipped", "layers", "mean-diff", "pairwise")


def success(score: Callable, codes: torch.Tensor, base: torch.Tensor, target: AttributeTarget, name: str,
            offsets: torch.Tensor) -> float:
    """Share of ``codes`` whose ``name`` score moves towards the other side of the threshold when moved by
    ``offsets`` (``[L, D]``, or ``[N, L, D]``: one per code) in the intended sense (the sign is applied here)."""
    sign = torch.where(base > target.threshold, -1.0, 1.0)
    after = score(codes + sign.view(-1, 1, 1) * offsets)[name]
    return float(((after - base) * sign > 0).double().mean())


def unit_rows(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", default="toyfaces-stylegan2-64")
    ap.add_argument("--classifier", default="toyfaces-classifier-64")
    ap.add_argument("--directions", default="", help="comma-separated names (default: every attribute direction)")
    ap.add_argument("--n", type=int, default=256, help="samples to edit")
    ap.add_argument("--fit-n", type=int, default=6000, help="other samples for the class-mean directions")
    ap.add_argument("--steps", default="1.5,3,6,10", help="steps of the shipped direction")
    ap.add_argument("--step", type=float, default=3.0, help="reference step of the other variants")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="which variants to measure (comma-separated)")
    ap.add_argument("--seed", type=int, default=4242)
    args = ap.parse_args()
    variants = set(args.variants.split(","))
    if variants - set(VARIANTS):
        raise SystemExit(f"unknown variants {', '.join(sorted(variants - set(VARIANTS)))}; choose from "
                         f"{', '.join(VARIANTS)}")

    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    G = load_generator(args.generator).eval()
    classifier = load_model(args.classifier, kind="classifier").eval()
    every = generator_directions(args.generator)
    targets, _ = resolve_targets(every, classifier.attributes)
    names = [s for s in args.directions.split(",") if s] or list(targets)
    unknown = [s for s in names if s not in targets]
    if unknown:
        raise SystemExit(f"no measurable direction named {', '.join(unknown)}; choose from {', '.join(targets)}")
    scorer = classifier_scorer(classifier, targets)

    def score(codes: torch.Tensor) -> dict[str, torch.Tensor]:
        return scorer(render_codes(G, codes))

    # the mapping's output (W, or W+ for models with one w per layer): edited samples, and the class-mean fit set
    codes = G.to_wplus(sample_w(G, args.n, seed=args.seed, progress=False)[0])
    w_fit, fit = sample_w(G, args.fit_n, seed=args.seed + 1, render=lambda w: render_codes(G, G.to_wplus(w)),
                          scorer=scorer, progress=False)
    base = score(codes)
    L, D = codes.shape[1:]
    thirds = {"coarse": range(0, L // 3), "middle": range(L // 3, 2 * L // 3), "fine": range(2 * L // 3, L)}
    steps = [float(s) for s in args.steps.split(",")]

    rows, cosines = [], {}
    for name in names:
        t, d = targets[name], every[name]
        row: dict[str, float] = {}
        for s in steps if "shipped" in variants else []:
            row[f"shipped {s:g}"] = success(score, codes, base[name], t, name, s * d.offsets(L, D))
        for part, layers in thirds.items() if "layers" in variants else []:
            dl = copy.copy(d)
            dl.layers = list(layers)
            row[f"{part} {args.step:g}"] = success(score, codes, base[name], t, name,
                                                   args.step * dl.offsets(L, D))
        positive = fit[name] > t.threshold
        if "mean-diff" in variants and 0 < int(positive.sum()) < len(positive):
            md = Direction(w_fit[positive].mean(0) - w_fit[~positive].mean(0), name=name)
            row[f"mean-diff {args.step:g}"] = success(score, codes, base[name], t, name,
                                                      args.step * md.offsets(L, D))
            cosines[name] = float(F.cosine_similarity(md.offsets(L, D).flatten(), d.offsets(L, D).flatten(), dim=0))
        if "pairwise" in variants and t.kind == "categorical":
            classes = list(ATTRIBUTE_SPECS[t.attribute].values)
            peers = [f"{t.attribute}-{c}" for c in classes]
            if all(p in every and p in base for p in peers):
                U = torch.stack([every[p].offsets(L, D) for p in peers])  # [K, L, D]
                probs = torch.stack([base[p] for p in peers], 1)
                target_col = torch.full((len(codes), 1), t.positive)
                other = probs.scatter(1, target_col, -1.0).argmax(1)  # the likeliest class other than the target
                # images on the target's side move from the target to their likeliest other class, the rest
                # the other way; success() multiplies by -1 on the target's side, +1 elsewhere, so one offset,
                # "from that class to the target", serves both
                offsets = unit_rows(U[t.positive] - U[other])
                row[f"pairwise {args.step:g}"] = success(score, codes, base[name], t, name, args.step * offsets)
        if row:  # e.g. only "pairwise" asked for a continuous attribute
            rows.append((name, d.accuracy, row))
        print(f"  {name}: " + ", ".join(f"{k} {v:.0%}" for k, v in row.items()), flush=True)

    cols = list(dict.fromkeys(k for _, _, r in rows for k in r))
    print(f"\n{args.generator}: {args.n} sampled codes edited, class means from {args.fit_n} others; "
          f"{platform.machine()}, {torch.get_num_threads()} threads, {time.perf_counter() - t0:.0f} s\n")
    print("| direction | held-out acc | " + " | ".join(cols) + " | best | cos(mean-diff, shipped) |")
    print("|" + "---|" * (len(cols) + 4))
    reached = 0
    for name, acc, r in rows:
        best = max(r.values())
        reached += best >= TARGET
        cells = [f"**{r[c]:.0%}**" if r.get(c) == best else (f"{r[c]:.0%}" if c in r else "") for c in cols]
        cos = f"{cosines[name]:.2f}" if name in cosines else ""
        print(f"| {name} | {'' if acc is None else f'{acc:.3f}'} | " + " | ".join(cells) + f" | {best:.0%} | {cos} |")
    print(f"\nsuccess >= {TARGET:.0%} reached by some variant for {reached} of {len(rows)} directions")


if __name__ == "__main__":
    main()
