"""Training the toy-face landmark model (the ``toyfaces`` aligner's network) on rendered scenes, and exporting it
as ``toyfaces-landmarks-64``.

The painter knows where it put the eyes and the mouth (:mod:`.landmarks`), so the labels are exact. A pool of
training faces (the dataset's train split) is rendered at 32, 64 and 128 px once; each batch then composes
64 x 64 canvases on the fly:

* *canonical* canvases (what the aligner's refinement pass sees): one face filling the canvas the way the
  ``toyfaces`` alignment template frames it, with the small scale, rotation and shift errors a first guess has;
* *scene* canvases (what detection sees on a photo pyramid): one to three faces of 18-64 px, rotated up to
  +-35 degrees, anywhere on a random backdrop.

The network, its targets, loss and loop are the core's (:mod:`idinvert_plugins.training.landmarks`). Run::

    OMP_NUM_THREADS=1 python -m idinvert_plugins.toyfaces.train_landmarks --minutes 8 --out runs/landmarks \\
        --export weights/toyfaces-landmarks-64
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..models.landmarks import LandmarkNet
from ..training.landmarks import fit, load_run
from .attributes import sample_attributes
from .landmarks import LANDMARK_NAMES, landmark_array
from .painter import render

CANVAS = 64
LEVELS = (32, 64, 128)
TRAIN_SPLIT = (0, 60_000)  # dataset seed 0: indices below 65,000 are the train split; 60,000+ stay unused here
TEST_SPLIT = (65_000, 70_000)


@dataclass
class Pool:
    """Faces rendered at each of :data:`LEVELS`: ``images[res]`` float ``[N, 4, res, res]`` (RGB in [-1, 1] and a
    feathered-ellipse alpha) and ``landmarks[res]`` ``[N, 4, 2]`` in render pixels."""

    images: dict[int, torch.Tensor]
    landmarks: dict[int, torch.Tensor]

    def __len__(self) -> int:
        return len(next(iter(self.images.values())))


def _ellipse_alpha(res: int) -> torch.Tensor:
    c = (torch.arange(res, dtype=torch.float32) + 0.5) / res * 2.0 - 1.0
    r = torch.sqrt(c[None, :] ** 2 / 0.81 + c[:, None] ** 2)
    return ((1.0 - r) / 0.12).clamp(0.0, 1.0)


def build_pool(n: int, seed: int = 0, split: tuple[int, int] = TRAIN_SPLIT, dataset_seed: int = 0) -> Pool:
    """Render ``n`` faces of the dataset ``dataset_seed`` (indices drawn by ``seed`` from ``split``)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(np.arange(*split), size=n, replace=False)
    images: dict[int, list[torch.Tensor]] = {r: [] for r in LEVELS}
    lms: dict[int, list[np.ndarray]] = {r: [] for r in LEVELS}
    for i in idx:
        attrs = sample_attributes(dataset_seed, int(i))
        for res in LEVELS:
            rgb = torch.from_numpy(render(attrs, res)).permute(2, 0, 1).float() / 127.5 - 1.0
            images[res].append(torch.cat([rgb, _ellipse_alpha(res)[None]]))
            lms[res].append(landmark_array(attrs, res))
    return Pool({r: torch.stack(v) for r, v in images.items()},
                {r: torch.from_numpy(np.stack(v)).float() for r, v in lms.items()})


def _backdrop(g: torch.Generator, size: int) -> torch.Tensor:
    """A random canvas background ``[3, size, size]``: a smooth colour field or a flat colour, with a few soft
    discs and boxes (never a face: every face on a canvas is labelled)."""
    if torch.rand(1, generator=g).item() < 0.8:
        cells = int(torch.randint(2, 7, (1,), generator=g))
        field = torch.rand(1, 3, cells, cells, generator=g) * 2.0 - 1.0
        out = F.interpolate(field, size=(size, size), mode="bicubic", align_corners=False)[0]
    else:
        out = (torch.rand(3, 1, 1, generator=g) * 2.0 - 1.0).expand(3, size, size).clone()
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    for _ in range(int(torch.randint(0, 5, (1,), generator=g))):
        cx, cy, r = (torch.rand(3, generator=g) * torch.tensor([size, size, 0.4 * size])).tolist()
        if torch.rand(1, generator=g).item() < 0.5:
            d = torch.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) - r
        else:
            d = torch.maximum((xs - cx).abs() - r, (ys - cy).abs() - 0.6 * r)
        a = (0.5 - d / 1.5).clamp(0.0, 1.0)
        out = out + a * (torch.rand(3, 1, 1, generator=g) * 2.0 - 1.0 - out)
    return out.clamp(-1.0, 1.0)


