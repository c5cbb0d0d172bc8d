"""Loss functions: perceptual feature networks (:mod:`.perceptual`)."""

from .perceptual import (
    ClassifierFeatures,
    FeatureNetwork,
    VGG16Perceptual,
    load_feature_network,
)

__all__ = ["ClassifierFeatures", "FeatureNetwork", "VGG16Perceptual", "load_feature_network"]
