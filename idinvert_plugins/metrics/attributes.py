"""Attribute distributions of image sets, and timing helpers.

A generator that covers its domain reproduces the attribute marginals of the real data: as many glasses,
the same mix of hair colours, the same mean age. :func:`attribute_marginals` measures them on images with
an attribute classifier, :func:`table_marginals` on a ground-truth table (a domain's attribute arrays),
both in the same format, and :func:`compare_marginals` reports the largest gap in percentage points.

Marginal format, per attribute:

* binary: ``{"kind": "binary", "fraction": share positive}`` (+ ``"mean_probability"`` from a classifier);
* categorical: ``{"kind": "categorical", "histogram": {class name: share}}``;
* continuous: ``{"kind": "continuous", "mean": mean value, "threshold": t, "fraction_positive": share > t}``
  (threshold and share are None for attributes without a binary reading, such as a hue).

Class names and thresholds come from ``specs`` (default: the default domain's schema,
:attr:`Domain.attribute_specs <idinvert_plugins.domain_spec.Domain.attribute_specs>`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .frechet import _float_batches

Marginals = dict[str, dict[str, Any]]


def _default_specs() -> Mapping[str, Any]:
    from ..domains import get_domain

    return get_domain().attribute_specs


def semantic_attributes(domain: str | None = None) -> list[str]:
    """A domain's editing targets (the attributes that are not nuisance factors; None: the default domain)."""
    from ..domains import get_domain

    return get_domain(domain).semantic_attributes


def _class_names(name: str, num_classes: int, specs: Mapping[str, Any]) -> list[str]:
    spec = specs.get(name)
    if spec is not None and getattr(spec, "kind", None) == "categorical" and len(spec.values) == num_classes:
        return [str(c) for c in spec.values]
    return [str(i) for i in range(num_classes)]


def _threshold(name: str, specs: Mapping[str, Any]) -> float | None:
    spec = specs.get(name)
    return None if spec is None or spec.threshold is None else float(spec.threshold)


class _Tally:
    """Running counts of one attribute's values (so image sets can be streamed)."""

    def __init__(self, name: str, kind: str, specs: Mapping[str, Any], num_classes: int | None = None) -> None:
        self.name, self.kind = name, kind
        self.count = 0
        self.sum = 0.0
        self.positive = 0
        self.threshold = _threshold(name, specs) if kind == "continuous" else 0.5
        self.classes = _class_names(name, num_classes, specs) if kind == "categorical" else None
        self.hist = np.zeros(len(self.classes), np.int64) if self.classes else None

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values).reshape(-1)
        self.count += values.size
        if self.kind == "categorical":
            self.hist += np.bincount(values.astype(np.int64), minlength=len(self.classes))[: len(self.classes)]
            return
        self.sum += float(values.astype(np.float64).sum())
        if self.threshold is not None:
            self.positive += int((values > self.threshold).sum())

    def result(self, probability: bool = False) -> dict[str, Any]:
        if self.count == 0:
            raise ValueError(f"no values for attribute {self.name!r}")
        if self.kind == "categorical":
            return {"kind": "categorical",
                    "histogram": {c: float(h) / self.count for c, h in zip(self.classes, self.hist)}}
        if self.kind == "binary":
            out = {"kind": "binary", "fraction": self.positive / self.count}
            if probability:
                out["mean_probability"] = self.sum / self.count
            return out
        return {"kind": "continuous", "mean": self.sum / self.count, "threshold": self.threshold,
                "fraction_positive": None if self.threshold is None else self.positive / self.count}


