"""The paper's inversion measurements as plain functions of already-computed codes and images.

* :func:`reconstruction_metrics` / :func:`table1`: the paper's Table I (MSE, SSIM, SWD, Fréchet distance and
  seconds per image of each inversion method);
* :func:`semantic_property`: the paper's Fig. 3: how well the inverted codes of test images are classified by
  linear attribute boundaries learned on *sampled* codes (precision-recall, average precision);
* :func:`ldom_sweep_row`: one point of the paper's Fig. 10 (reconstruction error and Fréchet distance of
  manipulated images for a domain-regulariser weight);
* :func:`average_precision` / :func:`precision_recall_curve`: threshold-free ranking metrics.

Fréchet distances here are computed in the domain classifier's feature space (:func:`fd_name`), never called FID.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from ..editors.directions import Direction
from ..metrics import feature_statistics, frechet_distance, mse, swd

#: the column name of Fréchet distances in a domain classifier's features when no domain is named
FD_NAME = "FD (classifier features)"


def fd_name(domain: Any = None) -> str:
    """The name of Fréchet distances in the classifier features of ``domain`` (a
    :class:`~idinvert_plugins.domain_spec.Domain`, e.g. "FD (street-scene classifier features)"; None:
    :data:`FD_NAME`)."""
    return FD_NAME if domain is None else f"FD ({domain.label} classifier features)"



FeatureFn = Callable[[torch.Tensor], torch.Tensor]


def fd_between(images_a: torch.Tensor, images_b: torch.Tensor, feature_fn: FeatureFn, batch: int = 250) -> float:
    """Fréchet distance between two image sets in ``feature_fn``'s space (NaN with fewer than 2 images)."""
    if len(images_a) < 2 or len(images_b) < 2:
        return float("nan")
    params = next(feature_fn.parameters(), None) if isinstance(feature_fn, torch.nn.Module) else None
    device = params.device if params is not None else None  # batches go where the network is
    return frechet_distance(*feature_statistics(images_a, feature_fn, batch, device=device),
                            *feature_statistics(images_b, feature_fn, batch, device=device))


def swd_between(images_a: torch.Tensor, images_b: torch.Tensor, seed: int = 0) -> float:
    """Mean multi-scale SWD (x 1e3) between two image sets (NaN below the 16 px coarsest level)."""
    if images_a.shape[-1] < 16:
        return float("nan")
    return float(swd(images_a, images_b, seed=seed)["mean"])


def reconstruction_metrics(inputs: torch.Tensor, reconstructions: torch.Tensor, feature_fn: FeatureFn | None,
                           swd_seed: int = 0) -> dict[str, float]:
    """Pixel metrics per image, averaged (MSE on [-1, 1] images, PSNR, SSIM), and the set-level SWD and
    Fréchet distance between the inputs and their reconstructions: the registered metrics of these names
    (:mod:`idinvert_plugins.metrics.registry`, what ``idinvert bench`` reports), so Table I and the leaderboard
    measure with one implementation. A metric that cannot be measured (SWD below 16 px, FD without features) is
    NaN."""
    from ..metrics.registry import MetricData, compute_metrics, get_metrics

    names = ("mse", "psnr", "ssim", "swd", "fd")
    values, _ = compute_metrics(MetricData(inputs, reconstructions, fd_features=feature_fn),
                                get_metrics([n for n in names if n != "swd" or swd_seed == 0]))
    out = {n: float(values.get(n, float("nan"))) for n in names}
    if swd_seed != 0:  # the registered SWD uses seed 0
        out["swd"] = swd_between(inputs, reconstructions, swd_seed)
    return out


def table1(inputs: torch.Tensor, reconstructions: Mapping[str, torch.Tensor], seconds_per_image: Mapping[str, float],
           feature_fn: FeatureFn | None) -> dict[str, dict[str, float]]:
    """The paper's Table I: ``{method: {mse, psnr, ssim, swd, fd, seconds_per_image, n}}``."""
    rows = {}
    for method, recon in reconstructions.items():
        row = reconstruction_metrics(inputs, recon, feature_fn)
        row["seconds_per_image"] = float(seconds_per_image[method])
        row["n"] = len(recon)
        rows[method] = row
    return rows


# -- ranking metrics -----------------------------------------------------------------------------------------
def precision_recall_curve(scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at every distinct score threshold, from the highest score down (tied scores
    enter together). Recall rises from ``1 / n_pos``-ish to 1; no labels positive is an error."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores for {labels.size} labels")
    n_pos = int(labels.sum())
    if n_pos == 0:
        raise ValueError("precision-recall needs at least one positive label")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(y)[last_of_tie]
    predicted = last_of_tie + 1
    return tp / predicted, tp / n_pos


def average_precision(scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """Area under the precision-recall staircase, ``sum_k (R_k - R_{k-1}) P_k`` (as scikit-learn's
    ``average_precision_score``): 1 when every positive outranks every negative, the positive rate for
    random scores."""
    precision, recall = precision_recall_curve(scores, labels)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def projection_scores(codes: torch.Tensor, direction: Direction) -> torch.Tensor:
    """The boundary score of W+ codes ``[N, L, D]``: their projection on the direction's unit normal,
    averaged over the layers it edits (per-layer directions project each layer on its own vector).

    The boundary's intercept is not needed: precision-recall and AP only rank the scores.
    """
    # [L, D], zero on unused layers; the boundary's normal (not a steered edit vector) scores codes
    offsets = direction.offsets(codes.shape[1], codes.shape[2], boundary=True).to(codes)
    used = (offsets.abs().sum(-1) > 0).sum().clamp_min(1)
    return (codes * offsets).sum(dim=(1, 2)) / used


def semantic_property(codes: Mapping[str, torch.Tensor], directions: Mapping[str, Direction],
                      labels: Mapping[str, np.ndarray]) -> dict[str, dict[str, dict[str, Any]]]:
    """The paper's Fig. 3: for each method and each attribute with both a direction and ground-truth
    ``labels`` (0/1 per test image), the precision-recall curve and AP of classifying the method's codes by
    the direction's boundary. Attributes whose labels are all one class are skipped (AP undefined)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for method, method_codes in codes.items():
        rows = {}
        for name, direction in directions.items():
            if name not in labels:
                continue
            y = np.asarray(labels[name]).astype(bool)
            if y.all() or not y.any():
                continue
            s = projection_scores(method_codes.float(), direction).numpy()
            precision, recall = precision_recall_curve(s, y)
            rows[name] = {"ap": average_precision(s, y), "positive_rate": float(y.mean()), "n": int(len(y)),
                          "precision": precision.tolist(), "recall": recall.tolist()}
        out[method] = rows
    return out


def ldom_sweep_row(l_dom: float, inputs: torch.Tensor, reconstructions: torch.Tensor,
                   manipulated: torch.Tensor | None, feature_fn: FeatureFn | None) -> dict[str, float]:
    """One point of the paper's Fig. 10: reconstruction MSE (and FD of the reconstructions) and the Fréchet
    distance between the manipulated images and the real test images."""
    row = {"l_dom": float(l_dom), "mse": float(mse(reconstructions, inputs).mean()),
           "fd_reconstruction": fd_between(inputs, reconstructions, feature_fn) if feature_fn else float("nan"),
           "fd_manipulated": float("nan")}
    if manipulated is not None and feature_fn is not None:
        row["fd_manipulated"] = fd_between(inputs, manipulated, feature_fn)
    return row
