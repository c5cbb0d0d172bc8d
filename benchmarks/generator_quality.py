"""Quality of a generator of the bundled toy-face domain, against the held-out test renders.

Measures, for ``--n-fake`` samples (psi = 1, constant noise) against the first ``--n-real`` test renders
(indices 65,000.. of the 70,000-image toy-face dataset, seed 0):

* multi-scale SWD (x1e3 per level, network-free, :func:`idinvert_plugins.metrics.swd`);
* FD-toyfaces-classifier: the Fréchet distance in the attribute classifier's pool features (not FID);
* attribute marginals read by the classifier on both sets (every semantic attribute), and the largest gap
  per attribute in percentage points.

Next to each number is its floor: the same measurement between ``--n-real`` *train* renders (the last ones of
the train split) and the same test renders, i.e. what a perfect generator would score with this many
samples. Writes ``metrics.json``, ``quality.md``, ``samples.png`` (8x8 samples) and ``truncation.png``
(rows = seeds, columns = psi 1.0 .. 0.0) into ``--out`` and prints the markdown.

    python benchmarks/generator_quality.py --model toyfaces-stylegan2-64 [--n-fake 10000] [--n-real 5000]
        [--out docs/quality/toyfaces-stylegan2-64]
    python benchmarks/generator_quality.py --model path/to/folder --n-fake 256 --n-real 256   # quick check
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from idinvert_plugins.data import toyfaces
from idinvert_plugins.images import from_uint8, make_grid, save_image, to_uint8
from idinvert_plugins.metrics import (
    attribute_marginals,
    compare_marginals,
    feature_statistics,
    frechet_distance,
    frechet_features,
    semantic_attributes,
    swd,
    table_marginals,
    timer,
)

DATASET_SIZE = 70_000
TRUNCATION_PSIS = (1.0, 0.9, 0.7, 0.5, 0.3, 0.0)
FD_NAME = "FD-toyfaces-classifier"


# -- image sets ----------------------------------------------------------------------------------------
def real_indices(n_real: int, n: int = DATASET_SIZE) -> tuple[range, range]:
    """The first ``n_real`` test indices, and the floor set: the last ``n_real`` train indices."""
    sizes = toyfaces.split_sizes(n)
    if not 2 <= n_real <= sizes["test"]:
        raise ValueError(f"--n-real must be between 2 and the test split size {sizes['test']}, got {n_real}")
    train = sizes["train"]
    return range(train, train + n_real), range(train - n_real, train)


@torch.no_grad()
def generate(G: nn.Module, n: int, seed: int, batch: int, psi: float = 1.0) -> np.ndarray:
    """``n`` samples (z from ``seed``, truncation ``psi``, constant noise) as uint8 ``[n, H, W, 3]``."""
    device = G.w_avg.device
    z_all = G.sample_z(n, seed=seed, device=device)
    out = np.empty((n, G.resolution, G.resolution, G.img_channels), np.uint8)
    for i in range(0, n, batch):
        ws = G.mapping(z_all[i : i + batch], truncation_psi=psi)
        out[i : i + batch] = to_uint8(G.synthesis(ws, noise_mode="const"))
    return out


@torch.no_grad()
def truncation_sweep(G: nn.Module, seeds: Sequence[int], psis: Sequence[float] = TRUNCATION_PSIS) -> np.ndarray:
    """A grid: one row per seed, one column per psi (truncation on all layers, constant noise)."""
    z = torch.cat([G.sample_z(1, seed=s, device=G.w_avg.device) for s in seeds])
    rows = [torch.stack([G.synthesis(G.mapping(z, truncation_psi=p), noise_mode="const")[k] for p in psis])
            for k in range(len(seeds))]
    return make_grid(torch.cat(rows), nrow=len(psis))


def classifier_batches(images: np.ndarray, resolution: int, batch: int) -> Iterator[torch.Tensor]:
    """Float batches in [-1, 1] at the classifier's resolution (resized with anti-aliasing if needed)."""
    for i in range(0, len(images), batch):
        x = from_uint8(images[i : i + batch])
        if x.shape[-1] != resolution:
            x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
        yield x


