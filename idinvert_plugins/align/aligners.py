"""The core's aligners: ``dlib`` (real photos; the ``[align]`` extra) and ``json`` (landmarks a user wrote next to
each photo). A domain brings the aligner of its own images (its plugin registers it; ``Domain.alignment`` names
it)."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .base import Aligner, Face, read_landmarks

ALIGN_EXTRA_HINT = "pip install 'idinvert-plugins[align]' (dlib-bin and face-recognition-models, no compiler needed)"


class DlibAligner(Aligner):
    """dlib's HOG face detector and its 68-point shape predictor, the landmarks FFHQ itself was aligned with."""

    name = "dlib"
    landmarks = "68-point (iBUG 300-W)"
    description = ("real photos: dlib's HOG face detector + 68-point shape predictor (the FFHQ landmarks), from "
                   "dlib-bin and face-recognition-models (the [align] extra). The 68-point model was trained on "
                   "iBUG 300-W, whose licence excludes commercial use")
    PREDICTOR = "shape_predictor_68_face_landmarks.dat"

    def __init__(self, upsample: int = 1) -> None:
        self.upsample = upsample
        self._lock = threading.Lock()
        self._models: tuple[Any, Any] | None = None

    def _model_file(self) -> Path | None:
        # find_spec does not run the package (its __init__ imports pkg_resources, gone from new setuptools)
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / "models" / self.PREDICTOR
        return path if path.is_file() else None

    def unavailable(self) -> str | None:
        if importlib.util.find_spec("dlib") is None:
            return f"the dlib aligner needs dlib: {ALIGN_EXTRA_HINT}"
        if self._model_file() is None:
            return f"the dlib aligner needs {self.PREDICTOR} from face-recognition-models: {ALIGN_EXTRA_HINT}"
        return None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._models is None:
                reason = self.unavailable()
                if reason:
                    raise ValueError(reason)
                import dlib

                self._models = (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(self._model_file())))
            return self._models

    def detect(self, photo: np.ndarray, *, source: str | Path | None = None) -> list[Face]:
        import dlib

        detector, predictor = self._load()
        img = np.ascontiguousarray(photo, dtype=np.uint8)
        boxes, scores, _ = detector.run(img, self.upsample, 0.0)
        faces = []
        for box, score in zip(boxes, scores):
            shape = predictor(img, dlib.rectangle(box.left(), box.top(), box.right(), box.bottom()))
            pts = np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)], np.float64)
            faces.append(Face(pts, float(score), pts, (box.left(), box.top(), box.right(), box.bottom())))
        return faces


class SidecarAligner(Aligner):
    """Landmarks written by the user next to each photo: ``PHOTO_STEM.landmarks.json``."""

    name = "json"
    description = ("landmarks you give: reads PHOTO_STEM.landmarks.json beside each photo (eye centres and mouth "
                   "corners, or 5 or 68 points per face); --landmarks FILE gives one file for one photo")

    def detect(self, photo: np.ndarray, *, source: str | Path | None = None) -> list[Face]:
        if source is None:
            raise ValueError("the json aligner reads PHOTO_STEM.landmarks.json beside the photo: give a file path, "
                             "or pass --landmarks FILE")
        path = sidecar_path(source)
        if not path.is_file():
            raise ValueError(f"{Path(source).name}: no landmarks file {path.name} beside it (the json aligner "
                             "reads one per photo)")
        return read_landmarks(path)


def sidecar_path(photo: str | Path) -> Path:
    """Where the ``json`` aligner looks for a photo's landmarks."""
    photo = Path(photo)
    return photo.with_name(photo.stem + ".landmarks.json")


__all__ = ["ALIGN_EXTRA_HINT", "DlibAligner", "SidecarAligner", "sidecar_path"]
