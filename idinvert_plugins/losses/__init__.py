"""Loss functions: perceptual feature networks (:mod:`.perceptual`)."""

from .perceptual import (
    ClassifierFeatures,
    FeatureNetwork,
    VGG16Perceptual,
    default_feature_network,
    load_feature_network,
)

__all__ = ["ClassifierFeatures", "FeatureNetwork", "VGG16Perceptual", "default_feature_network",
           "load_feature_network"]
