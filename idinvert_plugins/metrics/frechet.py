"""Fréchet distances between image sets in the feature space of a network.

The Fréchet distance between two Gaussians ``N(mu1, S1)`` and ``N(mu2, S2)`` is
``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``. FID (Heusel et al. 2017) is this distance between
the Inception-v3 pool features of real and generated images. No Inception weights can be shipped or
downloaded here, so the bundled feature network is a domain's attribute classifier's ``"pool"`` layer (128
values for the bundled domain's): its distance is reported as **FD-<domain>-classifier**, never as FID, and
its numbers are not comparable with published FIDs. :class:`InceptionFeatures` is the place where real
Inception features would plug in; it is not implemented.

The feature networks are :class:`idinvert_plugins.features.FeatureNetwork` (the type perceptual losses use
too; :func:`~idinvert_plugins.features.frechet_features` makes a classifier layer one); any callable
``images [N, 3, H, W] in [-1, 1] -> features [N, D]`` works with :func:`feature_statistics`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from ..features import ClassifierFeatures, FeatureNetwork, frechet_features  # noqa: F401  (re-exported)
from ..images import from_uint8

FeatureFn = Callable[[torch.Tensor], torch.Tensor]


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance between two Gaussians given by their means and covariances.

    ``tr((S1 S2)^(1/2))`` is computed as the sum of the square roots of the eigenvalues of the symmetric
    matrix ``S1^(1/2) S2 S1^(1/2)`` (same eigenvalues as ``S1 S2``), in float64; tiny negative eigenvalues
    from rounding are clipped to 0. No scipy needed, and singular covariances are fine (near-zero eigenvalues
    limit the precision to about ``sqrt(1e-16 * |S|)``).
    """
    mu1, mu2 = np.asarray(mu1, np.float64).reshape(-1), np.asarray(mu2, np.float64).reshape(-1)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"shapes do not match: mu1 {mu1.shape}, sigma1 {sigma1.shape}, mu2 {mu2.shape}, "
                         f"sigma2 {sigma2.shape}")
    sqrt1 = _psd_sqrt(sigma1)
    inner = sqrt1 @ ((sigma2 + sigma2.T) / 2) @ sqrt1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    # the distance is >= 0; rounding in the square roots of near-zero eigenvalues can dip below
    return max(float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean), 0.0)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((sigma + sigma.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def _float_batches(images: torch.Tensor | np.ndarray | Iterable, batch: int) -> Iterable[torch.Tensor]:
    """Float ``[B, C, H, W]`` batches in [-1, 1] from a tensor, a uint8 NHWC array, or an iterable of them."""
    if isinstance(images, torch.Tensor | np.ndarray):
        images = [images[i : i + batch] for i in range(0, len(images), batch)]
    for b in images:
        if isinstance(b, np.ndarray):
            if b.dtype != np.uint8:
                raise TypeError(f"numpy image batches must be uint8 NHWC, got {b.dtype}")
            b = from_uint8(b)
        elif b.dtype == torch.uint8:
            b = b.float() / 127.5 - 1.0
        yield b


@torch.no_grad()
def feature_statistics(
    images: torch.Tensor | np.ndarray | Iterable, feature_fn: FeatureFn, batch: int = 250,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` (unbiased, as ``np.cov``) of ``feature_fn`` over an image set.

    ``images``: float tensor ``[N, C, H, W]`` in [-1, 1], uint8 tensor ``NCHW``, uint8 numpy ``NHWC``, or an
    iterable of such batches (streamed: only running sums are kept). ``device``: where the batches go
    (default: left where they are).
    """
    total = None
    outer = None
    count = 0
    for b in _float_batches(images, batch):
        if device is not None:
            b = b.to(device)
        f = feature_fn(b).double().cpu()
        if f.ndim != 2:
            raise ValueError(f"feature_fn must return [N, D] features, got {list(f.shape)}")
        if total is None:
            total, outer = f.sum(0), f.T @ f
        else:
            total += f.sum(0)
            outer += f.T @ f
        count += f.shape[0]
    if count < 2:
        raise ValueError(f"feature statistics need at least 2 images, got {count}")
    mu = total / count
    sigma = (outer - count * torch.outer(mu, mu)) / (count - 1)
    return mu.numpy(), sigma.numpy()


def frechet_distance_between(images_a, images_b, feature_fn: FeatureFn, batch: int = 250) -> float:
    """Fréchet distance between two image sets in the feature space of ``feature_fn``."""
    return frechet_distance(*feature_statistics(images_a, feature_fn, batch),
                            *feature_statistics(images_b, feature_fn, batch))


def bundled_feature_network(device: str | torch.device = "cpu", domain: str | None = None) -> FeatureNetwork:
    """The ``"pool"`` features of a domain's attribute classifier (its ``classifier``; None: the default
    domain's); its Fréchet distance is called ``FD-<domain>-classifier``. Only meaningful for images of that
    domain."""
    from ..domains import get_domain
    from ..hub import load_model

    dom = get_domain(domain)
    if not dom.classifier:
        raise ValueError(f"domain {dom.name!r} declares no attribute classifier, so it has no bundled feature "
                         "network; pass a feature network of your own to feature_statistics")
    classifier = load_model(dom.classifier, kind="classifier", device=device)
    return frechet_features(classifier, "pool", name=f"FD-{dom.name}-classifier")


class InceptionFeatures(FeatureNetwork):
    """Placeholder for Inception-v3 pool features (real FID). Not implemented.

    The weights cannot be downloaded by this library, so they would have to come from a local file the user
    supplies; even then no Inception-v3 network is implemented here. For real FIDs use a dedicated tool
    (e.g. pytorch-fid or clean-fid) with its own weights.
    """

    name = "FID"
    dim = 2048

    def __init__(self, weights_path: str | Path | None = None) -> None:
        if weights_path is None:
            raise ValueError("InceptionFeatures needs weights_path=, a local file of Inception-v3 FID weights "
                             "(nothing is downloaded); for images of a registered domain use "
                             "bundled_feature_network() (FD-<domain>-classifier) instead")
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"Inception weights not found at {path}")
        raise NotImplementedError(f"Inception-v3 features are not implemented in idinvert-plugins, so {path} "
                                  "cannot be used; compute FID with a dedicated tool (pytorch-fid, clean-fid) or "
                                  "use bundled_feature_network() for images of a registered domain")

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - never constructed
        raise NotImplementedError


def feature_network(name: str, **kwargs) -> FeatureNetwork:
    """A feature network by name: ``"<domain>-classifier"`` (a registered domain's classifier, see
    :func:`bundled_feature_network`) or ``"inception"`` (needs ``weights_path=``; not implemented)."""
    from ..domains import domain_names

    names = domain_names()
    if name.endswith("-classifier") and name.removesuffix("-classifier") in names:
        return bundled_feature_network(domain=name.removesuffix("-classifier"), **kwargs)
    if name == "inception":
        return InceptionFeatures(**kwargs)
    known = ", ".join([*(repr(f"{d}-classifier") for d in names), "'inception'"])
    raise ValueError(f"unknown feature network {name!r}; available: {known}")