@torch.no_grad()
def attribute_marginals(
    classifier: nn.Module,
    images: torch.Tensor | np.ndarray | Iterable,
    attributes: Sequence[str] | None = None,
    batch: int = 250,
    specs: Mapping[str, Any] | None = None,
) -> Marginals:
    """Attribute marginals of an image set as the classifier reads them.

    ``images``: float tensor ``[N, C, R, R]`` in [-1, 1], uint8 ``NCHW`` tensor, uint8 ``NHWC`` numpy array,
    or an iterable of such batches, at the classifier's resolution. A binary attribute counts as positive
    when its predicted probability exceeds 0.5; ``attributes`` defaults to every head of the classifier.
    """
    specs = _default_specs() if specs is None else specs
    heads = {a["name"]: a for a in classifier.attributes}
    names = list(heads) if attributes is None else list(attributes)
    unknown = [n for n in names if n not in heads]
    if unknown:
        raise KeyError(f"the classifier has no head for {unknown}; it predicts {sorted(heads)}")
    tallies = {n: _Tally(n, heads[n]["kind"], specs, heads[n].get("num_classes")) for n in names}
    device = next(classifier.parameters()).device
    for b in _float_batches(images, batch):
        pred = classifier.predict(b.to(device))
        for n in names:
            tallies[n].add(pred[n].double().cpu().numpy())
    return {n: t.result(probability=True) for n, t in tallies.items()}


def table_marginals(table: Mapping[str, np.ndarray], attributes: Sequence[str] | None = None,
                    specs: Mapping[str, Any] | None = None) -> Marginals:
    """Attribute marginals of a ground-truth table (``{name: array}``, as :func:`render_batch` returns:
    categorical attributes as class indices, binary as 0/1, continuous as values)."""
    specs = _default_specs() if specs is None else specs
    names = [n for n in table if n in specs] if attributes is None else list(attributes)
    out = {}
    for n in names:
        if n not in table:
            raise KeyError(f"the table has no column {n!r}")
        if n not in specs:
            raise KeyError(f"no spec for attribute {n!r} (pass specs=)")
        spec = specs[n]
        tally = _Tally(n, spec.kind, specs, len(spec.values) if spec.kind == "categorical" else None)
        tally.add(np.asarray(table[n]))
        out[n] = tally.result()
    return out


def compare_marginals(reference: Marginals, other: Marginals) -> dict[str, dict[str, float | None]]:
    """Per attribute present in both: ``max_abs_diff_pp``, the largest absolute gap in percentage points
    (binary share, any class share of a histogram, or the binary reading of a continuous attribute; None if a
    continuous attribute has no threshold) and ``mean_diff`` (``other - reference`` of a continuous mean,
    in the attribute's units; None otherwise)."""
    out: dict[str, dict[str, float | None]] = {}
    for name, ref in reference.items():
        if name not in other:
            continue
        oth = other[name]
        if ref["kind"] != oth["kind"]:
            raise ValueError(f"attribute {name!r} is {ref['kind']} in one set and {oth['kind']} in the other")
        pp: float | None
        mean_diff = None
        if ref["kind"] == "binary":
            pp = 100.0 * abs(ref["fraction"] - oth["fraction"])
        elif ref["kind"] == "categorical":
            classes = set(ref["histogram"]) | set(oth["histogram"])
            pp = 100.0 * max(abs(ref["histogram"].get(c, 0.0) - oth["histogram"].get(c, 0.0)) for c in classes)
        else:
            a, b = ref["fraction_positive"], oth["fraction_positive"]
            pp = None if a is None or b is None else 100.0 * abs(a - b)
            mean_diff = oth["mean"] - ref["mean"]
        out[name] = {"max_abs_diff_pp": pp, "mean_diff": mean_diff}
    return out


# -- timing -------------------------------------------------------------------------------------------
def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class timer:  # lower case: used like a function, `with timer() as t:`
    """Wall-clock time of a block: ``with timer() as t: ...`` then ``t.seconds``. Waits for queued CUDA
    work at both ends, so GPU timings are real."""

    def __init__(self) -> None:
        self.start = 0.0
        self.seconds = float("nan")

    def __enter__(self) -> timer:
        _sync()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        _sync()
        self.seconds = time.perf_counter() - self.start


def median_seconds(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        with timer() as t:
            fn()
        times.append(t.seconds)
    return statistics.median(times)