# -- evaluation -----------------------------------------------------------------------------------------
def evaluate(
    G: nn.Module,
    classifier: nn.Module,
    *,
    name: str,
    n_fake: int = 10_000,
    n_real: int = 5_000,
    seed: int = 0,
    dataset_seed: int = 0,
    batch: int = 100,
    swd_seed: int = 0,
    swd_directions: int = 512,
    swd_repeats: int = 4,
    sweep_seeds: Sequence[int] = tuple(range(6)),
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Run every measurement; write the files into ``out`` if given. Returns the ``metrics.json`` content."""
    G = G.eval()
    classifier = classifier.eval()
    if n_fake < 2:
        raise ValueError(f"--n-fake must be at least 2, got {n_fake}")
    test_idx, floor_idx = real_indices(n_real)
    timings: dict[str, float] = {}
    with timer() as total:
        with timer() as t:
            test_images, test_table = toyfaces.render_batch(dataset_seed, test_idx, G.resolution)
            floor_images, _ = toyfaces.render_batch(dataset_seed, floor_idx, G.resolution)
        timings["render_real"] = t.seconds
        with timer() as t:
            fake_images = generate(G, n_fake, seed, batch)
        timings["generate"] = t.seconds

        swd_args = dict(seed=swd_seed, directions=swd_directions, repeats=swd_repeats)
        with timer() as t:
            swd_fake = swd(fake_images, test_images, **swd_args)
        timings["swd_generated"] = t.seconds
        with timer() as t:
            swd_floor = swd(floor_images, test_images, **swd_args)
        timings["swd_floor"] = t.seconds

        with timer() as t:
            features = frechet_features(classifier, "pool", name=FD_NAME)
            stats = {k: feature_statistics(v, features, batch) for k, v in
                     (("test", test_images), ("fake", fake_images), ("floor", floor_images))}
            fd_fake = frechet_distance(*stats["fake"], *stats["test"])
            fd_floor = frechet_distance(*stats["floor"], *stats["test"])
        timings["fd"] = t.seconds

        with timer() as t:
            attrs = [a for a in semantic_attributes() if a in {h["name"] for h in classifier.attributes}]
            res = classifier.resolution
            marg = {k: attribute_marginals(classifier, classifier_batches(v, res, batch), attrs) for k, v in
                    (("test", test_images), ("generated", fake_images), ("floor", floor_images))}
            truth = table_marginals(test_table, attrs)
        timings["attributes"] = t.seconds

        with timer() as t:
            samples = make_grid(generate(G, 64, seed, batch), nrow=8)
            sweep = truncation_sweep(G, sweep_seeds)
        timings["figures"] = t.seconds
    timings["total"] = total.seconds

    def swd_json(r: dict[str, Any]) -> dict[str, Any]:
        return {"levels": {str(k): v for k, v in r["levels"].items()}, "mean": r["mean"],
                "num_images": list(r["num_images"])}

    results = {
        "model": name,
        "resolution": int(G.resolution),
        "n_fake": n_fake,
        "n_real": n_real,
        "generated": {"z_seed": seed, "truncation_psi": 1.0, "noise_mode": "const"},
        "dataset": {"name": "toyfaces", "seed": dataset_seed, "size": DATASET_SIZE,
                    "test_indices": [test_idx.start, test_idx.stop],
                    "floor_indices": [floor_idx.start, floor_idx.stop]},
        "swd": {"settings": {"seed": swd_seed, "directions": swd_directions, "repeats": swd_repeats,
                             "descriptors_per_image": 128, "nhood_size": 7, "min_resolution": 16},
                "generated_vs_test": swd_json(swd_fake), "floor_train_vs_test": swd_json(swd_floor)},
        "fd": {"name": FD_NAME, "features": f"{getattr(classifier, 'architecture', 'classifier')} pool "
                                            f"({features.dim}-d)",
               "generated_vs_test": fd_fake, "floor_train_vs_test": fd_floor},
        "attributes": {
            "names": attrs,
            "test_classifier": marg["test"],
            "generated_classifier": marg["generated"],
            "floor_classifier": marg["floor"],
            "test_ground_truth": truth,
            "generated_vs_test": compare_marginals(marg["test"], marg["generated"]),
            "floor_vs_test": compare_marginals(marg["test"], marg["floor"]),
            "classifier_vs_ground_truth_test": compare_marginals(truth, marg["test"]),
        },
        "timings_s": timings,
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "device": str(G.w_avg.device), "machine": platform.machine(),
                        "processor": platform.processor()},
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_image(samples, out / "samples.png")
        save_image(sweep, out / "truncation.png")
        (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        (out / "quality.md").write_text(markdown(results), encoding="utf-8")
    return results


# -- report ---------------------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _describe(m: dict[str, Any]) -> str:
    if m["kind"] == "binary":
        return _pct(m["fraction"])
    if m["kind"] == "categorical":
        return ", ".join(f"{c} {100 * v:.0f}" for c, v in m["histogram"].items())
    text = f"mean {m['mean']:.3f}"
    if m["fraction_positive"] is not None:
        text += f"; > {m['threshold']:g}: {_pct(m['fraction_positive'])}"
    return text


def _num(x: float | None, fmt: str = ".1f") -> str:
    return "–" if x is None else format(x, fmt)


def markdown(r: dict[str, Any]) -> str:
    """The ``quality.md`` report of :func:`evaluate`'s results."""
    d = r["dataset"]
    test, floor = d["test_indices"], d["floor_indices"]
    lines = [
        f"# Generator quality: {r['model']}",
        "",
        f"{r['n_fake']} generated samples (psi 1, constant noise, z seed {r['generated']['z_seed']}) against the "
        f"{r['n_real']} toy-face test renders {test[0]}..{test[1] - 1} (dataset seed {d['seed']}). Floor: "
        f"{r['n_real']} train renders {floor[0]}..{floor[1] - 1} against the same test renders: about what a perfect "
        "generator would score (with more generated samples than real ones it would score a little lower, as "
        "sampling noise shrinks). Lower is better everywhere.",
        "",
        "| metric | generated vs test | floor (train vs test) |",
        "|---|---|---|",
    ]
    fake, fl = r["swd"]["generated_vs_test"], r["swd"]["floor_train_vs_test"]
    for res in fake["levels"]:
        lines.append(f"| SWD {res}x{res} (x1e3) | {fake['levels'][res]:.2f} | {fl['levels'][res]:.2f} |")
    lines.append(f"| SWD mean (x1e3) | {fake['mean']:.2f} | {fl['mean']:.2f} |")
    lines.append(f"| {r['fd']['name']} (not FID) | {r['fd']['generated_vs_test']:.3f} | "
                 f"{r['fd']['floor_train_vs_test']:.3f} |")
    a = r["attributes"]
    lines += [
        "",
        "## Attribute distribution (the classifier reads both sets)",
        "",
        "Binary: share positive; categorical: share per class (%); continuous: mean and the share above the "
        "editing threshold. Gap: the largest absolute difference from the test renders in percentage points "
        "(for a continuous attribute, of its binary reading); floor gap: the same for the train renders.",
        "",
        "| attribute | test renders | generated | gap (pp) | mean diff | floor gap (pp) | test ground truth |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in a["names"]:
        gap, floor_gap = a["generated_vs_test"][name], a["floor_vs_test"][name]
        lines.append(
            f"| {name} | {_describe(a['test_classifier'][name])} | {_describe(a['generated_classifier'][name])} | "
            f"{_num(gap['max_abs_diff_pp'])} | {_num(gap['mean_diff'], '+.3f')} | "
            f"{_num(floor_gap['max_abs_diff_pp'])} | {_describe(a['test_ground_truth'][name])} |")
    t = r["timings_s"]
    env = r["environment"]
    lines += [
        "",
        f"Run time {t['total']:.0f} s ({', '.join(f'{k} {v:.1f}' for k, v in t.items() if k != 'total')}; "
        f"torch {env['torch']}, {env['threads']} threads, {env['device']}).",
        "",
        "![samples](samples.png)",
        "",
        f"Truncation sweep (rows: seeds; columns: psi {', '.join(f'{p:g}' for p in TRUNCATION_PSIS)}):",
        "",
        "![truncation](truncation.png)",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="generator name (e.g. toyfaces-stylegan2-64), Hub id or folder")
    ap.add_argument("--n-fake", type=int, default=10_000)
    ap.add_argument("--n-real", type=int, default=5_000)
    ap.add_argument("--out", default=None, help="output folder (default docs/quality/<model name>)")
    ap.add_argument("--classifier", default="toyfaces-classifier-64")
    ap.add_argument("--seed", type=int, default=0, help="seed of the generated z")
    ap.add_argument("--dataset-seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--swd-directions", type=int, default=512)
    ap.add_argument("--swd-repeats", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from idinvert_plugins import load_generator, load_model

    G = load_generator(args.model, device=args.device)
    classifier = load_model(args.classifier, kind="classifier", device=args.device)
    name = Path(args.model).name if Path(args.model).is_dir() else args.model.split("@")[0].split("/")[-1]
    out = Path(args.out) if args.out else Path("docs") / "quality" / name
    results = evaluate(G, classifier, name=name, n_fake=args.n_fake, n_real=args.n_real, seed=args.seed,
                       dataset_seed=args.dataset_seed, batch=args.batch, swd_directions=args.swd_directions,
                       swd_repeats=args.swd_repeats, out=out)
    sys.stdout.write(markdown(results))
    print(f"wrote {out}/metrics.json, quality.md, samples.png, truncation.png")
    return results


if __name__ == "__main__":
    main()
