"""Synthetic "photos" of toy faces: rendered faces scaled, rotated and placed in a larger background, with the
exact landmarks of every face. The test bed of face alignment without any real photo, and the training data of
the toy-face landmark model.

:func:`place_faces` pastes given renders at given similarity transforms; :func:`random_scene` draws everything
from a seed. Landmarks are in pixels with ``(0, 0)`` the centre of the top-left pixel (see :mod:`.landmarks`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .attributes import sample_attributes
from .landmarks import landmark_array
from .painter import render


@dataclass
class Placement:
    """Where a face render goes: its frame's centre ``(cx, cy)`` in the scene, its side ``side`` in scene pixels,
    and its rotation ``angle`` in degrees (positive: clockwise on screen)."""

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    def matrix(self, resolution: int) -> np.ndarray:
        """``3 x 3``: render pixel coordinates (of a ``resolution`` render) -> scene pixel coordinates."""
        s = self.side / resolution
        a = math.radians(self.angle)
        c, si = math.cos(a) * s, math.sin(a) * s
        centre = (resolution - 1) / 2.0
        return np.array([[c, -si, self.cx - c * centre + si * centre],
                         [si, c, self.cy - si * centre - c * centre], [0.0, 0.0, 1.0]])


@dataclass
class Scene:
    """A synthetic photo: ``image`` (uint8 ``HxWx3``), the landmarks of each face ``[K, 4, 2]`` (eye_left,
    eye_right, mouth_left, mouth_right), the placements and the attributes of the faces."""

    image: np.ndarray
    landmarks: np.ndarray
    placements: list[Placement] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)


def background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A plausible backdrop ``[H, W, 3]`` uint8: a smooth colour field with a few soft shapes and grain."""
    w, h = size
    cells = rng.integers(2, 6)
    coarse = rng.uniform(0.1, 0.9, (cells, cells, 3)).astype(np.float32)
    base = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC),
                      np.float32) / 255.0
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(rng.integers(0, 6)):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.05, 0.3) * min(w, h)
        colour = rng.uniform(0.0, 1.0, 3).astype(np.float32)
        if rng.random() < 0.5:
            d = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) - r
        else:
            d = np.maximum(np.abs(xs - cx) - r, np.abs(ys - cy) - rng.uniform(0.3, 1.0) * r)
        alpha = np.clip(0.5 - d / rng.uniform(1.0, 6.0), 0.0, 1.0)[..., None] * rng.uniform(0.4, 1.0)
        base += alpha * (colour - base)
    base += rng.normal(0.0, 0.015, (h, w, 1)).astype(np.float32)
    return (np.clip(base, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _alpha(resolution: int, kind: str) -> np.ndarray:
    """The pasted part of a render: the whole square, or a feathered ellipse (head, hair and shoulders)."""
    if kind == "square":
        return np.full((resolution, resolution), 255, np.uint8)
    c = (np.arange(resolution) + 0.5) / resolution * 2.0 - 1.0
    r = np.sqrt(c[None, :] ** 2 / 0.9**2 + c[:, None] ** 2)
    return (np.clip((1.0 - r) / 0.12, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def place_faces(backdrop: np.ndarray, faces: Sequence[np.ndarray], placements: Sequence[Placement],
                landmarks: Sequence[np.ndarray], *, paste: str = "ellipse") -> tuple[np.ndarray, np.ndarray]:
    """Paste square face renders into ``backdrop`` (uint8 ``HxWx3``) at ``placements``; returns the scene and the
    faces' landmarks (``[K, 4, 2]``, given in render pixels, mapped to the scene). ``paste``: ``ellipse`` (a
    feathered oval around head and shoulders) or ``square`` (the whole render)."""
    scene = Image.fromarray(np.asarray(backdrop, np.uint8)).convert("RGBA")
    out = []
    for face, place, lm in zip(faces, placements, landmarks):
        res = face.shape[0]
        m = place.matrix(res)
        inv = np.linalg.inv(m)
        # PIL maps output pixel-edge coordinates to input ones: shift the index-coordinate matrix by half a pixel
        shift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
        pil = shift @ inv @ np.linalg.inv(shift)
        rgba = np.dstack([face, _alpha(res, paste)])
        big = 2 if place.side < res else 1  # shrinking: resample at 2x and box-filter down
        scale2 = np.array([[1.0 / big, 0.0, 0.0], [0.0, 1.0 / big, 0.0], [0.0, 0.0, 1.0]])
        coeffs = tuple((pil @ scale2)[:2].ravel())
        layer = Image.fromarray(rgba, "RGBA").transform((scene.width * big, scene.height * big),
                                                         Image.Transform.AFFINE, coeffs,
                                                         resample=Image.Resampling.BICUBIC)
        if big > 1:
            layer = layer.reduce(big)
        scene = Image.alpha_composite(scene, layer)
        pts = np.asarray(lm, np.float64)
        out.append(pts @ m[:2, :2].T + m[:2, 2])
    return np.asarray(scene.convert("RGB")), np.asarray(out, np.float64).reshape(-1, 4, 2)


def random_scene(seed: int, size: tuple[int, int] = (320, 240), faces: int = 1, *,
                 side: tuple[float, float] = (64, 160), angle: float = 25.0, resolution: int = 128,
                 paste: str | None = None, margin: float = 0.15, dataset_seed: int = 0) -> Scene:
    """A scene of ``size`` = ``(width, height)`` with ``faces`` toy faces (training faces of ``dataset_seed``,
    drawn by ``seed``), each rendered at ``resolution``, scaled to a side in ``side`` pixels, rotated by up to
    +-``angle`` degrees and placed without overlapping, at least ``margin`` of its side inside the frame."""
    rng = np.random.default_rng(seed)
    w, h = size
    backdrop = background(size, rng)
    placements: list[Placement] = []
    for _ in range(faces):
        for _attempt in range(200):
            s = float(rng.uniform(*side))
            lo = (0.5 - margin) * s
            if w - 2 * lo <= 0 or h - 2 * lo <= 0:
                continue
            p = Placement(float(rng.uniform(lo, w - lo)), float(rng.uniform(lo, h - lo)), s,
                          float(rng.uniform(-angle, angle)))
            if all(math.hypot(p.cx - q.cx, p.cy - q.cy) > 0.62 * (p.side + q.side) for q in placements):
                placements.append(p)
                break
        else:
            raise ValueError(f"cannot place {faces} faces of sides {side} in a {w}x{h} scene: make it larger")
    attrs = [sample_attributes(dataset_seed, int(rng.integers(0, 60_000))) for _ in placements]
    renders = [render(a, resolution) for a in attrs]
    lms = [landmark_array(a, resolution) for a in attrs]
    kind = paste or ("ellipse" if rng.random() < 0.6 else "square")
    image, landmarks = place_faces(backdrop, renders, placements, lms, paste=kind)
    return Scene(image, landmarks, placements, attrs)


__all__ = ["Placement", "Scene", "background", "place_faces", "random_scene"]
