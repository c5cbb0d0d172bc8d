"""Toy-face datasets: attribute arrays and CSV tables, the train/test split, batches rendered by index,
and writing a dataset folder (images, ``attributes.csv``, ``dataset.json``)."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .attributes import (
    ATTRIBUTE_SPECS,
    ATTRIBUTES,
    DEFAULT_RESOLUTION,
    FORMAT,
    FORMAT_VERSION,
    HEAD_SHAPES,
    OCCLUDERS,
    OOD_COLUMNS,
    OOD_KINDS,
    RENDER_PARAMS,
    TEST_FRACTION,
    AttributeSpec,
    _check_seed_index,
    category_index,
    category_name,
    sample_attributes,
)
from .painter import _check_resolution, render, render_index


# -- arrays and tables ------------------------------------------------------------------------------------
def attributes_to_arrays(rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Stack attribute dicts into arrays: continuous -> float64, binary -> int64, categorical -> int64
    class indices into :attr:`AttributeSpec.classes`, ``texture_seed`` -> int64. Other keys present in
    every row (e.g. the OOD columns) are kept as numeric or string arrays."""
    out: dict[str, np.ndarray] = {}
    if not rows:
        return {s.name: np.zeros(0, _dtype(s)) for s in ATTRIBUTES}
    keys = [k for k in rows[0] if all(k in r for r in rows)]
    for key in keys:
        values = [r[key] for r in rows]
        spec = ATTRIBUTE_SPECS.get(key)
        if spec is not None and spec.kind == "categorical":
            out[key] = np.array([category_index(key, v) for v in values], np.int64)
        elif spec is not None:
            out[key] = np.array(values, _dtype(spec))
        elif key in OOD_CATEGORIES:
            classes = OOD_CATEGORIES[key]
            out[key] = np.array([classes.index(v) if isinstance(v, str) else v for v in values], np.int64)
        else:
            out[key] = np.array(values)
    return out


def attributes_from_arrays(arrays: Mapping[str, np.ndarray], i: int) -> dict[str, Any]:
    """Row ``i`` of :func:`attributes_to_arrays` output back as an attribute dict (class names restored)."""
    row: dict[str, Any] = {}
    for key, values in arrays.items():
        value = values[i].item() if hasattr(values[i], "item") else values[i]
        spec = ATTRIBUTE_SPECS.get(key)
        if spec is not None and spec.kind == "categorical":
            value = category_name(key, value)
        elif key in OOD_CATEGORIES:
            value = OOD_CATEGORIES[key][int(value)]
        row[key] = value
    return row


def _dtype(spec: AttributeSpec) -> type:
    return np.float64 if spec.kind == "continuous" else np.int64


def render_batch(seed: int, indices: Iterable[int], resolution: int = DEFAULT_RESOLUTION
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render several images of the dataset with ``seed``: ``uint8 [N, H, W, 3]`` and their attributes as
    arrays (see :func:`attributes_to_arrays`)."""
    indices = [int(i) for i in indices]
    resolution = _check_resolution(resolution)
    images = np.empty((len(indices), resolution, resolution, 3), np.uint8)
    rows = []
    for k, index in enumerate(indices):
        images[k], attrs = render_index(seed, index, resolution)
        rows.append(attrs)
    return images, attributes_to_arrays(rows)


def split_sizes(n: int) -> dict[str, int]:
    """Train and test sizes for a dataset of ``n`` images (the test share of FFHQ's 5,000 / 70,000, at
    least one image)."""
    if n < 1:
        raise ValueError(f"a dataset needs at least one image, got n={n}")
    test = min(n, max(1, round(n * TEST_FRACTION)))
    return {"train": n - test, "test": test}


def split_of(index: int, n: int) -> str:
    """``"train"`` or ``"test"`` for image ``index`` of ``n``: the first images train, the last
    ``split_sizes(n)["test"]`` test (for n = 70,000: 65,000 and 5,000, the IDInvert FFHQ protocol)."""
    if not 0 <= index < n:
        raise IndexError(f"index {index} outside a dataset of {n} images")
    return "train" if index < split_sizes(n)["train"] else "test"


OOD_CATEGORIES = {"ood_kind": OOD_KINDS, "occluder": OCCLUDERS, "head_shape": HEAD_SHAPES}


_INT_COLUMNS = {"index", "texture_seed"} | {s.name for s in ATTRIBUTES if s.kind == "binary"}


_FLOAT_COLUMNS = {s.name for s in ATTRIBUTES if s.kind == "continuous"} | {
    "occluder_x", "occluder_y", "occluder_angle", "occluder_size", "occluder_hue"}


def _format(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def write_attributes_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write one CSV row per image; floats use ``repr`` so that reading gives back identical values."""
    if not rows:
        raise ValueError("no rows to write")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(rows[0]))
        for row in rows:
            writer.writerow([_format(v) for v in row.values()])


