"""FFHQ-style face alignment that keeps its transform, and the paste-back that undoes it.

The alignment NVIDIA used to make FFHQ (``recreate_aligned_images`` in ``ffhq-dataset``; the same code in pSp,
e4e, HyperStyle) takes four points of a face, the two eye centres and the two mouth corners, and cuts an
oriented square (the *quad*) out of the photo:

* ``eye_to_eye``, ``eye_to_mouth`` from the points; ``x = eye_to_eye - rot90(eye_to_mouth)``, normalised and
  scaled to ``max(2.0 |eye_to_eye|, 1.8 |eye_to_mouth|)``; ``y = rot90(x)``;
* centre ``c = eye_avg + 0.1 eye_to_mouth``; quad ``[c-x-y, c-x+y, c+x+y, c+x-y]`` (top-left, bottom-left,
  bottom-right, top-right corner of the crop);
* where the quad leaves the photo, the photo is reflect-padded and blended towards a blurred copy and its
  median colour, so no hard mirror edge shows; then the quad is resampled to the output size (downscaling
  with a box prefilter, so small outputs of large faces do not alias).

A :class:`Template` generalises the two constants (the quad's size and centre), because a generator trained on
other framings (one showing the whole head, like a looser FFHQ crop) needs its own; ``ffhq`` is the original,
and a domain declares the templates of its framing (``Domain.templates``). Unlike the original code,
:func:`align_face` returns an :class:`AlignTransform`: the quad in photo coordinates, the crop size and the photo
size, a JSON-serialisable record from which :func:`paste_back` warps an (edited) crop back into the
full-resolution photo, blended with a feathered face mask so that every pixel outside the mask keeps its exact
value.

Coordinates are pixels with ``(0, 0)`` the centre of the top-left pixel (dlib, OpenCV), ``x`` right, ``y`` down.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

TRANSFORM_FORMAT = "idinvert-align-1"
LANDMARK_NAMES: tuple[str, ...] = ("eye_left", "eye_right", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Template:
    """Where an aligned face sits in the crop: FFHQ's quad with its size multiplied by ``scale`` and its centre
    at ``eye_avg + shift * eye_to_mouth``; and the blend mask of paste-back, an ellipse (centre ``mask_center``,
    radii ``mask_radii``, both as fractions of the crop side) whose edge fades to zero over ``mask_feather``
    (a fraction of the radii)."""

    name: str = "ffhq"
    scale: float = 1.0
    shift: float = 0.1
    mask_center: tuple[float, float] = (0.5, 0.52)
    mask_radii: tuple[float, float] = (0.42, 0.46)
    mask_feather: float = 0.25

    def __post_init__(self) -> None:
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError(f"template {self.name!r}: scale must be a positive number, got {self.scale}")
        (cx, cy), (rx, ry) = self.mask_center, self.mask_radii
        if not (0 < rx and 0 < ry and cx - rx >= 0 and cx + rx <= 1 and cy - ry >= 0 and cy + ry <= 1):
            raise ValueError(f"template {self.name!r}: the mask ellipse must lie inside the crop (centre "
                             f"{self.mask_center}, radii {self.mask_radii} as fractions of its side)")
        if not 0 < self.mask_feather <= 1:
            raise ValueError(f"template {self.name!r}: mask_feather must be in (0, 1], got {self.mask_feather}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Template:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in ("mask_center", "mask_radii"):
            if key in known:
                known[key] = tuple(float(v) for v in known[key])
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown template key(s) {unknown}; the keys are {', '.join(cls.__dataclass_fields__)}")
        return cls(**known)


#: FFHQ's own constants (e4e / pSp / HyperStyle crops)
FFHQ = Template()
#: the templates of the core by name; domains declare the templates of their framing (``Domain.templates``), which
#: :func:`idinvert_plugins.align.get_template` finds by name too
TEMPLATES: dict[str, Template] = {t.name: t for t in (FFHQ,)}


def get_template(spec: str | Template | Mapping[str, Any] | None) -> Template:
    """A template of the core by name (``ffhq``), as a dict of its fields, or itself; None is ``ffhq``. (The
    templates of the registered domains by name: :func:`idinvert_plugins.align.photo.get_template`.)"""
    if spec is None:
        return FFHQ
    if isinstance(spec, Template):
        return spec
    if isinstance(spec, Mapping):
        return Template.from_dict(spec)
    if spec not in TEMPLATES:
        raise ValueError(f"unknown alignment template {spec!r}; known: {', '.join(TEMPLATES)} (or give its numbers: "
                         "{\"scale\": 1.0, \"shift\": 0.1})")
    return TEMPLATES[spec]


def as_points(landmarks: Any) -> np.ndarray:
    """Four points ``[4, 2]`` (eye_left, eye_right, mouth_left, mouth_right) from a ``[4, 2]`` array, a dict with
    those keys, a 5-point array (left eye, right eye, nose, left mouth, right mouth: RetinaFace/MTCNN order) or a
    68-point dlib array (eye centres as the means of points 36-41 and 42-47, mouth corners 48 and 54)."""
    if isinstance(landmarks, Mapping):
        missing = [n for n in LANDMARK_NAMES if n not in landmarks]
        if missing:
            raise ValueError(f"landmarks need the keys {', '.join(LANDMARK_NAMES)}; missing {', '.join(missing)}")
        pts = np.array([landmarks[n] for n in LANDMARK_NAMES], dtype=np.float64)
    else:
        pts = np.asarray(landmarks, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"landmarks must be N x 2 points (N = 4, 5 or 68), got shape {pts.shape}")
        if pts.shape[0] == 68:
            pts = np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[48], pts[54]])
        elif pts.shape[0] == 5:
            pts = pts[[0, 1, 3, 4]]
        elif pts.shape[0] != 4:
            raise ValueError(f"landmarks must have 4 (eyes and mouth corners), 5 (RetinaFace order) or 68 (dlib) "
                             f"points, got {pts.shape[0]}")
    if pts.shape != (4, 2) or not np.isfinite(pts).all():
        raise ValueError(f"landmarks must be four finite points, got {pts.tolist()}")
    return pts


def face_quad(landmarks: Any, template: str | Template | None = None) -> np.ndarray:
    """The oriented square ``[4, 2]`` (top-left, bottom-left, bottom-right, top-right corners, photo pixels)
    that FFHQ alignment cuts around a face with these landmarks (see the module docstring)."""
    t = get_template(template)
    eye_l, eye_r, mouth_l, mouth_r = as_points(landmarks)
    eye_avg = (eye_l + eye_r) * 0.5
    eye_to_eye = eye_r - eye_l
    mouth_avg = (mouth_l + mouth_r) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    norm = np.hypot(*x)
    if norm < 1e-6:
        raise ValueError("degenerate landmarks: the eyes and the mouth coincide")
    x /= norm
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8) * t.scale
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * t.shift
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def fit_template(landmarks: Any, size: int, name: str = "custom", **mask: Any) -> Template:
    """The template that maps faces with ``landmarks`` (``[N, 4, 2]``, or ``[N, 5|68, 2]``) in ``size`` x ``size``
    training images onto those images: the median over the faces of the scale and centre shift for which the FFHQ
    quad is the whole image. For a generator trained on framings of your own; ``mask`` sets the mask fields."""
    scales, shifts = [], []
    centre = np.array([size / 2.0 - 0.5] * 2)
    for lm in np.asarray(landmarks, dtype=np.float64):
        pts = as_points(lm)
        quad = face_quad(pts, Template(scale=1.0, shift=0.0))
        half = np.hypot(*(quad[3] - quad[0])) / 2.0
        eye_avg = pts[:2].mean(0)
        e2m = pts[2:].mean(0) - eye_avg
        scales.append(size / 2.0 / half)
        shifts.append(float((centre - eye_avg) @ e2m / (e2m @ e2m)))
    if not scales:
        raise ValueError("fit_template needs the landmarks of at least one face")
    return Template(name=name, scale=round(float(np.median(scales)), 3), shift=round(float(np.median(shifts)), 3),
                    **mask)


@dataclass
class AlignTransform:
    """How an aligned crop sits in its photo: enough to undo the alignment (:func:`paste_back`).

    ``quad``: the photo coordinates of the crop's outer corners (top-left, bottom-left, bottom-right,
    top-right); ``size``: the crop's side in pixels; ``photo_size``: ``(width, height)`` of the photo (after
    EXIF orientation); ``landmarks``: the four points it was made from; ``template``: the template's fields;
    ``face``: the face's index in the photo; ``aligner``: who found the landmarks. :meth:`to_dict` /
    :meth:`save` write JSON; :meth:`from_dict` / :meth:`load` read it back."""

    quad: np.ndarray
    size: int
    photo_size: tuple[int, int]
    landmarks: np.ndarray | None = None
    template: dict[str, Any] = field(default_factory=lambda: FFHQ.to_dict())
    face: int = 0
    aligner: str = ""
    score: float | None = None

    def __post_init__(self) -> None:
        self.quad = np.asarray(self.quad, dtype=np.float64).reshape(4, 2)
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, dtype=np.float64).reshape(4, 2)
        self.size = int(self.size)
        self.photo_size = (int(self.photo_size[0]), int(self.photo_size[1]))
        if self.size < 1:
            raise ValueError(f"crop size must be positive, got {self.size}")

    # -- the affine map -------------------------------------------------------------------------------------
    def crop_to_photo(self) -> np.ndarray:
        """``3 x 3`` matrix taking crop pixel coordinates to photo pixel coordinates."""
        q0, q1, _, q3 = self.quad
        ex, ey = (q3 - q0) / self.size, (q1 - q0) / self.size  # one crop pixel along x and y, in the photo
        origin = q0 + 0.5 * ex + 0.5 * ey  # the centre of crop pixel (0, 0)
        return np.array([[ex[0], ey[0], origin[0]], [ex[1], ey[1], origin[1]], [0.0, 0.0, 1.0]])

    def photo_to_crop(self) -> np.ndarray:
        """``3 x 3`` matrix taking photo pixel coordinates to crop pixel coordinates."""
        return np.linalg.inv(self.crop_to_photo())

    def to_photo(self, points: Any) -> np.ndarray:
        """Crop pixel coordinates ``[N, 2]`` -> photo pixel coordinates."""
        return _apply(self.crop_to_photo(), points)

    def to_crop(self, points: Any) -> np.ndarray:
        """Photo pixel coordinates ``[N, 2]`` -> crop pixel coordinates."""
        return _apply(self.photo_to_crop(), points)

    @property
    def scale(self) -> float:
        """Photo pixels per crop pixel."""
        return float(np.hypot(*(self.quad[3] - self.quad[0])) / self.size)

    @property
    def angle(self) -> float:
        """The face's in-plane rotation in the photo, degrees (positive: clockwise on screen)."""
        dx, dy = self.quad[3] - self.quad[0]
        return math.degrees(math.atan2(dy, dx))

    def resized(self, size: int) -> AlignTransform:
        """The same quad for a crop of another size."""
        return AlignTransform(self.quad, size, self.photo_size, self.landmarks, dict(self.template), self.face,
                              self.aligner, self.score)

    # -- JSON ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": TRANSFORM_FORMAT, "size": self.size, "photo_size": list(self.photo_size),
                               "quad": self.quad.round(4).tolist(), "face": self.face, "aligner": self.aligner,
                               "template": dict(self.template)}
        if self.landmarks is not None:
            out["landmarks"] = {n: p for n, p in zip(LANDMARK_NAMES, self.landmarks.round(4).tolist())}
        if self.score is not None:
            out["score"] = round(float(self.score), 4)
        out["crop_to_photo"] = self.crop_to_photo()[:2].round(6).tolist()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlignTransform:
        fmt = data.get("format")
        if fmt != TRANSFORM_FORMAT:
            raise ValueError(f"not an alignment transform (format {fmt!r}, expected {TRANSFORM_FORMAT!r}): write one "
                             "with `idinvert align PHOTO -o DIR`")
        try:
            lms = data.get("landmarks")
            return cls(quad=np.asarray(data["quad"], dtype=np.float64), size=int(data["size"]),
                       photo_size=tuple(data["photo_size"]),
                       landmarks=as_points(lms) if lms is not None else None,
                       template=dict(data.get("template") or FFHQ.to_dict()), face=int(data.get("face", 0)),
                       aligner=str(data.get("aligner", "")), score=data.get("score"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad alignment transform: {exc}") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> AlignTransform:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{path}: no such transform file") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not JSON ({exc}): give the .json `idinvert align` wrote") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} does not hold a transform object")
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def _apply(matrix: np.ndarray, points: Any) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    flat = pts.reshape(-1, 2)
    out = flat @ matrix[:2, :2].T + matrix[:2, 2]
    return out.reshape(pts.shape)


