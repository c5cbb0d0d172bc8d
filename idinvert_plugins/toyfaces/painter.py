"""The toy-face painter: signed-distance drawing primitives and the face itself; :func:`render` turns
attributes into pixels."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from .attributes import (
    ATTRIBUTE_SPECS,
    DEFAULT_RESOLUTION,
    RENDER_PARAMS,
    RESOLUTIONS,
    category_index,
    category_name,
    sample_attributes,
)


# -- drawing primitives ---------------------------------------------------------------------------------
def _clamp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    # np.clip's Python wrapper costs more than the arithmetic on these small arrays
    return np.minimum(np.maximum(x, lo), hi)


def _cover(d: np.ndarray, width: float) -> np.ndarray:
    """Coverage of the shape ``d <= 0`` with a linear ramp ``width`` wide centred on the edge (one pixel
    wide is box-filter anti-aliasing of a straight edge; wider ramps make soft shadows)."""
    return _clamp(0.5 - d * (1.0 / width), 0.0, 1.0)


def _ellipse(u: np.ndarray, v: np.ndarray, rx: float, ry: float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse centred at the origin (first order: exact
    on the boundary, which is all anti-aliasing needs)."""
    a = u * (1.0 / rx)
    b = v * (1.0 / ry)
    grad = np.sqrt((a * (1.0 / rx)) ** 2 + (b * (1.0 / ry)) ** 2) + 1e-6
    return (a * a + b * b - 1.0) / (2.0 * grad)


def _superellipse(u: np.ndarray, v: np.ndarray, rx: float, ry: float, p: float) -> np.ndarray:
    """Approximate signed distance to ``|u/rx|^p + |v/ry|^p = 1`` (p = 2: ellipse, large p: box)."""
    a = np.abs(u) * (1.0 / rx) + 1e-6
    b = np.abs(v) * (1.0 / ry) + 1e-6
    ap, bp = a**p, b**p
    grad = p * np.sqrt((ap / a / rx) ** 2 + (bp / b / ry) ** 2) + 1e-6
    return (ap + bp - 1.0) / grad


def _circle(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    return np.sqrt(u * u + v * v) - r


def _segment(u: np.ndarray, v: np.ndarray, p0: tuple[float, float], p1: tuple[float, float],
             r: float) -> np.ndarray:
    """Signed distance to a capsule: the segment ``p0``-``p1`` thickened by ``r``."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    pu, pv = u - p0[0], v - p0[1]
    t = _clamp((pu * dx + pv * dy) * (1.0 / (dx * dx + dy * dy + 1e-12)), 0.0, 1.0)
    return np.sqrt((pu - t * dx) ** 2 + (pv - t * dy) ** 2) - r


def _box(u: np.ndarray, v: np.ndarray, hw: float | np.ndarray, hh: float, r: float = 0.0) -> np.ndarray:
    """Signed distance to a centred box of half sizes ``hw``, ``hh`` with corners rounded by ``r``."""
    qx = np.abs(u) - (hw - r)
    qy = np.abs(v) - (hh - r)
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - r


def _rotate(u: np.ndarray, v: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(angle), math.sin(angle)
    return c * u + s * v, -s * u + c * v


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV (each in [0, 1], hue wraps around) to an RGB float32 vector."""
    k = (np.array([5.0, 3.0, 1.0]) + (h % 1.0) * 6.0) % 6.0
    return (v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)).astype(np.float32)


def _mix(a: Sequence[float], b: Sequence[float], t: float) -> np.ndarray:
    return (np.asarray(a, np.float32) * (1.0 - t) + np.asarray(b, np.float32) * t).astype(np.float32)


