"""A model's typical reconstruction MSE on its held-out faces, per inversion method: the reference of the
out-of-domain warning (:mod:`idinvert_plugins.domain`), plus what out-of-domain images score against it.

For each generator: the first ``--n`` faces of the toy-face test split are inverted with each method at its
default settings, with the pipeline's encoder and perceptual network (as ``idinvert invert`` and the app do),
and the MSE of each reconstruction (images in [-1, 1]) is measured. Printed per method: mean (the recorded
figure), median, 95th percentile, maximum, and the share of held-out faces the warning would flag (MSE above
3x the mean). Then the app's out-of-distribution examples and a real photo (scikit-image's astronaut, centre
crop, when scikit-image is installed) are inverted and compared with it. ``--write`` records the means in each
generator folder's ``pipeline.json`` under ``typical_mse``.

    OMP_NUM_THREADS=1 python benchmarks/typical_mse.py --n 32 --threads 1   # docs/out-of-domain.md
    python benchmarks/typical_mse.py --write               # ... and record the means in pipeline.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from idinvert_plugins.domain import OOD_FACTOR, TYPICAL_KEY, TypicalError, domain_warning
from idinvert_plugins.evaluation.inversions import load_test_images
from idinvert_plugins.images import load_image
from idinvert_plugins.metrics import mse
from idinvert_plugins.pipeline import PIPELINE_NAME, Pipeline
from idinvert_plugins.plugins import get_plugins

GENERATORS = ("toyfaces-stylegan2-64", "toyfaces-stylegan-64")


def invert(pipe: Pipeline, method: str, images: torch.Tensor, batch: int) -> np.ndarray:
    """Per-image reconstruction MSE of ``images`` inverted with ``method`` at its default settings."""
    inverter = get_plugins().get("inverter", method)
    out = []
    for start in range(0, len(images), batch):
        x = images[start : start + batch]
        result = inverter.invert(pipe.generator, x, encoder=pipe.encoder, feature_net=pipe.feature_net)
        out.append(mse(result.images.detach().float().clamp(-1, 1), x).cpu().numpy())
        print(f"  {method}: {start + len(x)}/{len(images)} images", file=sys.stderr, flush=True)
    return np.concatenate(out)


def outside_images(resolution: int) -> dict[str, torch.Tensor]:
    """The app's out-of-distribution toy faces and, if scikit-image is installed, its astronaut photo."""
    from idinvert_plugins.app.examples import example_images

    found = {label: load_image(path, resolution) for path, label in example_images(resolution)
             if label.startswith("out of distribution")}
    try:
        from PIL import Image
        from skimage import data

        path = Path(tempfile.gettempdir()) / "astronaut.png"
        Image.fromarray(data.astronaut()).save(path)
        found["photo: scikit-image astronaut"] = load_image(path, resolution, crop=True)
    except ImportError:
        print("scikit-image is not installed: no photo (pip install scikit-image)", file=sys.stderr)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", action="append", help="named model or folder (default: both bundled)")
    parser.add_argument("--methods", default="encoder,idinvert", help="comma-separated inverter names")
    parser.add_argument("--n", type=int, default=64, help="held-out test faces")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--write", action="store_true", help=f"record the means in each {PIPELINE_NAME}")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 on a busy machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    methods = [m for m in args.methods.split(",") if m]
    for name in args.generator or GENERATORS:
        pipe = Pipeline.from_pretrained(name)
        test = load_test_images(args.n, pipe.generator.resolution).images
        outside = outside_images(pipe.generator.resolution)
        print(f"\n## {name}: {args.n} held-out test faces (first of the toy-face test split), default settings")
        print(f"\n| method | mean MSE | median | p95 | max | flagged (> {OOD_FACTOR:g}x mean) | s |")
        print("|---|---|---|---|---|---|---|")
        means, rows = {}, {}
        for method in methods:
            start = time.perf_counter()
            errors = invert(pipe, method, test, args.batch)
            seconds = time.perf_counter() - start
            mean = float(errors.mean())
            means[method] = round(mean, 5)
            flagged = float((errors > OOD_FACTOR * mean).mean())
            print(f"| {method} | {mean:.5f} | {np.median(errors):.5f} | {np.percentile(errors, 95):.5f} | "
                  f"{errors.max():.5f} | {flagged:.1%} | {seconds:.0f} |")
            labels = list(outside)
            rows[method] = dict(zip(labels, invert(pipe, method, torch.stack([outside[k] for k in labels]),
                                                   args.batch)))
        print(f"\nOut-of-domain images: MSE (ratio to the method's mean; warned when > {OOD_FACTOR:g}x)\n")
        print("| image | " + " | ".join(methods) + " |")
        print("|---|" + "---|" * len(methods))
        for label in outside:
            cells = []
            for method in methods:
                value = float(rows[method][label])
                warned = domain_warning(value, TypicalError(means[method], method, "measured")) is not None
                cells.append(f"{value:.4f} ({value / means[method]:.1f}x{', warned' if warned else ''})")
            print(f"| {label} | " + " | ".join(cells) + " |")
        if args.write:
            path = Path(pipe.generator.resolved.folder) / PIPELINE_NAME
            config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"generator": "."}
            config[TYPICAL_KEY] = {**(config.get(TYPICAL_KEY) or {}), **means}
            path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
            print(f"\nwrote {TYPICAL_KEY} {means} into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
