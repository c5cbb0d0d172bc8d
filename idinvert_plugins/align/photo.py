"""Real photos in, real photos out: find the faces of a photo, align them for a generator, and paste results back.

:func:`alignment_for` says which aligner and template go with a generator (its ``pipeline.json``'s
``"alignment"``, else the ``alignment`` of the domain its name belongs to, else ``dlib`` + ``ffhq``);
:func:`align_photo` returns an :class:`AlignedFace` (crop, transform, landmarks) per chosen face;
:func:`paste_faces` blends results back into the full-resolution photo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import Aligner, Face, NoFaceError, order_faces, read_landmarks
from .transform import TEMPLATES, AlignTransform, Template, align_face, make_transform, paste_back
from .transform import get_template as core_template

DEFAULT_ALIGNER = "dlib"


@dataclass
class AlignedFace:
    """One face of a photo, aligned: its index ``face`` (0 = largest), the ``crop`` (uint8 ``SxSx3``), the
    ``transform`` that undoes it, and the aligner's :class:`~.base.Face`."""

    face: int
    crop: np.ndarray
    transform: AlignTransform
    found: Face


def get_aligner(name: str) -> Aligner:
    """A registered aligner by name (``idinvert plugins`` lists them); one that cannot run here raises a
    ``ValueError`` saying what to install."""
    from ..plugins import get_plugins

    aligner = get_plugins().get("aligner", name)
    reason = aligner.unavailable()
    if reason:
        raise ValueError(reason)
    return aligner


def template_names() -> list[str]:
    """The templates known by name: the core's (``ffhq``), then those of the registered domains."""
    from ..domains import domains

    names = list(TEMPLATES)
    for domain in domains():
        names += [n for n in domain.templates if n not in names]
    return names


def get_template(spec: str | Template | Mapping[str, Any] | None) -> Template:
    """A template by name (the core's ``ffhq``, or one a registered domain declares in ``Domain.templates``), as
    a dict of its fields, or itself; None is ``ffhq``. An unknown name raises a ``ValueError`` listing the known
    ones."""
    from ..domains import domains

    if isinstance(spec, str) and spec not in TEMPLATES:
        for domain in domains():
            if spec in domain.templates:
                fields = domain.templates[spec]
                if isinstance(fields, Template):
                    return fields
                fields = fields.to_dict() if hasattr(fields, "to_dict") else dict(fields)
                return Template.from_dict({"name": spec, **fields})
        raise ValueError(f"unknown alignment template {spec!r}; known: {', '.join(template_names())} (or give its "
                         "numbers: {\"scale\": 1.0, \"shift\": 0.1})")
    return core_template(spec)


def _domain_of(model: str | Path | None, config: Mapping[str, Any] | None) -> Any:
    """The domain of a generator: its ``pipeline.json`` ``"domain"`` when that one is registered, else the one
    whose naming rule claims the model, else None."""
    from ..domains import domain_for_model, domain_names, get_domain

    declared = (config or {}).get("domain")
    if isinstance(declared, str) and declared in domain_names():
        return get_domain(declared)
    return domain_for_model(str(model)) if model is not None else None


def alignment_for(model: str | Path | None, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"aligner": NAME, "template": Template}`` for a generator: its ``pipeline.json`` ``"alignment"`` object
    (``config``), else the ``alignment`` of its domain (``config``'s ``"domain"``, else the domain whose naming
    rule claims the model: :func:`~idinvert_plugins.domains.domain_for_model`), else ``dlib`` and ``ffhq``."""
    spec = dict((config or {}).get("alignment") or {})
    domain = _domain_of(model, config)
    default = dict(domain.alignment) if domain is not None else {}
    aligner = spec.get("aligner") or default.get("aligner") or DEFAULT_ALIGNER
    template = get_template(spec.get("template") or default.get("template") or "ffhq")
    return {"aligner": aligner, "template": template}


def load_photo(path: str | Path | bytes | np.ndarray) -> np.ndarray:
    """A photo as uint8 ``HxWx3`` RGB with its EXIF orientation applied (:func:`~idinvert_plugins.images.open_image`:
    the library's checks of size, format and mode)."""
    from ..images import open_image

    return np.asarray(open_image(path))


def choose_faces(faces: Sequence[Face], which: int | str | None, name: str) -> list[tuple[int, Face]]:
    """``(index, face)`` of the chosen faces (``which``: an index, ``"all"``, or None for face 0)."""
    ordered = order_faces(faces)
    if which is None:
        which = 0
    if which == "all":
        return list(enumerate(ordered))
    k = int(which)
    if not 0 <= k < len(ordered):
        raise ValueError(f"{name}: --face {k} but {len(ordered)} face(s) were found (0 is the largest; --face all "
                         "takes every one)")
    return [(k, ordered[k])]


def align_photo(photo: np.ndarray, *, aligner: str | Aligner | None = None, template: str | Template | None = None,
                size: int = 256, face: int | str | None = None, landmarks: str | Path | Sequence[Face] | None = None,
                source: str | Path | None = None, name: str | None = None) -> list[AlignedFace]:
    """Find the faces of ``photo`` (uint8 ``HxWx3``) with ``aligner`` (a name or an :class:`~.base.Aligner`;
    default ``dlib``) or take them from ``landmarks`` (a JSON file, or faces), choose ``face`` (index, ``"all"``;
    default 0, the largest) and cut each one's ``size`` x ``size`` crop with ``template``. No face raises
    :class:`~.base.NoFaceError` naming the photo (``name``, else ``source``)."""
    name = name or (Path(source).name if source is not None else "the photo")
    h, w = photo.shape[:2]
    if landmarks is not None:
        faces = read_landmarks(landmarks) if isinstance(landmarks, (str, Path)) else list(landmarks)
        used = "landmarks-file"
    else:
        al = get_aligner(aligner or DEFAULT_ALIGNER) if not isinstance(aligner, Aligner) else aligner
        faces = al.detect(photo, source=source)
        used = al.name
    if not faces:
        hint = "try another --aligner (`idinvert plugins` lists them)"
        if landmarks is None and getattr(al, "description", ""):
            hint = f"it is {al.description}; {hint}"
        raise NoFaceError(f"{name}: no face found (aligner {used}); {hint}, or give the eye centres and mouth "
                          "corners with --landmarks FILE.json")
    out = []
    template = get_template(template)
    for k, f in choose_faces(faces, face, name):
        tf = make_transform(f.landmarks, size, (w, h), template, face=k, aligner=used, score=f.score)
        out.append(AlignedFace(k, align_face(photo, tf), tf, f))
    return out


def paste_faces(photo: np.ndarray, crops: Sequence[Any], transforms: Sequence[AlignTransform]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Paste each crop (uint8 ``SxSx3`` or a ``[3, S, S]`` tensor in [-1, 1]) back with its transform, one after
    the other; returns the photo and the union of the blend masks ``[H, W]`` (0 where nothing changed)."""
    out = np.asarray(photo)
    union = np.zeros(out.shape[:2], np.float64)
    for crop, tf in zip(crops, transforms):
        out, mask = paste_back(out, crop, tf, return_mask=True)
        union = np.maximum(union, mask)
    return out, union


__all__ = ["AlignedFace", "DEFAULT_ALIGNER", "NoFaceError", "align_photo", "alignment_for", "choose_faces",
           "get_aligner", "get_template", "load_photo", "paste_faces", "template_names"]
