"""How linearly can each attribute be read from a generator's latent codes?

InterFaceGAN editing assumes an attribute is (close to) linearly separable in W / W+. This benchmark samples
``--n`` codes per generator, labels them with the bundled classifier (continuous attributes split at the
median, as ``idinvert directions learn`` does), and reports the held-out accuracy of several linear read-outs
side by side, so that a low boundary accuracy can be told apart from a fitting problem:

* ``C=1``: logistic regression as ``learn_direction`` fits it (raw codes, sklearn's default C);
* ``C=100``: much weaker regularisation;
* ``standardised``: every code dimension scaled to unit variance first;
* ``layer 0``: the first W+ layer's code alone (the coarse layer that sets pose and shape).

If all four are low the attribute is not linear in the codes and no linear edit can reach it; if only ``C=1``
is low, the boundary fit is the problem. It also prints the mean norm of the codes, to catch a change of scale.

    python benchmarks/linear_separability.py --generator toyfaces-stylegan-64 --generator path/to/candidate \\
        --attributes yaw,face_width [--n 6000]

A training checkpoint becomes a folder for ``--generator`` with
``idinvert_plugins.training.gan.export('training_state/NAME', '/tmp/cand', {'generator': 'cand'})``.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import torch


def read_outs(codes: torch.Tensor, labels: np.ndarray, train_share: float = 0.8) -> dict[str, float]:
    """Held-out accuracy of each linear read-out of ``labels`` from ``codes`` ([N, w_dim] or [N, L, w_dim])."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    flat = codes.reshape(len(codes), -1).double().numpy()
    first = (codes[:, 0] if codes.ndim == 3 else codes).double().numpy()
    n_train = int(len(codes) * train_share)
    tr, te = slice(0, n_train), slice(n_train, None)
    inputs = {
        "C=1": (flat, 1.0),
        "C=100": (flat, 100.0),
        "standardised": (StandardScaler().fit(flat[tr]).transform(flat), 1.0),
        "layer 0": (first, 1.0),
    }
    out = {}
    for name, (x, c) in inputs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # C=100 may stop at max_iter; its score still counts
            model = LogisticRegression(max_iter=2000, C=c).fit(x[tr], labels[tr])
        out[name] = float(model.score(x[te], labels[te]))
    return out


def main(argv: list[str] | None = None) -> int:
    from idinvert_plugins.editors.interfacegan import ClassifierScorer, sample_w
    from idinvert_plugins.hub import load_generator, load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", action="append", required=True, help="named model or folder (repeatable)")
    ap.add_argument("--attributes", default="yaw,face_width,smile,hair_length", help="continuous or binary heads")
    ap.add_argument("--classifier", default="toyfaces-classifier-64")
    ap.add_argument("--n", type=int, default=6000, help="sampled codes per generator (80 %% fit, 20 %% held out)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    attributes = [a.strip() for a in args.attributes.split(",") if a.strip()]
    scorer = ClassifierScorer(load_model(args.classifier), attributes=attributes)
    t0 = time.perf_counter()
    rows = []
    for name in args.generator:
        G = load_generator(name)
        codes, scores = sample_w(G, args.n, seed=args.seed, scorer=scorer, progress=False)
        norms = codes.norm(dim=-1).mean().item()
        print(f"{name}: mean |w| {norms:.2f}, code std {codes.std().item():.3f}", flush=True)
        for attr in attributes:
            s = scores[attr].numpy()
            labels = (s > np.median(s)).astype(int) if len(np.unique(s)) > 2 else s.astype(int)
            rows.append((name, attr, read_outs(codes, labels)))
            print("  " + attr + ": " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1][2].items()), flush=True)
    print(f"\n{args.n} codes per generator, seed {args.seed}; {platform.machine()}, {torch.get_num_threads()} "
          f"threads, {time.perf_counter() - t0:.0f} s\n")
    keys = list(rows[0][2])
    print("| generator | attribute | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for name, attr, acc in rows:
        print(f"| {name} | {attr} | " + " | ".join(f"{acc[k]:.3f}" for k in keys) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
