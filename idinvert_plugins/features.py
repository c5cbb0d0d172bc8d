"""Feature networks: the one type behind perceptual losses and Fréchet distances.

A feature network is a fixed network F from images in [-1, 1] to features, computed per image (no batch
statistics). Perceptual losses compare two images by ``mean((F(x) - F(y))^2)`` with the network's recommended
``loss_weight`` (:mod:`idinvert_plugins.losses.perceptual`); Fréchet distances compare the Gaussian statistics
of ``F(images).flatten(1)`` over two image sets and name the metric after ``name``
(:mod:`idinvert_plugins.metrics.frechet`). Both use :class:`FeatureNetwork` and its subclasses:

* :class:`ClassifierFeatures` - a layer of any classifier with ``features(x, layer)`` (e.g. a domain's
  attribute classifier), with the resizing and flattening each use needs;
* ``VGG16Perceptual`` (in :mod:`idinvert_plugins.losses.perceptual`) - IDInvert's VGG16 ``conv4_3``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Weight for an attribute classifier's ``stage2`` features, chosen on the bundled domain's classifier so that
#: the perceptual term is of the order of the pixel term (the balance IDInvert's 5e-5 aims at for VGG16):
#: between two of its images, and between an image and a blurred, noisy copy, ``mean((F(x) - F(y))^2)`` is
#: about 2.5-3x ``mean((x - y)^2)``.
CLASSIFIER_LOSS_WEIGHT = 0.3
DEFAULT_CLASSIFIER_LAYER = "stage2"


class FeatureNetwork(nn.Module):
    """Base class: a fixed network whose features of images in [-1, 1] are compared.

    Subclasses set ``name`` (for a Fréchet distance, the metric's name) and ``loss_weight`` (the recommended
    weight of ``mean((F(x) - F(y))^2)`` next to a pixel MSE of weight 1) and implement :meth:`forward`.
    Features may be any tensor ``[N, ...]``; they must be computed per image (no batch statistics), so that
    batch inversion equals per-image inversion. ``dim`` is the number of features per image (``None`` where
    not known without running the network).
    """

    name: str = ""
    loss_weight: float = 1.0
    dim: int | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"name={self.name!r}, loss_weight={self.loss_weight}"


class ClassifierFeatures(FeatureNetwork):
    """Intermediate features of a classifier that has ``features(x, layer)`` (e.g. a domain's
    :class:`~idinvert_plugins.models.classifier.AttributeClassifier`).

    Images of another size than the classifier's ``resolution`` are resized first: by default area
    averaging when shrinking and bilinear when enlarging (what the perceptual losses were tuned with);
    ``antialias=True`` uses anti-aliased bilinear both ways (what the Fréchet distances were measured with).
    ``flatten=True`` returns ``[N, D]`` features and sets ``dim`` (a Fréchet distance needs both);
    ``freeze=True`` puts the classifier in eval mode without parameter gradients.
    """

    def __init__(self, classifier: nn.Module, layer: str = DEFAULT_CLASSIFIER_LAYER,
                 loss_weight: float = CLASSIFIER_LOSS_WEIGHT, name: str | None = None, *,
                 antialias: bool = False, flatten: bool = False, freeze: bool = False) -> None:  # fmt: skip
        super().__init__()
        names = getattr(classifier, "layer_names", None)
        if not callable(getattr(classifier, "features", None)):
            raise TypeError(f"{type(classifier).__name__} has no features(x, layer) method")
        if names is not None and layer not in names:
            raise ValueError(f"unknown feature layer {layer!r}; this classifier has {list(names)}")
        if freeze:
            classifier = classifier.eval().requires_grad_(False)
        self.classifier = classifier
        self.layer = layer
        self.loss_weight = loss_weight
        self.antialias = antialias
        self.flatten = flatten
        resolved = getattr(classifier, "resolved", None)
        base = getattr(resolved, "name", None) or getattr(classifier, "architecture", "classifier")
        self.name = name or f"{base}:{layer}"
        size = getattr(classifier, "resolution", None)
        self.resolution = None if size is None else int(size)
        if flatten and self.resolution is not None:
            with torch.no_grad():
                probe = torch.zeros(1, getattr(classifier, "img_channels", 3), self.resolution, self.resolution,
                                    device=next(classifier.parameters()).device)  # fmt: skip
                self.dim = int(classifier.features(probe, layer).flatten(1).shape[1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = self.resolution
        if size is not None and images.ndim == 4 and (images.shape[-1] != size or images.shape[-2] != size):
            if self.antialias:
                images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                                       antialias=True)  # fmt: skip
            else:
                mode = "area" if images.shape[-1] > size else "bilinear"
                images = F.interpolate(images, size=(size, size), mode=mode,
                                       **({"align_corners": False} if mode == "bilinear" else {}))  # fmt: skip
        features = self.classifier.features(images, self.layer)
        return features.flatten(1) if self.flatten else features


def frechet_features(classifier: nn.Module, layer: str = "pool", name: str = "FD-classifier"
                     ) -> ClassifierFeatures:  # fmt: skip
    """A classifier layer as the feature space of a Fréchet distance: frozen, anti-aliased resizing,
    ``[N, D]`` features (the FD-<domain>-classifier numbers in the docs were measured this way)."""
    return ClassifierFeatures(classifier, layer, name=name, antialias=True, flatten=True, freeze=True)


__all__ = ["CLASSIFIER_LOSS_WEIGHT", "DEFAULT_CLASSIFIER_LAYER", "ClassifierFeatures", "FeatureNetwork",
           "frechet_features"]  # fmt: skip
