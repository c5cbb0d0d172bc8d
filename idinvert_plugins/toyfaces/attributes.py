"""The toy faces' attribute schema and sampling: the attributes, their classes and ranges, labels, and the
attribute draws of dataset images and of the out-of-distribution set's kinds' constants."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..domain_spec import AttributeSpec

FORMAT = "idinvert-toyfaces"


#: Bumped whenever the attribute sampling or the drawing changes (the same seed then gives other images).
FORMAT_VERSION = 1


DEFAULT_RESOLUTION = 64


RESOLUTIONS = (16, 32, 64, 128, 256)


#: FFHQ protocol of the IDInvert paper: of 70,000 images the first 65,000 train, the last 5,000 test.
TEST_FRACTION = 5000 / 70000


HAIR_COLORS = ("black", "brown", "blond", "red", "auburn")


HAIR_STYLES = ("bald", "short", "long", "bun")


BACKGROUNDS = ("red", "yellow", "green", "cyan", "blue", "magenta")


EYE_COLORS = ("brown", "blue", "green", "grey")


HAIR_PARTS = ("left", "center", "right")


GLASSES_STYLES = ("round", "square")


GLASSES_COLORS = ("black", "brown", "gold", "red")


# Sampling probabilities of the categorical attributes (same order as the class names).
_HAIR_COLOR_P = (0.28, 0.30, 0.20, 0.11, 0.11)


_HAIR_STYLE_P = (0.10, 0.40, 0.35, 0.15)


_EYE_COLOR_P = (0.45, 0.25, 0.15, 0.15)


EYEGLASSES_P = 0.3


# The attribute schema's type is the domain contract's (idinvert_plugins.domain_spec), so the core reads it.


def _continuous(name, low, high, description, positive="", threshold=None, nuisance=False):
    return AttributeSpec(name, "continuous", (low, high), description, positive, threshold, nuisance)


def _categorical(name, classes, description, nuisance=False):
    return AttributeSpec(name, "categorical", tuple(classes), description, nuisance=nuisance)


#: Every recorded attribute, in CSV column order. Semantic ones first, then nuisance factors.
ATTRIBUTES: tuple[AttributeSpec, ...] = (
    _continuous("smile", -1.0, 1.0, "mouth curvature; > 0 corners up (open, teeth from ~0.3), < 0 frown",
                "smiling", 0.0),
    AttributeSpec("eyeglasses", "binary", (0, 1), "glasses on (about 30 % of faces)", "eyeglasses", 0.5),
    _categorical("hair_color", HAIR_COLORS, "hair hue before greying"),
    _categorical("hair_style", HAIR_STYLES, "bald (fringe at the ears), short cap, long (to shoulders), bun"),
    _continuous("hair_length", 0.0, 1.0, "length within the style: cap thickness, drape length, bun size",
                "longer hair (within its style)", 0.5),
    _continuous("skin_tone", 0.0, 1.0, "0 = very light, 1 = very dark", "dark skin", 0.5),
    _continuous("face_width", 0.0, 1.0, "head ellipse width (narrow to wide, squarer jaw)", "wide face", 0.5),
    _continuous("yaw", -1.0, 1.0, "head turn, about +-31 degrees; > 0 the face turns to the image's right",
                "facing right", 0.0),
    _continuous("age", 0.0, 1.0, "grey hair from ~0.3, wrinkles from ~0.45, slightly paler skin", "old", 0.5),
    _categorical("background", BACKGROUNDS, "background hue bin (nearest of six hues, 60 degrees each)"),
    _continuous("background_hue", 0.0, 1.0, "background hue (HSV, 0 = red)"),
    _continuous("background_saturation", 0.0, 1.0, "background colourfulness", nuisance=True),
    _continuous("background_value", 0.0, 1.0, "background brightness", nuisance=True),
    _continuous("light_x", -1.0, 1.0, "light direction, > 0 lit from the image's right", nuisance=True),
    _continuous("light_y", -1.0, 1.0, "light direction, > 0 lit from below", nuisance=True),
    _continuous("light_strength", 0.0, 1.0, "contrast of the shading", nuisance=True),
    _categorical("eye_color", EYE_COLORS, "iris colour", nuisance=True),
    _continuous("eyebrow_arch", 0.0, 1.0, "eyebrow curvature", nuisance=True),
    _continuous("eyebrow_thickness", 0.0, 1.0, "eyebrow stroke width", nuisance=True),
    _continuous("eyebrow_tilt", -1.0, 1.0, "> 0 outer ends higher", nuisance=True),
    _continuous("mouth_width", 0.0, 1.0, "mouth width", nuisance=True),
    _continuous("face_height", 0.0, 1.0, "head ellipse height", nuisance=True),
    _continuous("head_x", -1.0, 1.0, "small horizontal offset of the head", nuisance=True),
    _continuous("head_y", -1.0, 1.0, "small vertical offset of the head", nuisance=True),
    _continuous("head_scale", -1.0, 1.0, "small change of head size (+-6 %)", nuisance=True),
    _continuous("roll", -1.0, 1.0, "in-plane head tilt (+-5 degrees)", nuisance=True),
    _continuous("gaze", -1.0, 1.0, "iris offset inside the eye", nuisance=True),
    _categorical("hair_part", HAIR_PARTS, "side of the hair parting", nuisance=True),
    _continuous("hairline", 0.0, 1.0, "hairline height (0 = low)", nuisance=True),
    _categorical("glasses_style", GLASSES_STYLES, "frame shape (drawn only with eyeglasses)", nuisance=True),
    _categorical("glasses_color", GLASSES_COLORS, "frame colour (drawn only with eyeglasses)", nuisance=True),
    _continuous("lens_tint", 0.0, 1.0, "lens darkness (drawn only with eyeglasses)", nuisance=True),
    _continuous("blush", 0.0, 1.0, "cheek redness", nuisance=True),
    _continuous("shirt_hue", 0.0, 1.0, "clothing hue", nuisance=True),
    _continuous("shirt_value", 0.0, 1.0, "clothing brightness", nuisance=True),
)


ATTRIBUTE_SPECS: dict[str, AttributeSpec] = {s.name: s for s in ATTRIBUTES}


#: Render parameters that are not attributes: the seed of the background texture and the sensor grain.
RENDER_PARAMS = ("texture_seed",)


#: Extra columns of the out-of-distribution set (see :func:`render_ood`).
OOD_KINDS = ("extreme_attributes", "occluder_hand", "occluder_bar", "occluder_blob", "head_shape",
             "off_centre", "rotated")


OCCLUDERS = ("none", "hand", "bar", "blob")


HEAD_SHAPES = ("ellipse", "square", "round", "pear", "narrow")


OOD_COLUMNS = ("ood_kind", "occluder", "occluder_x", "occluder_y", "occluder_angle", "occluder_size",
               "occluder_hue", "head_shape")


# -- labels --------------------------------------------------------------------------------------------
def category_index(name: str, value: str | int) -> int:
    """The class index of a categorical attribute value given as its name or its index."""
    classes = ATTRIBUTE_SPECS[name].classes
    if isinstance(value, str):
        if value not in classes:
            raise ValueError(f"{value!r} is not a class of {name!r}; classes: {', '.join(classes)}")
        return classes.index(value)
    value = int(value)
    if not 0 <= value < len(classes):
        raise ValueError(f"class index {value} out of range for {name!r} ({len(classes)} classes)")
    return value


def category_name(name: str, value: str | int) -> str:
    """The class name of a categorical attribute value given as its name or its index."""
    return ATTRIBUTE_SPECS[name].classes[category_index(name, value)]


def binary_label(name: str, value: Any, positive: str | None = None) -> Any:
    """Turn an attribute value (a scalar or an array) into the 0/1 label used for editing directions.

    Continuous attributes compare with their threshold (``smile > 0`` smiling, ``yaw > 0`` facing right,
    ``age > 0.5`` old, ...; see :attr:`AttributeSpec.positive`). Binary attributes pass through.
    Categorical attributes need ``positive``, the class counted as 1 (e.g. ``binary_label("hair_color",
    codes, positive="blond")``); values may be class names or indices. Returns an int for a scalar and an
    int64 array for an array.
    """
    if name not in ATTRIBUTE_SPECS:
        raise KeyError(f"unknown attribute {name!r}")
    spec = ATTRIBUTE_SPECS[name]
    scalar = np.ndim(value) == 0
    if spec.kind == "categorical":
        if positive is None:
            raise ValueError(f"{name!r} is categorical: pass positive= one of {', '.join(spec.classes)}")
        target = category_index(name, positive)
        values = np.asarray(value).reshape(-1)
        codes = np.array([category_index(name, v.item() if hasattr(v, "item") else v) for v in values])
        labels = (codes == target).astype(np.int64).reshape(np.shape(value))
    else:
        if positive is not None:
            raise ValueError(f"positive= only applies to categorical attributes, not {name!r}")
        labels = (np.asarray(value, dtype=np.float64) > spec.threshold).astype(np.int64)
    return int(labels) if scalar else labels


# -- attribute sampling -----------------------------------------------------------------------------------
def _choice(rng: np.random.Generator, classes: Sequence[str], p: Sequence[float]) -> str:
    return classes[int(np.searchsorted(np.cumsum(p), rng.random() * sum(p), side="right"))]


def _check_seed_index(seed: int, index: int) -> None:
    if int(seed) < 0 or int(index) < 0:
        raise ValueError(f"seed and index must be non-negative integers, got seed={seed}, index={index}")


def _sample(rng: np.random.Generator) -> dict[str, Any]:
    """Draw one face's attributes. The draw order is part of the format: changing it changes datasets."""
    u = rng.uniform
    a: dict[str, Any] = {}
    a["smile"] = u(-1.0, 1.0)
    a["eyeglasses"] = int(rng.random() < EYEGLASSES_P)
    a["hair_color"] = _choice(rng, HAIR_COLORS, _HAIR_COLOR_P)
    a["hair_style"] = _choice(rng, HAIR_STYLES, _HAIR_STYLE_P)
    a["hair_length"] = u()
    a["skin_tone"] = u()
    a["face_width"] = u()
    a["yaw"] = u(-1.0, 1.0)
    a["age"] = u()
    hue = u()
    a["background"] = BACKGROUNDS[int(math.floor(hue * 6 + 0.5)) % 6]
    a["background_hue"] = hue
    a["background_saturation"] = u()
    a["background_value"] = u()
    a["light_x"] = u(-1.0, 1.0)
    a["light_y"] = u(-1.0, 1.0)
    a["light_strength"] = u()
    a["eye_color"] = _choice(rng, EYE_COLORS, _EYE_COLOR_P)
    a["eyebrow_arch"] = u()
    a["eyebrow_thickness"] = u()
    a["eyebrow_tilt"] = u(-1.0, 1.0)
    a["mouth_width"] = u()
    a["face_height"] = u()
    a["head_x"] = u(-1.0, 1.0)
    a["head_y"] = u(-1.0, 1.0)
    a["head_scale"] = u(-1.0, 1.0)
    a["roll"] = u(-1.0, 1.0)
    a["gaze"] = u(-1.0, 1.0)
    a["hair_part"] = HAIR_PARTS[int(rng.integers(3))]
    a["hairline"] = u()
    a["glasses_style"] = GLASSES_STYLES[int(rng.integers(2))]
    a["glasses_color"] = GLASSES_COLORS[int(rng.integers(4))]
    a["lens_tint"] = u()
    a["blush"] = u()
    a["shirt_hue"] = u()
    a["shirt_value"] = u()
    a["texture_seed"] = int(rng.integers(2**31 - 1))
    return {k: (float(v) if isinstance(v, float) else v) for k, v in a.items()}


def sample_attributes(seed: int, index: int) -> dict[str, Any]:
    """The attributes of image ``index`` of the dataset with ``seed``: a flat dict with every
    :data:`ATTRIBUTES` entry (floats, 0/1 ints, class names) plus ``texture_seed``."""
    _check_seed_index(seed, index)
    return _sample(np.random.default_rng([int(seed), int(index)]))
