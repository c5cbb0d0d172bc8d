"""Example images for the app: toy faces from the held-out test split and from the out-of-distribution set.

They are rendered on first use (a few milliseconds each) into a folder under the system temp directory, where
Gradio may serve them from.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import toyfaces

#: test-split indices of the 70,000-image dataset with seed 0 (the training images are 0..64,999)
TEST_INDICES = (65000, 65001, 65002, 65003, 65004, 65005)
#: out-of-distribution kinds shown, in this order
OOD_SHOWN = ("occluder_hand", "extreme_attributes", "head_shape", "rotated", "occluder_bar", "off_centre")


def _save(image: np.ndarray, path: Path) -> None:
    # write then rename, so that two apps starting at once never serve a half-written file
    tmp = path.with_name(f".{path.stem}-{os.getpid()}.png")
    Image.fromarray(image).save(tmp)
    os.replace(tmp, path)


def example_images(resolution: int = 64, folder: str | Path | None = None) -> list[tuple[str, str]]:
    """``(path, label)`` of the example images at ``resolution`` (a toy-face size: 16..256)."""
    resolution = resolution if resolution in toyfaces.RESOLUTIONS else toyfaces.DEFAULT_RESOLUTION
    out = Path(folder) if folder is not None else Path(tempfile.gettempdir()) / "idinvert-app" / "examples"
    out = out / str(resolution)
    out.mkdir(parents=True, exist_ok=True)
    items: list[tuple[str, str]] = []
    for index in TEST_INDICES:
        path = out / f"test-{index}.png"
        if not path.is_file():
            _save(toyfaces.render_index(0, index, resolution)[0], path)
        items.append((str(path), f"test face {index}"))
    for kind in OOD_SHOWN:
        index = toyfaces.OOD_KINDS.index(kind)
        path = out / f"ood-{kind}.png"
        if not path.is_file():
            _save(toyfaces.render(toyfaces.sample_ood_attributes(0, index), resolution), path)
        items.append((str(path), f"out of distribution: {kind.replace('_', ' ')}"))
    return items


__all__ = ["OOD_SHOWN", "TEST_INDICES", "example_images"]