def read_attributes_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read an ``attributes.csv`` back into dicts with the types :func:`sample_attributes` returns."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, value in row.items():
            if key in _INT_COLUMNS:
                row[key] = int(value)
            elif key in _FLOAT_COLUMNS:
                row[key] = float(value)
    return rows


# -- writing datasets -------------------------------------------------------------------------------------
def _render_chunk(job: tuple[str, int, Sequence[int], int, Callable[[int, int], dict[str, Any]]]
                  ) -> list[dict[str, Any]]:
    """Worker: render and save a chunk of images, return their attribute dicts (drawn by the job's sampler,
    a module-level function so that it pickles)."""
    out_dir, seed, indices, resolution, sampler = job
    rows = []
    for index in indices:
        attrs = sampler(seed, index)
        image = render(attrs, resolution)
        Image.fromarray(image).save(Path(out_dir) / "images" / f"{index:05d}.png", compress_level=1)
        rows.append(attrs)
    return rows


def _worker_context() -> multiprocessing.context.BaseContext:
    """Processes that start clean (no fork of a caller's threads, e.g. torch's): a fork server that has
    imported the package's dependencies once where the platform has one, spawn elsewhere."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # not this module itself: under ``python -m`` the workers re-run it as their main module
        ctx.set_forkserver_preload(["idinvert_plugins", "numpy", "PIL.Image"])
        return ctx
    return multiprocessing.get_context("spawn")


def _write_dataset(out_dir: str | os.PathLike, n: int, seed: int, resolution: int, workers: int,
                   progress: bool, ood: bool, sampler: Callable[[int, int], dict[str, Any]] = sample_attributes
                   ) -> Path:
    """Write a dataset folder; ``ood``: the out-of-distribution set's layout, with its ``sampler``."""
    from tqdm import tqdm

    resolution = _check_resolution(resolution)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    _check_seed_index(seed, 0)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    chunk = max(1, min(256, n // (4 * max(workers, 1)) or 1))
    jobs = [(str(out), seed, range(i, min(i + chunk, n)), resolution, sampler) for i in range(0, n, chunk)]
    rows: list[dict[str, Any]] = []
    with tqdm(total=n, disable=not progress, desc="toy faces", unit="img") as bar:
        if workers > 1:
            with ProcessPoolExecutor(workers, mp_context=_worker_context()) as pool:
                for chunk_rows in pool.map(_render_chunk, jobs):
                    rows.extend(chunk_rows)
                    bar.update(len(chunk_rows))
        else:
            for job in jobs:
                rows.extend(_render_chunk(job))
                bar.update(len(job[2]))

    table = []
    for index, attrs in enumerate(rows):
        split = "ood" if ood else split_of(index, n)
        table.append({"index": index, "file": f"images/{index:05d}.png", "split": split, **attrs})
    write_attributes_csv(out / "attributes.csv", table)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "ood" if ood else "dataset",
        "seed": seed,
        "n": n,
        "resolution": resolution,
        "splits": {"ood": n} if ood else split_sizes(n),
        "attributes": [s.to_dict() for s in ATTRIBUTES],
        "render_params": list(RENDER_PARAMS),
        "images": "images/{index:05d}.png",
    }
    if ood:
        meta["ood_kinds"] = list(OOD_KINDS)
        meta["ood_columns"] = list(OOD_COLUMNS)
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def render_dataset(out_dir: str | os.PathLike, n: int, seed: int = 0, resolution: int = DEFAULT_RESOLUTION,
                   workers: int = 1, progress: bool = True) -> Path:
    """Render images ``0 .. n-1`` of the dataset with ``seed`` into ``out_dir``.

    Writes ``images/{i:05d}.png``, ``attributes.csv`` (index, file, split, every attribute,
    ``texture_seed``) and ``dataset.json`` (seed, n, resolution, attribute spec, split sizes, format
    version). ``workers > 1`` renders in that many processes (same bytes as one). Returns ``out_dir``.
    """
    return _write_dataset(out_dir, n, seed, resolution, workers, progress, ood=False)
