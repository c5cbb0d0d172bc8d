"""The app's photo flow: an uploaded photo's faces are found and aligned for the model, the chosen face's crop is
what the Invert tab inverts, and the current result (reconstruction or edit) is pasted back into the photo at its
full resolution for download (:mod:`idinvert_plugins.align`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..align import AlignedFace, align_photo, alignment_for, load_photo, paste_faces
from ..images import ImageError, to_uint8
from .session import AppError

FACE_COLOURS = [(255, 210, 0), (0, 200, 255), (255, 80, 80), (120, 255, 120), (230, 120, 255)]


class PhotoError(AppError):
    """A photo the flow cannot use (no face, unreadable); the message is for the page."""


@dataclass
class PhotoFaces:
    """One uploaded photo and its aligned faces (crops at the model's resolution), for one session."""

    photo: np.ndarray
    faces: list[AlignedFace] = field(default_factory=list)
    model: str = ""
    aligner: str = ""

    def choices(self) -> list[tuple[str, int]]:
        """The face menu: ``("face 0 (largest)", 0), ...``."""
        return [(f"face {f.face}" + (" (largest)" if f.face == 0 else ""), f.face) for f in self.faces]

    def crop(self, k: int) -> Image.Image:
        """Face ``k``'s aligned crop (what the model inverts)."""
        return Image.fromarray(self._face(k).crop)

    def _face(self, k: int) -> AlignedFace:
        for f in self.faces:
            if f.face == int(k):
                return f
        raise PhotoError(f"there is no face {k} in this photo (faces: {', '.join(str(f.face) for f in self.faces)})")

    def preview(self, max_side: int = 640) -> np.ndarray:
        """The photo with each face's quad outlined and numbered (shrunk to ``max_side``)."""
        img = Image.fromarray(self.photo)
        scale = min(1.0, max_side / max(img.size))
        if scale < 1.0:
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
        draw = ImageDraw.Draw(img)
        for f in self.faces:
            q = [tuple(p) for p in f.transform.quad * scale]
            colour = FACE_COLOURS[f.face % len(FACE_COLOURS)]
            draw.line(q + [q[0]], fill=colour, width=3)
            x, y = min(p[0] for p in q), min(p[1] for p in q)
            draw.rectangle([x, y, x + 18, y + 16], fill=colour)
            draw.text((x + 5, y + 2), str(f.face), fill=(0, 0, 0))
        return np.asarray(img)

    def paste(self, k: int, image: torch.Tensor | np.ndarray) -> np.ndarray:
        """The full-size photo with ``image`` (``[3, R, R]`` in [-1, 1] or uint8) pasted over face ``k``."""
        face = self._face(k)
        crop = to_uint8(image) if isinstance(image, torch.Tensor) else np.asarray(image)
        result, _ = paste_faces(self.photo, [crop], [face.transform])
        return result


def find_faces(bundle: Any, source: Any, aligner: str | None = None) -> PhotoFaces:
    """Find and align the faces of an uploaded photo (a path, bytes or PIL image) for ``bundle``'s model, with
    the model's aligner (its ``pipeline.json`` / domain; ``aligner`` overrides)."""
    try:
        photo = load_photo(source)
    except ImageError as exc:
        raise PhotoError(str(exc)) from None
    config = getattr(getattr(bundle, "pipeline", None), "config", None)
    chosen = alignment_for(bundle.name, config)
    name = aligner or chosen["aligner"]
    try:
        faces = align_photo(photo, aligner=name, template=chosen["template"], size=bundle.resolution, face="all",
                            name="the photo")
    except ValueError as exc:  # no face, or an aligner that needs the [align] extra
        raise PhotoError(str(exc)) from None
    return PhotoFaces(photo, faces, bundle.name, name)


def write_full_photo(photos: PhotoFaces, k: int, image: torch.Tensor, folder: Path) -> str:
    """Paste ``image`` over face ``k`` and write the full-size PNG into ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"photo-{uuid.uuid4().hex[:10]}.png"
    Image.fromarray(photos.paste(k, image)).save(path)
    return str(path)


__all__ = ["PhotoError", "PhotoFaces", "find_faces", "write_full_photo"]
