"""Measuring one method's inversions: the metric values ``idinvert bench`` ranks and ``idinvert evaluate``'s
Table I and editability sections print, computed by one function (:func:`measure_run`) and kept in the method's
cache record beside its latents (:mod:`.inversions`).

Every registered metric (:mod:`idinvert_plugins.metrics.registry`) reads what the method produced: its
reconstructions; its codes edited along every attribute direction by the documented step towards the other side
of the attribute, as :func:`~idinvert_plugins.editors.crosstalk.measure_crosstalk` does (``statistic="absolute"``,
keeping every other part of the latent); the interpolations between each code and the next (the paper's Table II);
its seconds and per-step error curve. The values and the cross-talk matrix are stored under a key of everything
they depend on (the inversion's identity, the image count, its time and per-step curve, the step, the directions,
the metrics, the networks, the attribute spreads, the time-to-quality target; the last few keys are kept), so
whichever command measures a method first, the other reads the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..latent import Latent
from ..metrics.registry import Metric, MetricData, compute_metrics
from .inversions import LatentCache, MethodRun, TestImages, fingerprint, jsonable, load_test_images, render_latent

#: Real test images the attribute spreads (the unit of the cross-talk) are measured on, at least.
SPREAD_IMAGES = 1000
#: Measurements kept per method (different image counts, steps or directions of the same inversions).
KEPT_MEASUREMENTS = 4
#: Where between each code and the next the interpolation metrics render (the paper's Table II).
INTERPOLATION_TS = (0.25, 0.5, 0.75)


@dataclass
class EditSetup:
    """The directions measured, how the classifier scores them, and the real images' spreads."""

    directions: dict[str, Any]
    targets: dict[str, Any]
    score: Callable[[torch.Tensor], dict[str, torch.Tensor]]
    scales: dict[str, float]
    skipped: dict[str, str]
    spread_images: int = 0


