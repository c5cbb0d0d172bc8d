"""Where the painter puts a toy face's landmarks: the ground truth of the toy-face landmark model and of the
alignment tests.

:func:`landmarks` gives the eye centres and mouth corners of the face :func:`~.painter.render` draws from the
same attributes, in the pixel coordinates of the rendered frame (``(0, 0)`` is the centre of the top-left pixel,
as in dlib and OpenCV). They are the four points FFHQ alignment uses (the eye centres are the means of the six
eye-contour points of the 68-point scheme there; here the centre of the eye white the painter draws).
"Left" is the image's left: ``eye_left`` is the subject's right eye, as in FFHQ's ``eye_left``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .attributes import DEFAULT_RESOLUTION
from .painter import _EYE_LONGITUDE, _FacePainter, _smooth01

#: the landmark names, in the order of :func:`landmark_array`
LANDMARK_NAMES: tuple[str, ...] = ("eye_left", "eye_right", "mouth_left", "mouth_right")


def _to_pixels(p: _FacePainter, x: float, y: float) -> tuple[float, float]:
    """Head-local ``(x, y)`` -> pixel coordinates of the frame (pixel centres at integers)."""
    c, s = math.cos(p.roll), math.sin(p.roll)
    gx = p.cx + p.zoom * (c * x - s * y)
    gy = p.cy + p.zoom * (s * x + c * y)
    scale = p.res / 2.0
    return (gx + 1.0) * scale - 0.5, (gy + 1.0) * scale - 0.5


def landmarks(attrs: Mapping[str, Any], resolution: int = DEFAULT_RESOLUTION) -> dict[str, tuple[float, float]]:
    """The eye centres and mouth corners of the face drawn from ``attrs`` at ``resolution``, in pixels.

    The formulas are the painter's own (:meth:`~.painter._FacePainter.eye` and ``mouth``): the centre of each eye
    white, and the two points where the upper and lower lip meet."""
    p = _FacePainter(attrs, resolution)
    out: dict[str, tuple[float, float]] = {}
    for side, name in ((-1, "eye_left"), (1, "eye_right")):
        x, _ = p.lon(side * _EYE_LONGITUDE)
        out[name] = _to_pixels(p, x + side * 0.005, p.eye_y)
    s = p.smile
    xm = 1.03 * p.lon(0.0)[0]
    hw = (0.09 + 0.06 * float(attrs["mouth_width"])) * math.cos(p.yaw) * (1.0 + 0.15 * max(s, 0.0))
    corner_y = p.mouth_y + 0.065 * s * (1.0 / 3.0 - 1.0)  # the lips' top line at q = +-1
    _ = _smooth01  # the opening (teeth) does not move the corners
    out["mouth_left"] = _to_pixels(p, xm - hw, corner_y)
    out["mouth_right"] = _to_pixels(p, xm + hw, corner_y)
    return out


def landmark_array(attrs: Mapping[str, Any], resolution: int = DEFAULT_RESOLUTION) -> np.ndarray:
    """:func:`landmarks` as a float64 ``[4, 2]`` array in the order of :data:`LANDMARK_NAMES`."""
    points = landmarks(attrs, resolution)
    return np.array([points[n] for n in LANDMARK_NAMES], dtype=np.float64)


__all__ = ["LANDMARK_NAMES", "landmark_array", "landmarks"]
