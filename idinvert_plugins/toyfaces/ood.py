"""The toy faces' out-of-distribution set: extreme attributes, occluders and other head shapes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .attributes import DEFAULT_RESOLUTION, HEAD_SHAPES, OOD_KINDS, _check_seed_index, _sample
from .dataset import _write_dataset


# -- out-of-distribution set ------------------------------------------------------------------------------
def sample_ood_attributes(seed: int, index: int) -> dict[str, Any]:
    """Attributes of image ``index`` of the out-of-distribution set with ``seed``.

    The kinds cycle through :data:`OOD_KINDS`: attribute values beyond the training ranges, a hand, bar
    or blob occluding part of the face, other head shapes, off-centre / rescaled heads, strong rotation.
    The face itself is drawn from an independent random stream (not the training images).
    """
    _check_seed_index(seed, index)
    rng = np.random.default_rng([int(seed), int(index), 0x00D])
    attrs = _sample(rng)
    kind = OOD_KINDS[index % len(OOD_KINDS)]
    extra: dict[str, Any] = {"ood_kind": kind, "occluder": "none", "occluder_x": 0.0, "occluder_y": 0.0,
                             "occluder_angle": 0.0, "occluder_size": 0.0, "occluder_hue": 0.0,
                             "head_shape": "ellipse"}
    sign = lambda: float(rng.choice([-1.0, 1.0]))  # noqa: E731
    if kind == "extreme_attributes":
        pushes = {
            "smile": lambda: sign() * rng.uniform(1.4, 2.0),
            "yaw": lambda: sign() * rng.uniform(1.3, 1.8),
            "face_width": lambda: float(rng.choice([rng.uniform(-1.0, -0.4), rng.uniform(1.4, 2.0)])),
            "age": lambda: rng.uniform(1.3, 1.8),
            "skin_tone": lambda: float(rng.choice([rng.uniform(-0.3, -0.1), rng.uniform(1.1, 1.3)])),
            "face_height": lambda: float(rng.choice([rng.uniform(-1.5, -0.8), rng.uniform(1.8, 2.5)])),
        }
        for name in rng.choice(list(pushes), size=2, replace=False):
            attrs[name] = float(pushes[name]())
    elif kind.startswith("occluder_"):
        occluder = kind.split("_", 1)[1]
        extra.update(occluder=occluder, occluder_x=rng.uniform(-0.3, 0.3), occluder_y=rng.uniform(-0.2, 0.35),
                     occluder_angle=rng.uniform(-0.6, 0.6), occluder_size=rng.uniform(0.9, 1.5),
                     occluder_hue=rng.uniform())
        if occluder == "hand":
            extra["occluder_y"] = rng.uniform(0.05, 0.4)
    elif kind == "head_shape":
        extra["head_shape"] = HEAD_SHAPES[1 + int(rng.integers(len(HEAD_SHAPES) - 1))]
    elif kind == "off_centre":
        attrs["head_x"] = sign() * rng.uniform(3.0, 6.0)
        attrs["head_y"] = rng.uniform(-4.0, 5.0)
        attrs["head_scale"] = float(rng.choice([rng.uniform(-5.0, -3.0), rng.uniform(2.5, 4.0)]))
    elif kind == "rotated":
        attrs["roll"] = sign() * rng.uniform(2.5, 5.0)
    attrs.update({k: (float(v) if isinstance(v, float | np.floating) else v) for k, v in extra.items()})
    return attrs


def render_ood(out_dir: str | os.PathLike, n: int = 200, seed: int = 0, resolution: int = DEFAULT_RESOLUTION,
               workers: int = 1, progress: bool = True) -> Path:
    """Render the out-of-distribution set (:func:`sample_ood_attributes`) with the layout of
    :func:`render_dataset`; ``split`` is ``"ood"`` and the extra columns are :data:`OOD_COLUMNS`
    (``ood_kind`` names the kind)."""
    return _write_dataset(out_dir, n, seed, resolution, workers, progress, ood=True, sampler=sample_ood_attributes)