def edit_setup(classifier: nn.Module | None, directions: Mapping[str, Any], test: TestImages, domain: Any, *,
               resolution: int, selected: Sequence[str] | None = None, spread_images: int = SPREAD_IMAGES,
               cache_dir: str | Path | None = None) -> EditSetup | None:
    """The directions a classifier head reads (``selected``: these only; an unknown name raises listing the known
    ones), or None without a classifier or directions. The attribute spreads are measured over ``spread_images``
    real test images of ``domain`` (over ``test`` itself when it has as many, or is not the domain's split) and kept
    in ``cache_dir``."""
    from .editability import classifier_scorer, real_spreads, resolve_targets

    dirs = dict(directions)
    if classifier is None or not dirs:
        return None
    if selected is not None:
        unknown = [d for d in selected if d not in dirs]
        if unknown:
            raise ValueError(f"--editors: no direction {unknown} for this generator; it has {', '.join(dirs)}")
        dirs = {d: dirs[d] for d in selected}
    targets, skipped = resolve_targets(dirs, classifier.attributes, domain)
    if not targets:
        return EditSetup({}, {}, lambda x: {}, {}, skipped)
    score = classifier_scorer(classifier, targets)
    many = spread_images > len(test) and getattr(test, "domain_images", False)
    key = hashlib.sha1(json.dumps({"classifier": fingerprint(classifier), "targets": sorted(targets),
                                   "domain": domain.name, "seed": test.seed, "n": spread_images if many else None,
                                   "images": None if many else hashlib.sha1(test.images.numpy().tobytes()).hexdigest(),
                                   "resolution": resolution}, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"spreads-{key}.json" if cache_dir is not None else None
    scales = json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else None
    if scales is None:  # the real images' spreads: the same for every generator of the domain at this resolution
        spread_set = load_test_images(spread_images, resolution, seed=test.seed, domain=domain) if many else test
        scales = real_spreads(score(spread_set.images))
        if path is not None:  # atomic: benches of two generators may share the cache folder
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(scales, indent=1) + "\n", encoding="utf-8")
            tmp.replace(path)
    return EditSetup({n: dirs[n] for n in targets}, targets, score, scales, skipped,
                     spread_images if many else len(test))


def measure_edits(G: Any, latent: Latent, setup: EditSetup, step: float,
                  progress: Callable[[str], None] | None = None) -> tuple[Any, dict[str, torch.Tensor]]:
    """Cross-talk (``statistic="absolute"``) of every direction on these latents, and the edited images
    (``progress``: called with each direction's name when it is measured)."""
    from ..editors.crosstalk import measure_crosstalk

    rendered: list[torch.Tensor] = []

    def render_codes(codes: torch.Tensor) -> torch.Tensor:
        images = render_latent(G, latent.with_wp(codes))
        rendered.append(images)
        return images

    ct = measure_crosstalk(latent.wp, setup.directions, render_codes, setup.score,
                           thresholds={n: t.threshold for n, t in setup.targets.items()},
                           families={n: t.attribute for n, t in setup.targets.items()}, step=step,
                           scales=setup.scales, samples="test_images", statistic="absolute", progress=progress)
    edited = dict(zip(setup.directions, rendered[1:], strict=True))
    return ct, edited


def interpolations(G: Any, latent: Latent, ts: Sequence[float] = INTERPOLATION_TS) -> torch.Tensor:
    """Each image's latent moved towards the next image's W+ code (cyclically) by ``ts``, rendered with the
    image's own other parts: ``[N * len(ts), C, R, R]``, image-major."""
    from .editability import interpolation_codes

    codes = interpolation_codes(latent.wp, ts).view(len(latent), len(ts), *latent.wp.shape[1:])
    return render_latent(G, latent.with_wp(codes).flat())


@dataclass
class Measured:
    """One method's metric values (``values``; ``skipped``: why a metric was not measured), the cross-talk of its
    edits (None without directions) and whether they were computed now (``recomputed``) or read back."""

    values: dict[str, Any]
    skipped: dict[str, str]
    crosstalk: Any
    recomputed: bool


def metrics_key(run: MethodRun, *, setup: EditSetup | None, edit_step: float, metrics: Sequence[Metric],
                mse_target: float | None, networks: Mapping[str, str]) -> str:
    """What a method's metric values depend on, hashed."""
    parts = {"identity": run.identity, "n": len(run.latent), "edit_step": edit_step,
             "directions": sorted(setup.directions) if setup else [], "metrics": [m.describe() for m in metrics],
             "mse_target": None if mse_target is None else round(mse_target, 9), "networks": dict(networks),
             "scales": {k: round(v, 6) for k, v in sorted(setup.scales.items())} if setup else {},
             "interpolation": list(INTERPOLATION_TS), "seconds": round(run.seconds, 6),
             "curve": hashlib.sha1(json.dumps(jsonable(run.curve()), sort_keys=True).encode()).hexdigest()[:16]}
    return hashlib.sha1(json.dumps(jsonable(parts), sort_keys=True).encode()).hexdigest()[:16]


def measure_run(run: MethodRun, G: Any, test: TestImages, cache: LatentCache, *, metrics: Sequence[Metric],
                setup: EditSetup | None, edit_step: float, feature_net: nn.Module | None = None,
                fd_features: Any = None, classifier: nn.Module | None = None, mse_target: float | None = None,
                networks: Mapping[str, str] | None = None, progress: bool = False) -> Measured:
    """Every metric of one method's inversions of ``test`` (see the module docstring), read from its cache record
    when measured before under the same key, else computed and stored there (``progress``: a bar over the
    directions while it measures)."""
    from ..editors.crosstalk import CrossTalk

    networks = dict(networks) if networks is not None else {"classifier": fingerprint(classifier),
                                                            "feature_net": fingerprint(feature_net)}
    key = metrics_key(run, setup=setup, edit_step=edit_step, metrics=metrics, mse_target=mse_target,
                      networks=networks)
    edits = bool(setup and setup.directions)
    slots = _slots(run.record.get("metrics") if run.record else None)
    stored = slots.get(key)
    if stored and (stored.get("crosstalk") is not None or not edits):
        ct = CrossTalk.from_json(stored["crosstalk"]) if stored.get("crosstalk") is not None else None
        return Measured(stored["values"], stored["skipped"], ct, False)
    from tqdm.auto import tqdm

    recon = render_latent(G, run.latent)
    bar = tqdm(total=len(setup.directions) if edits else 0, desc=f"  measure {run.entry.key}", unit="direction",
               leave=False, disable=not (progress and edits))
    try:
        ct, edited = (measure_edits(G, run.latent, setup, edit_step, progress=lambda name: bar.update(1)) if edits
                      else (None, {}))
    finally:
        bar.close()
    wants_interpolation = any("interpolated" in m.needs for m in metrics)
    data = MetricData(test.images, recon, seconds_per_image=run.seconds_per_image, feature_net=feature_net,
                      fd_features=fd_features, classifier=classifier, edited=edited, crosstalk=ct,
                      interpolated=interpolations(G, run.latent) if wants_interpolation and len(run.latent) > 1
                      else None,
                      curve=run.curve(), mse_target=mse_target,
                      info={"method": run.entry.method, "options": run.options})
    values, skipped = compute_metrics(data, metrics)
    values = jsonable(values)
    on_disk = cache.read_record(run.entry.cache_key) or {}
    if (on_disk.get("identity") == json.loads(json.dumps(jsonable(run.identity)))
            and on_disk.get("count") == run.record.get("count", len(run.latent))):
        # another process (bench beside evaluate) may have measured other settings meanwhile: keep its values too
        slots = {**_slots(on_disk.get("metrics")), **slots}
    run.record = {**run.record, "identity": run.identity, "seconds": run.record.get("seconds", run.seconds),
                  "batches": run.record.get("batches", run.batches),
                  "metrics": _keep(slots, key, {"key": key, "values": values, "skipped": skipped,
                                                "crosstalk": ct.to_json() if ct is not None else None})}
    cache.save_record(run.entry.cache_key, {**run.record, "count": run.record.get("count", len(run.latent))})
    # as stored (rounded), so a value is the same whether measured now or read back
    return Measured(values, skipped, CrossTalk.from_json(ct.to_json()) if ct is not None else None, True)


def _slots(stored: Any) -> dict[str, Any]:
    """A record's measurements by key (a record of the one-measurement layout holds one)."""
    if not stored:
        return {}
    if "key" in stored:
        return {stored["key"]: stored}
    return dict(stored)


def _keep(slots: Mapping[str, Any], key: str, measured: dict[str, Any]) -> dict[str, Any]:
    """The record's measurements with ``measured`` added under ``key``: the last :data:`KEPT_MEASUREMENTS`, so the
    leaderboard's image count and the paper tables' do not measure each other's away."""
    out = {k: v for k, v in slots.items() if k != key}
    out[key] = measured
    return dict(list(out.items())[-KEPT_MEASUREMENTS:])


__all__ = ["INTERPOLATION_TS", "SPREAD_IMAGES", "EditSetup", "Measured", "edit_setup", "interpolations",
           "measure_edits", "measure_run", "metrics_key"]
