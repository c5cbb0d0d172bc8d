"""Image and generator-quality metrics.

* :mod:`.pixel`: reconstruction metrics (:func:`mse`, :func:`psnr`, :func:`ssim`);
* :mod:`.swd`: multi-scale sliced Wasserstein distance (:func:`swd`), network-free;
* :mod:`.frechet`: Fréchet distances in a feature network's space (:func:`frechet_distance`,
  :func:`feature_statistics`, :func:`bundled_feature_network` = FD-<domain>-classifier; not FID);
* :mod:`.attributes`: attribute marginals via a classifier or a ground-truth table, and timing helpers.
"""

from __future__ import annotations

from .attributes import (
    attribute_marginals,
    compare_marginals,
    median_seconds,
    semantic_attributes,
    table_marginals,
    timer,
)
from .frechet import (
    ClassifierFeatures,
    FeatureNetwork,
    InceptionFeatures,
    bundled_feature_network,
    feature_network,
    feature_statistics,
    frechet_distance,
    frechet_distance_between,
    frechet_features,
)
from .pixel import mse, psnr, ssim
from .swd import swd

__all__ = [
    "ClassifierFeatures", "FeatureNetwork", "InceptionFeatures", "attribute_marginals", "bundled_feature_network",
    "compare_marginals", "feature_network", "feature_statistics", "frechet_distance", "frechet_distance_between",
    "frechet_features",
    "median_seconds", "mse", "psnr", "semantic_attributes", "ssim", "swd", "table_marginals", "timer",
]
