"""Training a heatmap landmark network (:class:`~idinvert_plugins.models.landmarks.LandmarkNet`): CenterNet's
targets (:func:`make_targets`) and loss (:func:`loss_fn`: the focal loss on the centre and landmark heatmaps, L1
on the vectors and offsets), and a loop (:func:`fit`) that trains it for a wall-time budget on canvases a domain
composes (the bundled domain has such a trainer beside its aligner).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..models.landmarks import LandmarkNet

#: what a domain gives :func:`fit`: ``sample(generator, batch)`` -> canvases ``[B, 3, S, S]`` in [-1, 1] and the
#: landmarks of their faces (a ``[K, 4, 2]`` array per canvas, in canvas pixels)
Sampler = Callable[[torch.Generator, int], tuple[torch.Tensor, list[np.ndarray]]]


def make_targets(landmarks: Sequence[np.ndarray], size: int, k: int = 4) -> dict[str, torch.Tensor]:
    """Heatmaps, vectors, offsets and their masks for :class:`LandmarkNet` outputs on ``size`` x ``size`` inputs."""
    b = len(landmarks)
    s4, s2 = size // 4, size // 2
    centre = torch.zeros(b, 1, s4, s4)
    vectors = torch.zeros(b, 2 * k, s4, s4)
    vmask = torch.zeros(b, 1, s4, s4)
    points = torch.zeros(b, k, s2, s2)
    offsets = torch.zeros(b, 2 * k, s2, s2)
    omask = torch.zeros(b, k, s2, s2)
    g4 = torch.arange(s4, dtype=torch.float32)
    g2 = torch.arange(s2, dtype=torch.float32)
    for n, faces in enumerate(landmarks):
        for lm in faces:
            c = lm.mean(0)
            scale = float(np.hypot(*(lm[1] - lm[0])) + np.hypot(*(lm[2:].mean(0) - lm[:2].mean(0))))
            if -2 <= c[0] < size + 2 and -2 <= c[1] < size + 2:
                gx, gy = (c[0] - 1.5) / 4.0, (c[1] - 1.5) / 4.0
                sigma = max(0.6, scale / 40.0)
                heat = torch.exp(-((g4[None, :] - gx) ** 2 + (g4[:, None] - gy) ** 2) / (2 * sigma**2))
                centre[n, 0] = torch.maximum(centre[n, 0], heat)
                ix, iy = int(round(gx)), int(round(gy))
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        x, y = ix + dx, iy + dy
                        if 0 <= x < s4 and 0 <= y < s4:
                            cell = np.array([4.0 * x + 1.5, 4.0 * y + 1.5])
                            vectors[n, :, y, x] = torch.from_numpy(((lm - cell) / 4.0).reshape(-1)).float()
                            vmask[n, 0, y, x] = 1.0
                if 0 <= ix < s4 and 0 <= iy < s4:
                    centre[n, 0, iy, ix] = 1.0
            sigma2 = max(0.6, scale / 60.0)
            for j in range(k):
                gx, gy = (lm[j, 0] - 0.5) / 2.0, (lm[j, 1] - 0.5) / 2.0
                if not (-1 <= gx < s2 + 1 and -1 <= gy < s2 + 1):
                    continue
                heat = torch.exp(-((g2[None, :] - gx) ** 2 + (g2[:, None] - gy) ** 2) / (2 * sigma2**2))
                points[n, j] = torch.maximum(points[n, j], heat)
                ix, iy = int(round(gx)), int(round(gy))
                if 0 <= ix < s2 and 0 <= iy < s2:
                    points[n, j, iy, ix] = 1.0
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        x, y = ix + dx, iy + dy
                        if 0 <= x < s2 and 0 <= y < s2:
                            offsets[n, 2 * j, y, x] = float(lm[j, 0] - (2.0 * x + 0.5)) / 2.0
                            offsets[n, 2 * j + 1, y, x] = float(lm[j, 1] - (2.0 * y + 0.5)) / 2.0
                            omask[n, j, y, x] = 1.0
    return {"centre": centre, "vectors": vectors, "vmask": vmask, "points": points, "offsets": offsets,
            "omask": omask}


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), normalised by the number of peaks."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1.0).float()
    neg = 1.0 - pos
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - p) * p**2 * (1 - target) ** 4 * neg).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1.0)


def loss_fn(out: dict[str, torch.Tensor], t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    k = out["points"].shape[1]
    vm = t["vmask"]
    om = t["omask"].repeat_interleave(2, dim=1)
    parts = {
        "centre": focal_loss(out["centre"], t["centre"]),
        "points": focal_loss(out["points"], t["points"]),
        "vectors": (F.l1_loss(out["vectors"], t["vectors"], reduction="none") * vm).sum() / (vm.sum() * 2 * k + 1),
        "offsets": (F.l1_loss(out["offsets"], t["offsets"], reduction="none") * om).sum() / (om.sum() + 1),
    }
    parts["total"] = parts["centre"] + parts["points"] + 0.5 * parts["vectors"] + 2.0 * parts["offsets"]
    return parts


def fit(sample: Sampler, out: str | Path, *, minutes: float = 8.0, batch: int = 16, lr: float = 3e-3, seed: int = 0,
        channels: Sequence[int] = (12, 24, 32, 48), resolution: int = 64, log_every: int = 50,
        init: str | Path | None = None, evaluate: Callable[[LandmarkNet], dict[str, Any]] | None = None,
        info: Mapping[str, Any] | None = None, run_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train a :class:`LandmarkNet` on ``resolution`` px canvases of ``sample`` for ``minutes`` of wall time (Adam;
    the learning rate follows a cosine over that time after 50 warm-up steps); writes ``out/model.pt``,
    ``out/log.jsonl``, ``out/summary.json`` and returns the summary. ``init``: continue from a run's ``model.pt``
    (its steps and time count in the summary); ``evaluate(net)``: the held-out metrics of the summary; ``info``:
    more keys of the summary (the data's description), ``run_info``: more keys of this run's entry in ``runs``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    info, run_info = dict(info or {}), dict(run_info or {})
    torch.manual_seed(seed)
    net = LandmarkNet(channels, resolution=resolution)
    before: dict[str, Any] = {"steps": 0, "train_seconds": 0.0, "runs": []}
    if init is not None:
        ckpt = torch.load(init, map_location="cpu", weights_only=True)
        net = LandmarkNet(**ckpt["config"])
        net.load_state_dict(ckpt["state"])
        prev = ckpt["summary"]
        keys = ("steps", "train_seconds", "lr", *run_info)
        before = {"steps": prev["steps"], "train_seconds": prev["train_seconds"],
                  "runs": prev.get("runs", []) or [{k: prev[k] for k in keys if k in prev}]}
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    budget = minutes * 60.0
    step = 0
    size = int(net.config.get("resolution", resolution))
    with (out / "log.jsonl").open("w", encoding="utf-8") as log:
        while True:
            frac = (time.perf_counter() - start) / budget
            if frac >= 1.0:
                break
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0))) * min(1.0, (step + 1) / 50)
            x, lms = sample(g, batch)
            parts = loss_fn(net(x), make_targets(lms, size))
            opt.zero_grad(set_to_none=True)
            parts["total"].backward()
            opt.step()
            step += 1
            if step % log_every == 0:
                row = {"step": step, "seconds": round(time.perf_counter() - start, 1),
                       **{k: round(float(v.detach()), 4) for k, v in parts.items()}}
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(row, flush=True)
    metrics = evaluate(net) if evaluate is not None else {}
    seconds = round(time.perf_counter() - start, 1)
    this = {"steps": step, "train_seconds": seconds, "lr": lr, **run_info}
    summary = {"steps": before["steps"] + step, "batch": batch, "images": (before["steps"] + step) * batch,
               "train_seconds": round(before["train_seconds"] + seconds, 1), **info, "lr": lr, **run_info,
               "seed": seed, "channels": list(net.config["channels"]), "runs": [*before["runs"], this],
               "metrics": metrics}
    torch.save({"state": net.state_dict(), "config": net.config, "summary": summary}, out / "model.pt")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def load_run(run: str | Path) -> tuple[LandmarkNet, dict[str, Any]]:
    """The trained network of a run folder of :func:`fit` and its summary."""
    ckpt = torch.load(Path(run) / "model.pt", map_location="cpu", weights_only=True)
    net = LandmarkNet(**ckpt["config"])
    net.load_state_dict(ckpt["state"])
    return net, ckpt["summary"]


__all__ = ["Sampler", "fit", "focal_loss", "load_run", "loss_fn", "make_targets"]
