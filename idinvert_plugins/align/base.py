"""The aligner contract: what a face-finding plugin provides (hook ``register_aligners``).

An :class:`Aligner` finds the faces in a photo and gives, for each, the four points FFHQ alignment needs (the
eye centres and the mouth corners) as a :class:`Face`. Everything else (the oriented crop, its transform,
paste-back) is the library's (:mod:`.transform`), so an aligner is only a landmark detector. Landmarks a user
gives in a JSON file (:func:`read_landmarks`) stand in for any aligner.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .transform import LANDMARK_NAMES, as_points


class NoFaceError(ValueError):
    """No face was found in a photo (the message names the file and what to try)."""


@dataclass
class Face:
    """One face found in a photo: ``landmarks`` ``[4, 2]`` (eye_left, eye_right, mouth_left, mouth_right; the
    image's left, pixels with ``(0, 0)`` the centre of the top-left pixel), the detector's ``score``, all the
    points the aligner found (``points``, e.g. dlib's 68) and its ``box`` ``(x0, y0, x1, y1)`` if any."""

    landmarks: np.ndarray
    score: float = 1.0
    points: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        self.landmarks = as_points(self.landmarks)

    @property
    def size(self) -> float:
        """Eye distance plus eye-to-mouth distance, in pixels (what the faces are ordered by)."""
        lm = self.landmarks
        return float(np.hypot(*(lm[1] - lm[0])) + np.hypot(*(lm[2:].mean(0) - lm[:2].mean(0))))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {n: [round(float(v), 3) for v in p] for n, p in zip(LANDMARK_NAMES, self.landmarks)}
        out["score"] = round(float(self.score), 4)
        if self.box is not None:
            out["box"] = [round(float(v), 2) for v in self.box]
        return out


class Aligner:
    """Finds faces and their landmarks. Subclass it, set ``name`` and ``description``, implement :meth:`detect`
    (and :meth:`unavailable` when it needs an optional package), and register an instance with the
    ``register_aligners`` hook."""

    #: the name ``--aligner NAME`` and ``pipeline.json``'s ``"alignment": {"aligner": NAME}`` use
    name: str = ""
    #: one line for ``idinvert plugins``: what it finds, what it needs, the licence of its model
    description: str = ""
    #: the landmark scheme it detects, for the listing (e.g. ``"68-point (iBUG 300-W)"``)
    landmarks: str = "4-point"

    def unavailable(self) -> str | None:
        """None when the aligner can run here; else why not and how to fix it (e.g. the package to install)."""
        return None

    def detect(self, photo: np.ndarray, *, source: str | Path | None = None) -> list[Face]:
        """The faces in ``photo`` (uint8 ``HxWx3`` RGB, EXIF orientation applied), in any order. ``source``: the
        file it was read from, when there is one (an aligner may read a sidecar file)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<aligner {self.name!r}>"


def order_faces(faces: Sequence[Face]) -> list[Face]:
    """Largest first (eye distance plus eye-to-mouth distance), then left to right: face 0 is the main face."""
    return sorted(faces, key=lambda f: (-round(f.size, 1), float(f.landmarks[:, 0].mean())))


# -- landmarks from a file ---------------------------------------------------------------------------------------
LANDMARKS_HELP = ("a JSON file of face landmarks in pixels ((0, 0) = centre of the top-left pixel): "
                  '{"eye_left": [x, y], "eye_right": [x, y], "mouth_left": [x, y], "mouth_right": [x, y]} per face '
                  "(the image's left and right), a list of such objects or {\"faces\": [...]}; a face may instead "
                  "be a list of 4, 5 (RetinaFace order) or 68 (dlib) [x, y] points")


def parse_landmarks(data: Any, where: str = "landmarks") -> list[Face]:
    """Faces from decoded JSON (the forms of :data:`LANDMARKS_HELP`)."""
    if isinstance(data, Mapping) and "faces" in data:
        data = data["faces"]
    if isinstance(data, Mapping) or (isinstance(data, list) and data and _is_point(data[0])):
        data = [data]
    if not isinstance(data, list) or not data:
        raise ValueError(f"{where}: expected {LANDMARKS_HELP}")
    faces = []
    for i, item in enumerate(data):
        points = item.get("points") if isinstance(item, Mapping) and "points" in item else item
        try:
            lm = as_points(points)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: face {i}: {exc}") from None
        score = float(item.get("score", 1.0)) if isinstance(item, Mapping) else 1.0
        raw = None if isinstance(points, Mapping) else np.asarray(points, np.float64)
        faces.append(Face(lm, score, raw))
    return faces


def _is_point(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)


def read_landmarks(path: str | Path) -> list[Face]:
    """The faces of a landmarks JSON file (:data:`LANDMARKS_HELP`)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such landmarks file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc}); expected {LANDMARKS_HELP}") from None
    return parse_landmarks(data, str(path))


__all__ = ["Aligner", "Face", "LANDMARKS_HELP", "NoFaceError", "order_faces", "parse_landmarks", "read_landmarks"]