def make_transform(landmarks: Any, size: int, photo_size: tuple[int, int], template: str | Template | None = None,
                   *, face: int = 0, aligner: str = "", score: float | None = None) -> AlignTransform:
    """The :class:`AlignTransform` of FFHQ alignment (with ``template``) of a face with ``landmarks`` in a photo of
    ``photo_size`` = ``(width, height)`` to a ``size`` x ``size`` crop."""
    t = get_template(template)
    pts = as_points(landmarks)
    return AlignTransform(face_quad(pts, t), size, photo_size, pts, t.to_dict(), face, aligner, score)


# -- resampling ------------------------------------------------------------------------------------------------
def _as_float(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``HxWx3`` uint8 / float array -> float32 ``[1, 3, H, W]`` in 0..255."""
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        if t.ndim == 3 and t.shape[0] == 3:  # [3, H, W] in [-1, 1]
            return ((t + 1.0) * 127.5)[None]
        raise ValueError(f"tensor images must be [3, H, W] in [-1, 1], got {tuple(t.shape)}")
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"images must be H x W x 3 (RGB), got shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(2, 0, 1)[None]


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def _gaussian_blur(t: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma < 0.3:
        return t
    radius = max(1, int(math.ceil(3.0 * sigma)))
    radius = min(radius, t.shape[-1] - 1, t.shape[-2] - 1)
    xs = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (xs / sigma) ** 2)
    k = (k / k.sum()).to(t)
    c = t.shape[1]
    t = F.conv2d(F.pad(t, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(t, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1),
                    groups=c)


def _box_reduce(t: torch.Tensor, k: int) -> torch.Tensor:
    """Average ``k x k`` blocks (edge-replicated to a multiple of ``k``): pixel centre ``x`` goes to
    ``(x + 0.5) / k - 0.5``."""
    if k <= 1:
        return t
    h, w = t.shape[-2:]
    ph, pw = (-h) % k, (-w) % k
    if ph or pw:
        t = F.pad(t, (0, pw, 0, ph), mode="replicate")
    return F.avg_pool2d(t, k)


def _reduce_matrix(k: int) -> np.ndarray:
    return np.array([[1.0 / k, 0.0, 0.5 / k - 0.5], [0.0, 1.0 / k, 0.5 / k - 0.5], [0.0, 0.0, 1.0]])


def _sample(src: torch.Tensor, dst_to_src: np.ndarray, height: int, width: int) -> torch.Tensor:
    """Resample ``src`` ``[1, C, H, W]`` onto a ``height x width`` grid whose pixel ``(x, y)`` is at
    ``dst_to_src @ (x, y, 1)`` in ``src``: box prefilter by the whole part of the scale, then bilinear with 2x2
    supersampling when still shrinking, bicubic when enlarging. Outside ``src`` the border pixels repeat."""
    m = np.asarray(dst_to_src, dtype=np.float64)
    s = math.sqrt(abs(np.linalg.det(m[:2, :2])))  # source pixels per destination pixel
    k = int(s) if s >= 2.0 else 1
    if k > 1:
        src = _box_reduce(src, k)
        m = _reduce_matrix(k) @ m
        s /= k
    sub = 2 if s > 1.0 else 1
    ys, xs = torch.meshgrid(torch.arange(height * sub, dtype=torch.float64),
                            torch.arange(width * sub, dtype=torch.float64), indexing="ij")
    xs, ys = (xs + 0.5) / sub - 0.5, (ys + 0.5) / sub - 0.5
    mt = torch.from_numpy(m)
    px = mt[0, 0] * xs + mt[0, 1] * ys + mt[0, 2]
    py = mt[1, 0] * xs + mt[1, 1] * ys + mt[1, 2]
    h, w = src.shape[-2:]
    grid = torch.stack([(px + 0.5) / w * 2.0 - 1.0, (py + 0.5) / h * 2.0 - 1.0], dim=-1)[None].to(src.dtype)
    mode = "bilinear" if sub > 1 else "bicubic"
    out = F.grid_sample(src, grid, mode=mode, padding_mode="border", align_corners=False)
    if sub > 1:
        out = F.avg_pool2d(out, sub)
    return out


def align_face(photo: np.ndarray | torch.Tensor, transform: AlignTransform) -> np.ndarray:
    """Cut the aligned crop ``transform.size`` x ``transform.size`` (uint8 ``HxWx3``) out of ``photo`` (uint8
    ``HxWx3``): where the quad leaves the photo, FFHQ's reflect padding blended towards a blur and the median
    colour fills in."""
    src = _as_float(photo)
    h, w = src.shape[-2:]
    if (w, h) != transform.photo_size:
        raise ValueError(f"the photo is {w}x{h} but the transform was made for {transform.photo_size[0]}x"
                         f"{transform.photo_size[1]}")
    m = transform.crop_to_photo()
    s = transform.scale
    k = int(s) if s >= 2.0 else 1
    if k > 1:
        src = _box_reduce(src, k)
        m = _reduce_matrix(k) @ m
    quad = _apply(m, np.array([[-0.5, -0.5], [-0.5, transform.size - 0.5], [transform.size - 0.5] * 2,
                               [transform.size - 0.5, -0.5]]))
    qsize = transform.scale * transform.size / k
    h, w = src.shape[-2:]
    # crop to the quad's bounding box plus a border, then pad where it leaves the photo (FFHQ's steps 3-4)
    border = max(int(round(qsize * 0.1)), 3)
    lo = np.floor(quad.min(0)).astype(int) - border
    hi = np.ceil(quad.max(0)).astype(int) + border + 1
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], w), min(hi[1], h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("the face lies outside the photo")
    src = src[..., y0:y1, x0:x1]
    m = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]]) @ m
    pad = [max(x0 - lo[0], 0), max(y0 - lo[1], 0), max(hi[0] - x1, 0), max(hi[1] - y1, 0)]  # left top right bottom
    if max(pad) > 0:
        pad = [max(p, int(round(qsize * 0.3))) for p in pad]
        src = _reflect_pad_blend(src, pad, qsize)
        m = np.array([[1.0, 0.0, pad[0]], [0.0, 1.0, pad[1]], [0.0, 0.0, 1.0]]) @ m
    return _to_uint8(_sample(src, m, transform.size, transform.size))


def _reflect_pad_blend(src: torch.Tensor, pad: Sequence[int], qsize: float) -> torch.Tensor:
    """FFHQ's padding: reflect, then blend towards a blurred copy near and beyond the edge and towards the median
    colour beyond it."""
    left, top, right, bottom = (int(p) for p in pad)
    h, w = src.shape[-2:]
    while left >= w or right >= w or top >= h or bottom >= h:  # reflect needs pad < size: grow in steps
        step = [min(left, w - 1), min(top, h - 1), min(right, w - 1), min(bottom, h - 1)]
        src = F.pad(src, (step[0], step[2], step[1], step[3]), mode="reflect")
        left, top, right, bottom = left - step[0], top - step[1], right - step[2], bottom - step[3]
        h, w = src.shape[-2:]
    src = F.pad(src, (left, right, top, bottom), mode="reflect")
    H, W = src.shape[-2:]
    L, T, R, B = (max(int(p), 1) for p in pad)
    ys = torch.arange(H, dtype=torch.float32)[:, None]
    xs = torch.arange(W, dtype=torch.float32)[None, :]
    mask = torch.maximum(1.0 - torch.minimum(xs / L, (W - 1 - xs) / R), 1.0 - torch.minimum(ys / T, (H - 1 - ys) / B))
    blur = _gaussian_blur(src, qsize * 0.02)
    src = src + (blur - src) * (mask * 3.0 + 1.0).clamp(0.0, 1.0)
    median = src.flatten(2).median(dim=2).values[..., None, None]
    return src + (median - src) * mask.clamp(0.0, 1.0)


# -- paste-back ------------------------------------------------------------------------------------------------
def crop_mask(transform: AlignTransform, points: np.ndarray) -> np.ndarray:
    """The feathered face mask (in [0, 1]) of the transform's template at crop coordinates ``points [..., 2]``:
    1 inside the ellipse's inner part, fading to exactly 0 at its edge and beyond."""
    t = get_template(transform.template)
    n = transform.size
    u = (points[..., 0] + 0.5) / n
    v = (points[..., 1] + 0.5) / n
    r = np.sqrt(((u - t.mask_center[0]) / t.mask_radii[0]) ** 2 + ((v - t.mask_center[1]) / t.mask_radii[1]) ** 2)
    a = np.clip((1.0 - r) / t.mask_feather, 0.0, 1.0)
    return a * a * (3.0 - 2.0 * a)  # smoothstep: no visible seam at either end of the ramp


def photo_mask(transform: AlignTransform) -> np.ndarray:
    """The blend mask of :func:`paste_back` over the whole photo, float ``[H, W]`` in [0, 1] (0 where nothing is
    pasted)."""
    w, h = transform.photo_size
    mask = np.zeros((h, w), np.float64)
    box = _mask_box(transform)
    if box is None:
        return mask
    x0, y0, x1, y1 = box
    ys, xs = np.mgrid[y0:y1, x0:x1]
    crop_pts = transform.to_crop(np.stack([xs, ys], axis=-1).astype(np.float64))
    mask[y0:y1, x0:x1] = crop_mask(transform, crop_pts)
    return mask


def _mask_box(transform: AlignTransform) -> tuple[int, int, int, int] | None:
    """The photo pixels the mask can touch (the quad's bounding box, clipped to the photo)."""
    w, h = transform.photo_size
    q = transform.quad
    x0, y0 = np.floor(q.min(0)).astype(int) - 1
    x1, y1 = np.ceil(q.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    return None if x1 <= x0 or y1 <= y0 else (int(x0), int(y0), int(x1), int(y1))


def paste_back(photo: np.ndarray, crop: np.ndarray | torch.Tensor, transform: AlignTransform,
               *, return_mask: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Warp ``crop`` (uint8 ``SxSx3``, or a ``[3, S, S]`` tensor in [-1, 1]; any ``S``: the transform's quad is
    what counts) back into ``photo`` (uint8 ``HxWx3``, full resolution) and blend it in with the template's
    feathered face mask. Pixels where the mask is 0 keep their exact values. Returns the new photo (and the mask
    ``[H, W]`` with ``return_mask``)."""
    photo = np.asarray(photo)
    h, w = photo.shape[:2]
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"photo must be uint8 H x W x 3, got {photo.dtype} {photo.shape}")
    if (w, h) != transform.photo_size:
        raise ValueError(f"the photo is {w}x{h} but the transform was made for {transform.photo_size[0]}x"
                         f"{transform.photo_size[1]}: paste into the photo it was aligned from")
    src = _as_float(crop)
    size = src.shape[-1]
    if src.shape[-2] != size:
        raise ValueError(f"the crop must be square, got {src.shape[-1]}x{src.shape[-2]}")
    tf = transform if size == transform.size else transform.resized(size)
    out = photo.copy()
    mask_full = np.zeros((h, w), np.float64)
    box = _mask_box(tf)
    if box is not None:
        x0, y0, x1, y1 = box
        to_crop = tf.photo_to_crop() @ np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
        warped = _sample(src, to_crop, y1 - y0, x1 - x0)[0].permute(1, 2, 0).double().numpy()
        ys, xs = np.mgrid[y0:y1, x0:x1]
        mask = crop_mask(tf, tf.to_crop(np.stack([xs, ys], axis=-1).astype(np.float64)))
        region = out[y0:y1, x0:x1]
        inside = mask > 0
        blended = region.astype(np.float64) * (1.0 - mask[..., None]) + warped * mask[..., None]
        region[inside] = np.clip(np.rint(blended[inside]), 0, 255).astype(np.uint8)
        mask_full[y0:y1, x0:x1] = mask
    return (out, mask_full) if return_mask else out


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of two uint8 images (where ``mask`` is true, if given)."""
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    if mask is not None:
        d = d[np.asarray(mask, bool)]
    mse = float(d.mean()) if d.size else 0.0
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


__all__ = ["FFHQ", "LANDMARK_NAMES", "TEMPLATES", "TRANSFORM_FORMAT", "AlignTransform", "Template",
           "align_face", "as_points", "crop_mask", "face_quad", "fit_template", "get_template", "make_transform",
           "paste_back", "photo_mask", "psnr"]