def _paste(canvas: torch.Tensor, face: torch.Tensor, square: bool, m: np.ndarray) -> None:
    """Composite ``face`` ``[4, r, r]`` into ``canvas`` ``[3, S, S]`` where ``m`` maps render pixels to canvas
    pixels (index coordinates)."""
    r = face.shape[-1]
    size = canvas.shape[-1]
    inv = np.linalg.inv(m)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    px = float(inv[0, 0]) * xs + float(inv[0, 1]) * ys + float(inv[0, 2])
    py = float(inv[1, 0]) * xs + float(inv[1, 1]) * ys + float(inv[1, 2])
    grid = torch.stack([(px + 0.5) / r * 2.0 - 1.0, (py + 0.5) / r * 2.0 - 1.0], -1)[None]
    src = face.clone()
    if square:
        src[3] = 1.0
    out = F.grid_sample(src[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    a = out[3:4]
    canvas.mul_(1.0 - a).add_(out[:3] * a)


def _placement(res: int, cx: float, cy: float, side: float, angle: float) -> np.ndarray:
    s = side / res
    c, si = math.cos(angle) * s, math.sin(angle) * s
    centre = (res - 1) / 2.0
    return np.array([[c, -si, cx - c * centre + si * centre], [si, c, cy - si * centre - c * centre], [0, 0, 1.0]])


def sample_batch(pool: Pool, g: torch.Generator, batch: int, canonical: float = 0.55, size: int = CANVAS
                 ) -> tuple[torch.Tensor, list[np.ndarray]]:
    """``batch`` canvases ``[B, 3, size, size]`` and the landmarks of their faces (a ``[K, 4, 2]`` array each)."""
    images, targets = [], []

    def u(a: float, b: float) -> float:
        return float(torch.empty(1).uniform_(a, b, generator=g))

    for _ in range(batch):
        canvas = _backdrop(g, size)
        faces = []
        if u(0, 1) < canonical:
            # the template frames a face's 64 px render as the whole canvas; a first guess is off by a little
            specs = [(size / 2 - 0.5 + u(-4, 4), size / 2 - 0.5 + u(-4, 4), size * u(0.82, 1.2), u(-10, 10))]
            if u(0, 1) < 0.3:  # a neighbour's face at the edge
                side = size * u(0.7, 1.1)
                a = u(0, 2 * math.pi)
                specs.insert(0, (size / 2 + math.cos(a) * side * 0.95, size / 2 + math.sin(a) * side * 0.95, side,
                                 u(-20, 20)))
        else:
            specs = []
            for _k in range(int(torch.randint(1, 4, (1,), generator=g))):
                side = u(18, 64)
                for _t in range(20):
                    cx, cy = u(-0.1 * side, size + 0.1 * side), u(-0.1 * side, size + 0.1 * side)
                    if all(math.hypot(cx - p[0], cy - p[1]) > 0.6 * (side + p[2]) for p in specs):
                        specs.append((cx, cy, side, u(-35, 35)))
                        break
        for cx, cy, side, angle in specs:
            res = next((r for r in LEVELS if r >= side * 0.9), LEVELS[-1])
            j = int(torch.randint(0, len(pool), (1,), generator=g))
            m = _placement(res, cx, cy, side, math.radians(angle))
            _paste(canvas, pool.images[res][j], u(0, 1) < 0.4, m)
            lm = pool.landmarks[res][j].numpy().astype(np.float64)
            faces.append(lm @ m[:2, :2].T + m[:2, 2])
        # photometric jitter, blur and grain: crops are resampled photos
        canvas = canvas * u(0.8, 1.15) + u(-0.12, 0.12)
        if u(0, 1) < 0.3:
            canvas = F.avg_pool2d(F.pad(canvas[None], (1, 1, 1, 1), mode="replicate"), 3, 1)[0] * 0.5 + canvas * 0.5
        canvas = canvas + torch.randn(canvas.shape, generator=g) * u(0.0, 0.04)
        images.append(canvas.clamp(-1.0, 1.0))
        targets.append(np.asarray(faces, np.float64).reshape(-1, 4, 2))
    return torch.stack(images), targets


@torch.no_grad()
def evaluate(net: LandmarkNet, pool: Pool, n: int = 256, seed: int = 123) -> dict[str, float]:
    """Canonical canvases of held-out faces: mean and 95th-percentile landmark error (px at 64), how many faces
    the decoder finds; scene canvases: recall of faces whose landmarks all lie in the canvas."""
    net.eval()
    g = torch.Generator().manual_seed(seed)
    errs, found, total_scene, hit_scene = [], 0, 0, 0
    for canonical in (1.0, 0.0):
        for start in range(0, n, 32):
            x, lms = sample_batch(pool, g, min(32, n - start), canonical=canonical)
            dets = net.decode(net(x))
            for faces, lm in zip(dets, lms):
                if canonical:
                    true = lm[-1]  # the centred face is the last pasted
                    best = min(faces, key=lambda f: np.abs(np.asarray(f["landmarks"]) - true).mean(), default=None)
                    if best is not None:
                        found += 1
                        errs.append(np.hypot(*(np.asarray(best["landmarks"]) - true).T))
                else:
                    for face in lm:
                        if not ((face >= 0).all() and (face < CANVAS).all()):
                            continue
                        total_scene += 1
                        scale = np.hypot(*(face[1] - face[0]))
                        if any(np.hypot(*(np.asarray(f["landmarks"]) - face).T).max() < 0.25 * scale for f in faces):
                            hit_scene += 1
    e = np.concatenate(errs) if errs else np.array([np.nan])
    net.train()
    return {"canonical_found": found / n, "canonical_err_mean_px": float(e.mean()),
            "canonical_err_p95_px": float(np.percentile(e, 95)), "scene_recall": hit_scene / max(total_scene, 1),
            "scene_faces": total_scene}


def train(out: str | Path, minutes: float = 8.0, pool_size: int = 1200, batch: int = 16, lr: float = 3e-3,
          seed: int = 0, channels: Sequence[int] = (12, 24, 32, 48), log_every: int = 50, canonical: float = 0.55,
          init: str | Path | None = None, test_size: int = 128, eval_n: int = 256) -> dict[str, Any]:
    """Train for ``minutes`` of wall time (the learning rate follows a cosine over that time); writes
    ``out/model.pt``, ``out/log.jsonl`` and returns the summary with held-out metrics (``eval_n`` canvases of
    ``test_size`` test faces). ``canonical``: the share of canonical canvases; ``init``: continue from a run's
    ``model.pt`` (its steps and time count in the summary)."""
    t0 = time.perf_counter()
    pool = build_pool(pool_size, seed=seed)
    test_pool = build_pool(test_size, seed=seed + 1, split=TEST_SPLIT)
    t_pool = time.perf_counter() - t0
    return fit(lambda g, n: sample_batch(pool, g, n, canonical=canonical), out, minutes=minutes, batch=batch, lr=lr,
               seed=seed, channels=channels, resolution=CANVAS, log_every=log_every, init=init,
               evaluate=lambda net: evaluate(net, test_pool, n=eval_n),
               info={"pool_seconds": round(t_pool, 1), "pool_size": pool_size}, run_info={"canonical": canonical})


def export(run: str | Path, folder: str | Path, name: str = "toyfaces-landmarks-64") -> Path:
    """Write the trained network of ``run`` as a model folder (fp16 weights, config, card, metrics)."""
    from ..hub import save_pretrained

    net, summary = load_run(run)
    folder = Path(folder)
    save_pretrained(net, folder, kind="landmarks", dtype=torch.float16)
    (folder / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(card_text(name, summary), encoding="utf-8")
    return folder


def card_text(name: str, summary: dict[str, Any]) -> str:
    m = summary["metrics"]
    runs = "; ".join(f"{r['steps']} steps, lr {r['lr']}, {r.get('canonical', 0.55):.0%} canonical canvases, "
                     f"{r['train_seconds'] / 60:.1f} min" for r in summary.get("runs", [])) or "one"
    return f"""---
name: {name}
kind: landmarks
architecture: heatmap-landmarks
library_name: idinvert-plugins
tags:
- idinvert-plugins
- heatmap-landmarks
- landmarks
- toyfaces
resolution: 64
license: mit
files:
- config.json
- model.safetensors
- metrics.json
---

# {name}

Face detector and landmark model of the procedural toy-face domain bundled with idinvert-plugins: a
{sum(1 for _ in summary['channels'])}-stage fully convolutional network (CenterNet style, channels
{summary['channels']}) that finds toy faces in a picture of any size and gives the four points FFHQ alignment
needs ({', '.join(LANDMARK_NAMES)}). The `toyfaces` aligner (`idinvert align PHOTO --aligner toyfaces`) runs it on
a pyramid of the photo to find faces, then again on each face's aligned 64 px crop to refine the points, so
the whole real-photo path (align, invert, edit, paste back) runs offline on the bundled generators.

## Usage

```python
from idinvert_plugins.align import get_aligner

faces = get_aligner("toyfaces").detect(photo)  # photo: uint8 H x W x 3
```

## Training data

Only renders of the toy-face train split (dataset seed 0, {summary['pool_size']} faces drawn from indices
0-59,999, rendered at 32, 64 and 128 px), composed into 64 x 64 canvases on the fly: *canonical* canvases (one
face framed as the `toyfaces` alignment template frames it, scale x0.82-1.2, rotation +-10 degrees, shift +-4
px) and *scene* canvases (one to three faces of 18-64 px, rotated up to +-35 degrees, on random backdrops).
Labels are exact: the painter's own eye centres and mouth corners (`idinvert_plugins.toyfaces.landmarks`).
Trained by `python -m idinvert_plugins.toyfaces.train_landmarks` on one CPU thread (shared with other jobs):
{summary['steps']} steps of batch {summary['batch']} ({summary['images']:,} canvases) in
{summary['train_seconds'] / 60:.1f} min of wall time, Adam with a cosine decay in each run; runs: {runs}.
Weights stored in float16.

## Held-out metrics (faces of the test split, indices 65,000-69,999)

| metric | value |
|---|---|
| canonical canvases: faces found | {m['canonical_found']:.3f} |
| canonical canvases: landmark error, mean (px at 64) | {m['canonical_err_mean_px']:.3f} |
| canonical canvases: landmark error, 95th percentile (px at 64) | {m['canonical_err_p95_px']:.3f} |
| scene canvases: faces found, all four points within 25 % of the eye distance | {m['scene_recall']:.3f} \
({m['scene_faces']} faces) |

## Limitations

Toy faces only: it has never seen a real photograph, and finds nothing useful in one (use the `dlib` aligner
there). Faces must be at least about 20 px wide (the photo pyramid only shrinks) and within about +-35 degrees of
upright.
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="run folder (model.pt, log.jsonl, summary.json)")
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--pool", type=int, default=1200, help="training faces rendered once")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--canonical", type=float, default=0.55, help="share of canonical (refinement) canvases")
    p.add_argument("--init", metavar="RUN/model.pt", help="continue from this checkpoint")
    p.add_argument("--export", metavar="FOLDER", help="write the model folder here when done")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    summary = train(args.out, minutes=args.minutes, pool_size=args.pool, batch=args.batch, lr=args.lr,
                    seed=args.seed, canonical=args.canonical, init=args.init)
    print(json.dumps(summary["metrics"], indent=2))
    if args.export:
        print(f"exported {export(args.out, args.export)}")
    return 0


__all__ = ["CANVAS", "LEVELS", "TEST_SPLIT", "TRAIN_SPLIT", "Pool", "build_pool", "card_text", "evaluate", "export",
           "main", "sample_batch", "train"]


if __name__ == "__main__":
    raise SystemExit(main())