def _smooth01(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def _lambert(nx: np.ndarray, ny: np.ndarray, light: np.ndarray, ambient: float) -> np.ndarray:
    """Diffuse shading of a bulging surface whose normal has in-plane part ``(nx, ny)``, each in [-1, 1]."""
    nx = _clamp(nx, -1.0, 1.0)
    ny = _clamp(ny, -1.0, 1.0)
    nz = np.sqrt(np.maximum(1.0 - nx * nx - ny * ny, 0.0))
    lit = np.maximum(nx * light[0] + ny * light[1] + nz * light[2], 0.0)
    return ambient + (1.08 * (1.0 - ambient)) * lit


@lru_cache(maxsize=8)
def _frame_coords(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``x``, ``y`` (``[res, res]``, in [-1, 1], ``y`` down). Read-only."""
    c = ((np.arange(resolution) + 0.5) * (2.0 / resolution) - 1.0).astype(np.float32)
    x = np.broadcast_to(c[None, :], (resolution, resolution)).copy()
    y = np.broadcast_to(c[:, None], (resolution, resolution)).copy()
    x.flags.writeable = y.flags.writeable = False
    return x, y


@lru_cache(maxsize=8)
def _upsample_matrix(size: int, cells: int) -> np.ndarray:
    """Bilinear interpolation matrix ``[size, cells]`` that stretches a coarse grid over the frame."""
    pos = (np.arange(size) + 0.5) / size * (cells - 1)
    lo = np.minimum(np.floor(pos).astype(int), cells - 2)
    t = pos - lo
    m = np.zeros((size, cells), np.float32)
    m[np.arange(size), lo] = 1.0 - t
    m[np.arange(size), lo + 1] = t
    m.flags.writeable = False
    return m


class _Region:
    """A rectangle of the image (a view: painting writes through) with the frame coordinates ``x, y``
    and the head-local coordinates ``u, v`` of its pixels."""

    def __init__(self, painter: _FacePainter, rows: slice, cols: slice) -> None:
        self.img = painter.img[rows, cols]
        self.x, self.y = painter.x[rows, cols], painter.y[rows, cols]
        self.u, self.v = painter.u[rows, cols], painter.v[rows, cols]
        self.head = painter.head_cover[rows, cols] if painter.head_cover is not None else None

    def paint(self, alpha: np.ndarray, colour: np.ndarray | Sequence[float], opacity: float = 1.0) -> None:
        """Alpha-composite ``colour`` (an RGB vector or an ``[h, w, 3]`` image) with coverage ``alpha``."""
        a = alpha[..., None] * np.float32(opacity) if opacity != 1.0 else alpha[..., None]
        self.img += a * (np.asarray(colour, np.float32) - self.img)

    def shade(self, alpha: np.ndarray, factor: float) -> None:
        """Multiply the image by ``factor`` where ``alpha`` covers it (shadows, highlights)."""
        self.img *= (1.0 + alpha * np.float32(factor - 1.0))[..., None]


# -- the face -------------------------------------------------------------------------------------------
_SKIN_PALETTE = np.array([[0.98, 0.85, 0.76], [0.92, 0.72, 0.58], [0.78, 0.55, 0.40],
                          [0.55, 0.36, 0.24], [0.33, 0.21, 0.14]], np.float32)


_HAIR_RGB = {"black": (0.09, 0.08, 0.08), "brown": (0.36, 0.22, 0.12), "blond": (0.88, 0.72, 0.42),
             "red": (0.80, 0.36, 0.13), "auburn": (0.48, 0.13, 0.10)}


_GREY_HAIR = (0.80, 0.80, 0.82)


_EYE_RGB = {"brown": (0.33, 0.19, 0.09), "blue": (0.24, 0.46, 0.78), "green": (0.28, 0.55, 0.30),
            "grey": (0.52, 0.56, 0.60)}


_FRAME_RGB = {"black": (0.06, 0.06, 0.07), "brown": (0.32, 0.18, 0.09), "gold": (0.78, 0.62, 0.25),
              "red": (0.65, 0.08, 0.10)}


_ZOOM = 1.5  # head-local units to frame units


# Features sit on a sphere: at longitude theta (radians from the face's midline) they are drawn at
# x = rx * sin(theta + yaw) and foreshortened by cos(theta + yaw), which is what makes yaw visible.
_EYE_LONGITUDE = 0.42


_EAR_LONGITUDE = 1.7


def _skin_rgb(tone: float) -> np.ndarray:
    t = min(max(tone, -0.2), 1.2) * (len(_SKIN_PALETTE) - 1)
    i = min(max(math.floor(t), 0), len(_SKIN_PALETTE) - 2)
    return _mix(_SKIN_PALETTE[i], _SKIN_PALETTE[i + 1], t - i).clip(0.0, 1.0)


class _FacePainter:
    """Draws one face, back to front (:meth:`draw`).

    Faces are modelled in head-local units: origin at the head centre, ``v`` down, rotated by the head
    roll, the head ellipse about 0.33 x 0.42; ``zoom`` magnifies them into the frame so the head fills
    ~60 % of it, like an aligned FFHQ crop. Large layers (background, hair, head) are computed over the
    whole frame, small features only inside a :class:`_Region` around them.
    """

    def __init__(self, attrs: Mapping[str, Any], resolution: int) -> None:
        self.a = attrs
        g = float
        self.res = resolution
        self.rng = np.random.default_rng(int(attrs["texture_seed"]))
        self.img = np.zeros((resolution, resolution, 3), np.float32)
        self.x, self.y = _frame_coords(resolution)

        # geometry
        self.zoom = _ZOOM * (1.0 + 0.06 * g(attrs["head_scale"]))
        self.px = (2.0 / resolution) / self.zoom  # one pixel in head-local units: the anti-aliasing ramp
        self.cx = 0.05 * g(attrs["head_x"])
        self.cy = 0.04 * g(attrs["head_y"])
        self.roll = 0.09 * g(attrs["roll"])
        self.yaw = 0.55 * g(attrs["yaw"])
        self.rx = 0.29 + 0.08 * g(attrs["face_width"])
        self.ry = 0.39 + 0.05 * g(attrs["face_height"])
        self.jaw = 0.22 - 0.14 * g(attrs["face_width"])  # how much the head narrows towards the chin
        self.shape = attrs.get("head_shape", "ellipse")
        if self.shape == "round":
            self.rx = self.ry = 0.5 * (self.rx + self.ry)
            self.jaw = 0.0
        elif self.shape == "narrow":
            self.rx *= 0.68
        elif self.shape == "pear":
            self.jaw = -0.35
        elif self.shape == "square":
            self.jaw = 0.0
        u, v = _rotate(self.x - self.cx, self.y - self.cy, self.roll)
        self.u, self.v = u * (1.0 / self.zoom), v * (1.0 / self.zoom)
        self.eye_y = -0.06 * self.ry
        self.nose_y = 0.32 * self.ry
        self.mouth_y = 0.6 * self.ry
        self.head_cover: np.ndarray | None = None

        # light and colours
        light = np.array([0.8 * g(attrs["light_x"]), 0.6 * g(attrs["light_y"]) - 0.35, 1.0])
        self.light = light / np.linalg.norm(light)
        self.ambient = 0.62 - 0.3 * g(attrs["light_strength"])
        self.smile = g(attrs["smile"])
        age = g(attrs["age"])
        self.grey = _smooth01((age - 0.28) / 0.55)
        self.wrinkles = min(max((age - 0.42) / 0.5, 0.0), 1.0)
        skin = _skin_rgb(g(attrs["skin_tone"]))
        self.skin = _mix(skin, skin.mean() * np.ones(3), 0.2 * self.wrinkles)
        hair = np.array(_HAIR_RGB[category_name("hair_color", attrs["hair_color"])], np.float32)
        self.hair_rgb = _mix(hair, _GREY_HAIR, 0.92 * self.grey)
        self.brow_rgb = _mix(hair * 0.65, _GREY_HAIR, 0.75 * self.grey)
        self.style = category_name("hair_style", attrs["hair_style"])
        self.length = g(attrs["hair_length"])

    # -- helpers
    def full(self) -> _Region:
        return _Region(self, slice(None), slice(None))

    def region(self, x: float, y: float, hw: float, hh: float) -> _Region:
        """The pixels around the head-local box centred at ``(x, y)`` with half sizes ``hw``, ``hh``."""
        c, s = math.cos(self.roll), math.sin(self.roll)
        gx = self.cx + self.zoom * (c * x - s * y)
        gy = self.cy + self.zoom * (s * x + c * y)
        ex = self.zoom * (abs(c) * hw + abs(s) * hh)
        ey = self.zoom * (abs(s) * hw + abs(c) * hh)
        scale = self.res / 2.0

        def span(lo: float, hi: float) -> slice:
            start = min(max(math.floor((lo + 1.0) * scale) - 1, 0), self.res)
            return slice(start, min(max(math.ceil((hi + 1.0) * scale) + 1, start), self.res))

        return _Region(self, span(gy - ey, gy + ey), span(gx - ex, gx + ex))

    def lon(self, theta: float) -> tuple[float, float]:
        """Horizontal position and foreshortening of a feature at longitude ``theta`` on the head."""
        t = min(max(theta + self.yaw, -1.5), 1.5)
        return self.rx * math.sin(t), math.cos(t) / math.cos(theta)

    def strands(self, r: _Region, freq: float, phase: float) -> np.ndarray:
        """Hair strand texture: stripes fanning out from above the crown."""
        angle = np.arctan2(r.u - 0.3 * self.rx * math.sin(self.yaw), r.v + 1.4 * self.ry)
        return (0.88 + 0.07 * np.sin(angle * freq + (phase + 6.0 * r.v))
                + 0.05 * np.sin(angle * (1.73 * freq) + (2.0 * phase + 11.0 * r.v)))

    # -- layers, back to front
    def background(self) -> None:
        r, a, rng = self.full(), self.a, self.rng
        hue = float(a["background_hue"])
        sat = 0.22 + 0.45 * float(a["background_saturation"])
        val = 0.45 + 0.45 * float(a["background_value"])
        base = _hsv(hue, sat, val)
        other = _hsv(hue + rng.uniform(-0.07, 0.07), sat * 0.7, val * 0.85)
        m = _upsample_matrix(self.res, 5)
        blend = _clamp(0.5 + 0.35 * (m @ rng.standard_normal((5, 5)).astype(np.float32) @ m.T), 0.0, 1.0)
        angle = rng.uniform(0.0, 2.0 * math.pi)
        light = 1.0 + 0.12 * (math.cos(angle) * r.x + math.sin(angle) * r.y) - 0.18 * (r.x * r.x + r.y * r.y)
        r.img[:] = base
        r.paint(blend, other)
        r.img *= light[..., None]
        # soft drop shadow of the head on the wall, away from the light
        z = self.zoom
        shadow = _ellipse(r.x - self.cx + 0.12 * self.light[0], r.y - self.cy - 0.03, self.rx * z * 1.2,
                          self.ry * z * 1.1)
        r.shade(_cover(shadow, 0.3), 0.8)

    def back_hair(self) -> None:
        if self.style == "long":
            r = self.full()
            bottom = self.ry * (0.25 + 1.05 * self.length)
            w = self.rx + 0.06 + 0.03 * self.length
            wave = 0.012 * np.sin(40.0 * r.v + 3.0 * self.length)
            top = _ellipse(r.u, r.v + 0.04, w, self.ry + 0.06)
            body = _box(r.u, r.v - 0.5 * bottom, w + wave, 0.5 * bottom + 1e-3, 0.05)
            shade = _lambert(r.u * (0.9 / w), 0.0 * r.v, self.light, self.ambient)
            colour = self.hair_rgb * (0.8 * shade * self.strands(r, 30.0, 1.0))[..., None]
            r.paint(_cover(np.minimum(top, body), self.px), colour)
        elif self.style == "bun":
            size = 0.085 + 0.05 * self.length
            bx, by = -0.4 * self.rx * math.sin(self.yaw), -self.ry - 0.2 * size
            r = self.region(bx, by, size + 0.02, size + 0.02)
            u, v = r.u - bx, r.v - by
            shade = _lambert(u / (size + 0.01), v / (size + 0.01), self.light, self.ambient)
            colour = self.hair_rgb * (shade * self.strands(r, 24.0, 2.0))[..., None]
            r.paint(_cover(_circle(u, v, size), self.px), colour)

    def neck(self) -> None:
        r = self.full()
        hw = 0.42 * self.rx + 0.02
        u, v = r.u - 0.2 * self.rx * math.sin(self.yaw), r.v - (self.ry + 0.1)
        shade = _lambert(u * (0.8 / hw), 0.0 * v, self.light, self.ambient)
        # the chin's shadow darkens the top of the neck
        shade *= 1.0 - 0.45 * _clamp(1.0 - (r.v - 0.75 * self.ry) * 5.0, 0.0, 1.0)
        r.paint(_cover(_box(u, v, hw, 0.5, 0.02), self.px), (self.skin * 0.93) * shade[..., None])

    def shirt(self) -> None:
        r, z = self.full(), self.zoom
        hue, val = float(self.a["shirt_hue"]), 0.25 + 0.6 * float(self.a["shirt_value"])
        rgb = _hsv(hue, 0.25 + 0.45 * ((hue * 7.0) % 1.0), val)
        top = self.cy + (self.ry + 0.1) * z
        x, y = r.x - 0.7 * self.cx, r.y - (top + 0.5 * z)
        neckline = _ellipse(r.x - self.cx - 0.2 * z * self.rx * math.sin(self.yaw), r.y - top + 0.02 * z,
                            0.15 * z, 0.1 * z)
        d = np.maximum(_ellipse(x, y, 0.9 * z, 0.5 * z), -neckline)
        shade = _lambert(x * (1.0 / (0.8 * z)), y * (1.0 / (0.5 * z)), self.light, self.ambient)
        r.paint(_cover(d, 2.0 / self.res), rgb * shade[..., None])

    def ear(self, side: int, front: bool) -> None:
        x = self.rx * math.sin(side * _EAR_LONGITUDE + self.yaw)
        facing = math.cos(side * _EAR_LONGITUDE + self.yaw) + 0.2
        if front and facing < 0.05:
            return
        y = self.eye_y + 0.1 * self.ry
        r = self.region(x * 1.02, y, 0.1, 0.11)
        u, v = r.u - x * 1.02, r.v - y
        w = 0.045 + 0.03 * max(facing, 0.0)
        alpha = _cover(_ellipse(u, v, w, 0.085), self.px)
        if front:
            alpha *= min(1.0, facing * 6.0)
        lit = max(0.2, 0.7 * side * self.light[0] + 0.5)
        colour = self.skin * 0.9 * (self.ambient + (1.0 - self.ambient) * lit)
        r.paint(alpha, colour)
        inner = _ellipse(u + side * 0.01, v, 0.5 * w, 0.05)
        r.paint(_cover(inner, 2.0 * self.px) * alpha, colour * 0.72, 0.7)

    def head_sdf(self, r: _Region) -> np.ndarray:
        low = _clamp(r.v * (1.0 / self.ry), 0.0, 1.0)
        taper = 1.0 - self.jaw * low * low  # egg shape: narrower towards the chin
        u = (r.u - 0.3 * self.rx * math.sin(self.yaw) * low) / taper  # a turned head's chin follows the nose
        if self.shape == "square":
            return _superellipse(u, r.v, self.rx, self.ry, 4.0)
        return _ellipse(u, r.v, self.rx, self.ry)

    def head(self) -> None:
        r = self.full()
        self.head_cover = _cover(self.head_sdf(r), self.px)
        shade = _lambert(r.u * (1.0 / self.rx), r.v * (1.0 / self.ry), self.light, self.ambient)
        r.paint(self.head_cover, self.skin * shade[..., None])
        for side in (-1, 1):  # a little redness on the cheeks
            x, _ = self.lon(side * 0.55)
            y = 0.32 * self.ry
            c = self.region(x, y, 0.14, 0.11)
            cheek = _cover(_ellipse(c.u - x, c.v - y, 0.08, 0.055), 0.09) * c.head
            c.paint(cheek, (0.85, 0.35, 0.35), 0.08 + 0.22 * float(self.a["blush"]))

    def eye(self, side: int) -> None:
        theta = side * _EYE_LONGITUDE
        x, fs = self.lon(theta)
        x += side * 0.005
        y = self.eye_y
        rx = 0.066 * fs
        ry = 0.038 * (1.0 - 0.3 * max(self.smile, 0.0))  # smiling narrows the eyes
        r = self.region(x, y, 0.14, 0.12)
        u, v = r.u - x, r.v - y
        # the socket's shading gives the eye some depth
        r.shade(_cover(_ellipse(u, v + 0.01, rx * 1.6, ry * 2.3), 0.05) * r.head, 0.86)
        white = _ellipse(u, v, rx, ry)
        r.paint(_cover(white, self.px), (0.95, 0.94, 0.91))
        gx = (0.35 * float(self.a["gaze"]) + 0.3 * math.sin(self.yaw)) * rx
        ri = 0.032
        iris = np.maximum(_ellipse(u - gx, v, ri * fs, ri), white)
        r.paint(_cover(iris, self.px), _EYE_RGB[category_name("eye_color", self.a["eye_color"])])
        pupil = np.maximum(_ellipse(u - gx, v, 0.45 * ri * fs, 0.45 * ri), white)
        r.paint(_cover(pupil, self.px), (0.04, 0.03, 0.03))
        glint = _circle(u - gx - 0.35 * ri * self.light[0], v + 0.35 * ri, 0.3 * ri)
        r.paint(_cover(glint, self.px), (1.0, 1.0, 1.0), 0.7)
        # upper lid and lashes: a dark line along the top of the eye outline
        lid = np.maximum(np.abs(white) - 0.009, v - 0.3 * ry)
        r.paint(_cover(lid, self.px), (0.12, 0.08, 0.07), 0.9)

    def eyebrow(self, side: int) -> None:
        x, fs = self.lon(side * (_EYE_LONGITUDE + 0.03))
        hw = 0.075 * fs
        y = self.eye_y - 0.095
        r = self.region(x, y - 0.02, hw + 0.02, 0.065)
        q = _clamp((r.u - x) * (1.0 / hw), -1.0, 1.0)
        arch = 0.012 + 0.03 * float(self.a["eyebrow_arch"])
        tilt = 0.02 * float(self.a["eyebrow_tilt"])
        centre = y - arch * (1.0 - q * q) - tilt * side * q
        half = (0.008 + 0.012 * float(self.a["eyebrow_thickness"])) * np.sqrt(np.maximum(1.0 - q**4, 0.0))
        d = np.maximum(np.abs(r.v - centre) - half, np.abs(r.u - x) - hw)
        r.paint(_cover(d, self.px), self.brow_rgb, 0.92)

    def nose(self) -> None:
        tip_x = 1.12 * self.rx * math.sin(self.yaw)
        top = (0.9 * self.rx * math.sin(self.yaw), self.eye_y + 0.05)
        r = self.region(tip_x, 0.5 * (top[1] + self.nose_y + 0.03), 0.1, 0.5 * (self.nose_y - top[1]) + 0.06)
        # the shadowed side of the nose: away from the light, or the far side when the head is turned
        side = 1.0 if self.yaw < -0.05 else -1.0 if self.yaw > 0.05 else -math.copysign(1.0, self.light[0])
        ridge = _segment(r.u - side * 0.028, r.v, top, (tip_x, self.nose_y), 0.006)
        r.shade(_cover(ridge, 0.035) * r.head, 0.8)
        under = _ellipse(r.u - tip_x, r.v - (self.nose_y + 0.012), 0.05, 0.016)
        r.shade(_cover(under, 0.03) * r.head, 0.78)
        for s in (-1, 1):
            nostril = _ellipse(r.u - tip_x - s * 0.024 * math.cos(self.yaw), r.v - self.nose_y, 0.012, 0.007)
            r.shade(_cover(nostril, self.px), 0.55)
        r.shade(_cover(_circle(r.u - tip_x, r.v - self.nose_y + 0.025, 0.018), 0.05), 1.1)

    def mouth(self) -> None:
        s = self.smile
        xm = 1.03 * self.lon(0.0)[0]
        hw = (0.09 + 0.06 * float(self.a["mouth_width"])) * math.cos(self.yaw) * (1.0 + 0.15 * max(s, 0.0))
        bend = 0.065 * s  # how far the corners rise above the centre
        opening = 0.055 * _smooth01((s - 0.25) / 0.75)  # smiles open the mouth and show the teeth
        r = self.region(xm, self.mouth_y + 0.01, hw + 0.03, abs(bend) + opening + 0.06)
        q = _clamp((r.u - xm) * (1.0 / hw), -1.0, 1.0)
        taper = 1.0 - q * q
        top = self.mouth_y + bend * (1.0 / 3.0 - q * q)
        bottom = top + 0.014 * np.sqrt(1.0 - q**4) + opening * taper
        side = np.abs(r.u - xm) - hw
        lips = _mix(self.skin, (0.72, 0.25, 0.27), 0.45)
        upper = np.maximum(np.maximum(top - 0.018 * taper - r.v, r.v - top), side)
        lower = np.maximum(np.maximum(bottom - r.v, r.v - bottom - 0.026 * np.sqrt(taper)), side)
        r.paint(_cover(np.minimum(upper, lower), self.px), lips, 0.75)
        inner = np.maximum(np.maximum(top - r.v, r.v - bottom), side)
        r.paint(_cover(inner, self.px), (0.28, 0.07, 0.08))
        if opening > 0:
            teeth = np.maximum(inner, r.v - top - 0.45 * opening * taper)
            r.paint(_cover(teeth, self.px), (0.96, 0.94, 0.88))

    def age_lines(self) -> None:
        """Forehead lines, bags under the eyes and nose-to-mouth folds, darker with age."""
        w = self.wrinkles
        if w <= 0.0:
            return
        fx = 0.2 * self.rx * math.sin(self.yaw)
        r = self.region(fx, -0.48 * self.ry, 0.55 * self.rx, 0.12 * self.ry)
        for k, y in enumerate((-0.42, -0.53)):
            line = np.maximum(np.abs(r.v - (y * self.ry + 0.05 * (r.u * (1.0 / self.rx)) ** 2)) - 0.006,
                              np.abs(r.u - fx) - (0.5 - 0.08 * k) * self.rx)
            r.shade(_cover(line, self.px) * r.head, 1.0 - 0.35 * w)
        xm = self.lon(0.0)[0]
        for side in (-1, 1):
            x_eye = self.lon(side * _EYE_LONGITUDE)[0]
            r = self.region(x_eye, self.eye_y + 0.03, 0.08, 0.06)
            bag = np.maximum(np.abs(_ellipse(r.u - x_eye, r.v - self.eye_y - 0.012, 0.06, 0.045)) - 0.005,
                             self.eye_y + 0.03 - r.v)
            r.shade(_cover(bag, self.px), 1.0 - 0.3 * w)
            p0 = (xm * 1.1 + side * 0.07, self.nose_y - 0.02)
            p1 = (xm * 1.03 + side * 0.12, self.mouth_y + 0.03)
            r = self.region(0.5 * (p0[0] + p1[0]), 0.5 * (p0[1] + p1[1]), 0.05, 0.5 * (p1[1] - p0[1]) + 0.03)
            r.shade(_cover(_segment(r.u, r.v, p0, p1, 0.007), self.px) * r.head, 1.0 - 0.4 * w)

    def hair(self) -> None:
        """Hair in front of the head: the cap, the fringe around the ears (bald) or long curtains."""
        r, style, L = self.full(), self.style, self.length
        thick = {"bald": 0.02, "short": 0.025 + 0.045 * L, "long": 0.06 + 0.02 * L, "bun": 0.025}[style]
        ox = -0.12 * self.rx * math.sin(self.yaw)  # more of the hair shows on the back of the head
        outer = _ellipse(r.u - ox, r.v + 0.25 * thick, self.rx + thick, self.ry + thick)
        # the face shows through a window whose top edge is the hairline, tilted by the parting
        part = category_index("hair_part", self.a["hair_part"]) - 1
        wx = 0.4 * self.rx * math.sin(self.yaw) + 0.08 * self.rx * part
        wu, wv = _rotate(r.u - wx, r.v - 0.24 * self.ry, -0.18 * part)
        window = _ellipse(wu, wv, 0.93 * self.rx, self.ry * (0.88 + 0.1 * float(self.a["hairline"])))
        if style == "long":
            window = np.minimum(window, np.maximum(np.abs(r.u - wx) - 0.86 * self.rx, 0.1 * self.ry - r.v))
            cut = self.ry * (0.25 + 1.05 * L)
        else:
            cut = self.eye_y + (0.07 if style == "bald" else 0.03)
        d = np.maximum(np.maximum(outer, -window), r.v - cut)
        if style == "bald":  # only a fringe around the ears remains
            sides = [_ellipse(r.u - s * self.rx * 0.95 - ox, r.v - self.eye_y, 0.3 * self.rx, 0.3 * self.ry)
                     for s in (-1, 1)]
            d = np.maximum(d, np.minimum(*sides))
        elif style == "long":  # curtains down to the shoulders beside the face
            curtains = _box(r.u - ox, r.v - 0.5 * cut, self.rx + thick, 0.5 * cut, 0.05)
            d = np.minimum(d, np.maximum(curtains, 0.86 * self.rx - np.abs(r.u - wx)))
        cover = _cover(d, self.px)
        # the hair casts a soft shadow on the forehead just below the hairline
        r.shade(_cover(d - 0.02, 0.06) * r.head * (1.0 - cover), 0.75)
        shade = _lambert((r.u - ox) * (1.0 / (self.rx + thick)), r.v * (0.9 / (self.ry + thick)), self.light,
                         self.ambient)
        r.paint(cover, self.hair_rgb * (shade * self.strands(r, 26.0, 0.0))[..., None])

    def glasses(self) -> None:
        frame = _FRAME_RGB[category_name("glasses_color", self.a["glasses_color"])]
        square = category_name("glasses_style", self.a["glasses_style"]) == "square"
        y = self.eye_y + 0.004
        r = self.region(0.0, y, self.rx * 1.05, 0.1)
        rims, lenses, ends = [], [], []
        for side in (-1, 1):
            x, fs = self.lon(side * _EYE_LONGITUDE)
            lx, ly = 0.092 * fs, 0.072
            u, v = r.u - x, r.v - y
            lens = _box(u, v, lx, ly, 0.035) if square else _ellipse(u, v, lx, ly)
            lenses.append(lens)
            rims.append(np.abs(lens) - 0.014)
            ends.append((x - lx, x + lx))
        lens = np.minimum(*lenses)
        r.paint(_cover(lens, self.px), (0.12, 0.13, 0.18), 0.06 + 0.5 * float(self.a["lens_tint"]))
        r.paint(_cover(lens + 0.02, 0.04), (1.0, 1.0, 1.0), 0.12)  # a faint reflection on the glass
        bridge = _segment(r.u, r.v, (ends[0][1], y - 0.02), (ends[1][0], y - 0.02), 0.012)
        d = np.minimum(np.minimum(*rims), bridge)
        for side, (x0, x1) in zip((-1, 1), ends):
            start = x0 if side < 0 else x1
            # the arm runs back to the ear, or to the silhouette when the ear is behind the head
            edge = side * self.rx * min(0.99, abs(math.sin(side * _EAR_LONGITUDE + self.yaw)))
            if side * (edge - start) > 0.0:
                d = np.minimum(d, _segment(r.u, r.v, (start, y - 0.03), (edge, y - 0.02), 0.01))
        r.paint(_cover(d, self.px), frame)

    def occluder(self) -> None:
        """Out-of-distribution occluders (a hand, a bar, a blob), in frame coordinates."""
        kind = self.a.get("occluder", "none")
        if kind == "none":
            return
        r, a = self.full(), self.a
        size, hue = float(a["occluder_size"]), float(a["occluder_hue"])
        u, v = _rotate(r.x - float(a["occluder_x"]), r.y - float(a["occluder_y"]), float(a["occluder_angle"]))
        if kind == "hand":
            d = _box(u, v, 0.13 * size, 0.12 * size, 0.05 * size)  # palm, four fingers and a thumb
            for k in range(4):
                fx, length = (-0.09 + 0.06 * k) * size, (0.17 + 0.04 * (k in (1, 2))) * size
                finger = _segment(u, v, (fx, -0.05 * size), (fx, -0.05 * size - length), 0.027 * size)
                d = np.minimum(d, finger)
            thumb = _segment(u, v, (0.1 * size, 0.04 * size), (0.22 * size, -0.06 * size), 0.03 * size)
            d = np.minimum(d, thumb)
            shade = _lambert(u / (0.3 * size), v / (0.4 * size), self.light, 0.5)
            colour = _skin_rgb(hue) * shade[..., None]
        elif kind == "bar":
            d = _box(u, v, 2.0, 0.08 * size, 0.01)
            colour = _hsv(hue, 0.7, 0.8) * (0.9 + 0.1 * _clamp(u, -1.0, 1.0))[..., None]
        else:
            d = np.full(u.shape, 10.0, np.float32)
            for k in range(6):
                t = 2.0 * math.pi * k / 6 + float(a["occluder_angle"])
                radius = (0.08 + 0.05 * ((k * 0.37 + size) % 1.0)) * size
                lobe = _circle(u - 0.09 * size * math.cos(t), v - 0.09 * size * math.sin(t), radius)
                d = np.minimum(d, lobe)
            colour = _hsv(hue, 0.6, 0.55)
        r.paint(_cover(d, 2.0 / self.res), colour)

    def draw(self) -> np.ndarray:
        self.background()
        self.back_hair()
        self.neck()
        self.shirt()
        for side in (-1, 1):
            self.ear(side, front=False)
        self.head()
        for side in (-1, 1):
            self.ear(side, front=True)
        self.age_lines()
        self.nose()
        for side in (-1, 1):
            self.eye(side)
            self.eyebrow(side)
        self.mouth()
        self.hair()
        if int(self.a["eyeglasses"]):
            self.glasses()
        self.occluder()
        # sensor grain, so that flat regions are not perfectly flat
        self.img += 0.01 * self.rng.standard_normal((self.res, self.res, 1), dtype=np.float32)
        return self.img


def _check_resolution(resolution: int) -> int:
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be a power of two from 16 to 256, got {resolution}")
    return int(resolution)


def render(attrs: Mapping[str, Any], resolution: int = DEFAULT_RESOLUTION) -> np.ndarray:
    """Render the face described by ``attrs`` (as from :func:`sample_attributes`; categorical values may
    be names or class indices) to a ``uint8 [resolution, resolution, 3]`` RGB image."""
    resolution = _check_resolution(resolution)
    missing = [name for name in (*ATTRIBUTE_SPECS, *RENDER_PARAMS) if name not in attrs]
    if missing:
        raise KeyError(f"attributes missing: {', '.join(missing)}")
    img = _FacePainter(attrs, resolution).draw()
    return (_clamp(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def render_index(seed: int, index: int, resolution: int = DEFAULT_RESOLUTION) -> tuple[np.ndarray, dict]:
    """Image ``index`` of the dataset with ``seed``, and its attributes."""
    attrs = sample_attributes(seed, index)
    return render(attrs, resolution), attrs
