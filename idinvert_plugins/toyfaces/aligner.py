"""The toy-face aligner: the domain's landmark network (:class:`~idinvert_plugins.models.landmarks.LandmarkNet`,
weights ``toyfaces-landmarks-64``, trained by :mod:`.train_landmarks`) finds toy faces in a photo and their eye
centres and mouth corners, so the whole real-photo path (align, invert, edit, paste back) runs offline on the
bundled generators. Registered as the ``toyfaces`` aligner by :mod:`idinvert_plugins.builtins.toyfaces`; the
domain's ``alignment`` makes it and :data:`TOYFACES` the default for its models."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..align.base import Aligner, Face
from ..align.transform import AlignTransform, Template, align_face, make_transform
from .domain import TEMPLATE

#: the domain's alignment template (:data:`.domain.TEMPLATE`) as a :class:`~idinvert_plugins.align.Template`
TOYFACES = Template.from_dict(TEMPLATE)


class ToyFacesAligner(Aligner):
    """The toy-face landmark network on a pyramid of the photo (detection), then on each face's aligned crop
    (refinement, twice): offline, for the bundled domain."""

    name = "toyfaces"
    description = ("the bundled toy-face domain: finds toy faces and their eye centres and mouth corners with the "
                   "toyfaces-landmarks-64 network (trained on renders; offline, no extra). Not for real photos")
    model = "toyfaces-landmarks-64"

    def __init__(self, threshold: float = 0.35, refine: int = 2, min_side: int = 32, max_side: int = 640) -> None:
        """``threshold``: the least detection score; ``refine``: refinement passes; the photo pyramid runs from
        a long side of ``max_side`` pixels (or the photo's own, if smaller; 1.41x for photos up to 320 px) down to
        a short side of ``min_side``. Faces are found from about 20 px wide at the top of the pyramid: 20 px x
        (photo side / ``max_side``) in large photos."""
        self.threshold = threshold
        self.refine = refine
        self.min_side = min_side
        self.max_side = max_side
        self._lock = threading.Lock()
        self._net: Any = None

    def network(self) -> Any:
        with self._lock:
            if self._net is None:
                from ..hub import load_model

                self._net = load_model(self.model, kind="landmarks")
            return self._net

    @torch.no_grad()
    def _run(self, img: torch.Tensor) -> list[dict[str, Any]]:
        """Faces in ``img`` ``[1, 3, h, w]`` in [-1, 1] (padded to a multiple of 8 here)."""
        net = self.network()
        h, w = img.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        if ph or pw:
            img = F.pad(img, (0, pw, 0, ph), mode="replicate")
        return net.decode(net(img), threshold=self.threshold)[0]

    def detect(self, photo: np.ndarray, *, source: str | Path | None = None) -> list[Face]:
        x = torch.from_numpy(np.array(photo, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1.0
        h, w = x.shape[-2:]
        found: list[tuple[float, np.ndarray]] = []
        level = -1 if max(h, w) <= 320 else 0  # small photos are also searched at 1.41x
        while True:
            f = 2.0 ** (-level / 2.0)
            lh, lw = round(h * f), round(w * f)
            if min(lh, lw) < self.min_side:
                break
            level += 1
            if max(lh, lw) > max(self.max_side, 1):
                continue
            img = F.interpolate(x, size=(lh, lw), mode="bilinear", align_corners=False, antialias=f < 1.0)
            for face in self._run(img):
                lm = np.asarray(face["landmarks"], np.float64)
                lm = np.stack([(lm[:, 0] + 0.5) * w / lw - 0.5, (lm[:, 1] + 0.5) * h / lh - 0.5], axis=1)
                found.append((face["score"], lm))
        faces: list[Face] = []
        for score, lm in sorted(found, key=lambda t: -t[0]):  # non-maximum suppression across levels
            if _duplicate(lm, faces, 0.5):
                continue
            refined = self._refine(photo, lm)
            if refined is not None and not _duplicate(refined[1], faces, 0.8):  # refinement converges on the face
                faces.append(Face(refined[1], min(score, refined[0])))
        return faces

    #: the crops the refinement averages over: (scale, rotation in degrees, shift in crop pixels) of the quad,
    #: each also mirrored
    JITTER: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.9, 4.0, 1.0), (1.1, -4.0, -1.0),
                                                      (1.0, 0.0, 1.5))

    def _refine(self, photo: np.ndarray, lm: np.ndarray) -> tuple[float, np.ndarray] | None:
        """Run the network on the face's ``toyfaces``-template crop at its training resolution, on slightly
        scaled, turned and shifted copies and their mirror images, and average the landmarks of the face nearest
        each crop's centre, mapped back to the photo; None if no face is there (a false detection)."""
        size = int(self.network().resolution)
        h, w = photo.shape[:2]
        centre = np.array([size / 2.0 - 0.5] * 2)
        score = 1.0
        for _ in range(max(self.refine, 1)):
            try:
                base = make_transform(lm, size, (w, h), TOYFACES)
            except ValueError:
                return None
            tfs = [_jittered(base, *j) for j in self.JITTER]
            crops = torch.stack([torch.from_numpy(align_face(photo, tf)).permute(2, 0, 1).float() for tf in tfs])
            crops = crops / 127.5 - 1.0
            net = self.network()
            with torch.no_grad():
                out = net.decode(net(torch.cat([crops, crops.flip(-1)])), threshold=self.threshold)
            points, scores = [], []
            for i, faces in enumerate(out):
                near = [f for f in faces if np.hypot(*(np.asarray(f["centre"]) - centre)) < 0.2 * size]
                if not near:
                    continue
                best = max(near, key=lambda f: f["score"])
                pts = np.asarray(best["landmarks"], np.float64)
                if i >= len(tfs):  # mirror back: x -> size - 1 - x, and the image's left and right swap
                    pts = pts[[1, 0, 3, 2]]
                    pts[:, 0] = size - 1.0 - pts[:, 0]
                points.append(tfs[i % len(tfs)].to_photo(pts))
                scores.append(float(best["score"]))
            if len(points) < len(out) // 2:  # most crops show no face at their centre: a false detection
                return None
            score = float(np.median(scores))
            lm = np.median(points, axis=0) if len(points) > 2 else np.mean(points, axis=0)
            if not math.isfinite(float(lm.sum())):
                return None
        return score, lm


def _jittered(tf: AlignTransform, scale: float, degrees: float, shift: float) -> AlignTransform:
    """``tf`` with its quad scaled and turned about its centre and moved by ``shift`` crop pixels (x and y)."""
    q = tf.quad
    c = q.mean(0)
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * scale
    step = (q[3] - q[0]) / tf.size + (q[1] - q[0]) / tf.size
    return AlignTransform((q - c) @ rot.T + c + shift * step, tf.size, tf.photo_size)


def _duplicate(lm: np.ndarray, faces: list[Face], radius: float) -> bool:
    """Whether ``lm``'s eye midpoint is within ``radius`` eye distances of a face already kept."""
    mid = lm[:2].mean(0)
    return any(np.hypot(*(mid - k.landmarks[:2].mean(0))) < radius * np.hypot(*(k.landmarks[1] - k.landmarks[0]))
               for k in faces)


__all__ = ["TOYFACES", "ToyFacesAligner"]
