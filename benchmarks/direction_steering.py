"""InterFaceGAN directions, plain normal vs covariance-steered, side by side on one sample.

Samples ``--n`` codes of a generator, scores their images with the attribute classifier, and learns one
direction per attribute twice from the same codes and scores (``learn_direction(steer="normal")``, the
InterFaceGAN normal, and ``steer="covariance"``, ``Sigma n``). Then edits ``--m`` fresh samples by each step
of ``--steps`` along every direction towards the attribute's other side and measures, per attribute and
steering (:func:`idinvert_plugins.evaluation.editability.measure_editability`): held-out accuracy of the
boundary (the same for both), the targeted change per unit step in spreads of the real test images, the
share of images moved the intended way (success) and the mean change of the other attributes (others).
Prints a markdown table; ``--save-normal DIR`` / ``--save-covariance DIR`` write the two direction sets.

    python benchmarks/direction_steering.py --generator toyfaces-stylegan2-64 [--n 20000] [--m 256]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from idinvert_plugins.editors.directions import save_directions
from idinvert_plugins.editors.interfacegan import ClassifierScorer, directions_from_scores, sample_w
from idinvert_plugins.evaluation.editability import (
    SPREAD_IMAGES,
    classifier_scorer,
    measure_editability,
    real_spreads,
    resolve_targets,
)
from idinvert_plugins.evaluation.inversions import load_test_images, render_codes
from idinvert_plugins.hub import load_generator, load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", default="toyfaces-stylegan2-64")
    ap.add_argument("--classifier", default="toyfaces-classifier-64")
    ap.add_argument("--n", type=int, default=20_000, help="sampled codes to learn from")
    ap.add_argument("--m", type=int, default=256, help="fresh sampled codes to edit")
    ap.add_argument("--steps", default="1.5,3", help="edit steps (unit vectors in W)")
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-normal", metavar="DIR")
    ap.add_argument("--save-covariance", metavar="DIR")
    args = ap.parse_args()

    t0 = time.perf_counter()
    G = load_generator(args.generator)
    classifier = load_model(args.classifier, kind="classifier")
    scorer = ClassifierScorer(classifier)
    codes, scores = sample_w(G, args.n, seed=args.seed, scorer=scorer)
    sets = {}
    for steer in ("normal", "covariance"):
        dirs, _ = directions_from_scores(codes, scores, ratio=args.ratio, steer=steer, seed=args.seed,
                                         describe=scorer.describe, progress=False)
        for d in dirs:
            d.extra.update(generator=args.generator, classifier=args.classifier)
        sets[steer] = {d.name: d for d in dirs}
        folder = getattr(args, f"save_{steer}")
        if folder:
            run = {"command": "learn", "generator": args.generator, "classifier": args.classifier, "n": args.n,
                   "seed": args.seed, "ratio": args.ratio, "method": "logistic", "steer": steer}
            info = {d.name: {"majority": d.extra.get("majority"), "note": d.extra.get("note") or d.extra.get("label")}
                    for d in dirs}
            save_directions(dirs, folder, info, run)
            print(f"wrote {len(dirs)} {steer} directions to {folder}")

    targets, skipped = resolve_targets(sets["normal"], classifier.attributes)
    for name, why in skipped.items():
        print(f"not measured: {name}: {why}")
    score = classifier_scorer(classifier, targets)
    scales = real_spreads(score(load_test_images(SPREAD_IMAGES, G.resolution).images))
    thresholds = {k: t.threshold for k, t in targets.items()}
    with torch.no_grad():
        w = G.to_wplus(G.mapping(G.sample_z(args.m, seed=args.seed + 1)))

    steps = [float(s) for s in args.steps.split(",")]
    results = {}
    for steer, dirs in sets.items():
        measured = {k: dirs[k] for k in targets}
        for step in steps:
            rows, _ = measure_editability(w, measured, lambda c: render_codes(G, c), score, step=step,
                                          thresholds=thresholds, scales=scales)
            results[steer, step] = rows

    print(f"\n{args.generator}: {args.n} sampled codes, {args.m} edited; {platform.machine()}, "
          f"{torch.get_num_threads()} threads, {time.perf_counter() - t0:.0f} s\n")
    head = ["attribute", "held-out acc"]
    for steer in sets:
        for step in steps:
            head += [f"{steer} {step:g}: change/unit", "success", "others"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name in targets:
        row = [name, f"{sets['normal'][name].accuracy:.3f}"]
        for steer in sets:
            for step in steps:
                r = results[steer, step][name]
                row += [f"{r['change_per_unit_std']:.3f}", f"{r['success_rate']:.0%}", f"{r['others_mean']:.3f}"]
        print("| " + " | ".join(row) + " |")
    row = ["**mean**", ""]
    for steer in sets:
        for step in steps:
            rs = results[steer, step].values()
            row += [f"{np.mean([r['change_per_unit_std'] for r in rs]):.3f}",
                    f"{np.mean([r['success_rate'] for r in rs]):.0%}", f"{np.mean([r['others_mean'] for r in rs]):.3f}"]
    print("| " + " | ".join(row) + " |")
    for steer in sets:
        for step in steps:
            ok = sum(r["success_rate"] >= 0.9 for r in results[steer, step].values())
            print(f"{steer}, step {step:g}: success >= 90 % for {ok} of {len(targets)} directions")


if __name__ == "__main__":
    main()
