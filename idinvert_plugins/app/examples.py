"""Example images for the app: what the model's domain offers (:meth:`Domain.examples
<idinvert_plugins.domain_spec.Domain.examples>`; the bundled domain gives held-out test images and
out-of-distribution ones).

They are rendered on first use (a few milliseconds each) into a folder under the system temp directory, where
Gradio may serve them from.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..domain_spec import Domain
from ..domains import get_domain


def _save(image: np.ndarray, path: Path) -> None:
    # write then rename, so that two apps starting at once never serve a half-written file
    tmp = path.with_name(f".{path.stem}-{os.getpid()}.png")
    Image.fromarray(image).save(tmp)
    os.replace(tmp, path)


def example_images(resolution: int = 64, folder: str | Path | None = None,
                   domain: str | Domain | None = None) -> list[tuple[str, str]]:
    """``(path, label)`` of ``domain``'s example images for a model of ``resolution`` (None: the default
    domain; a domain renders at the nearest size it supports)."""
    dom = get_domain(domain)
    out = Path(folder) if folder is not None else Path(tempfile.gettempdir()) / "idinvert-app" / "examples"
    out = out / dom.name / str(resolution)
    out.mkdir(parents=True, exist_ok=True)
    items: list[tuple[str, str]] = []
    for key, label, image in dom.examples(resolution):
        path = out / f"{key}.png"
        if not path.is_file():
            _save(np.asarray(image, np.uint8), path)
        items.append((str(path), label))
    return items


__all__ = ["example_images"]
