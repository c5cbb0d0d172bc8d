"""``idinvert bench``: one leaderboard of every registered inversion method, on the same held-out images, with
every registered metric.

The methods are the registry's inverters (``register_inverters``: each named embed/refine composition,
built-in or third-party), minus the restoration and editing tasks (:data:`TASK_METHODS`; an inverter can opt out
with ``benchmark = False``). A method that needs an encoder gets its own when the pipeline declares one
(``"encoders": {"e4e": ...}`` for ``e4e``, as :meth:`~idinvert_plugins.pipeline.Pipeline.encoder_for`), else the
first of the pipeline's other encoders it accepts (the domain-guided one first); a method without refiners (an
encoder alone) runs once per encoder it accepts, so the conventional encoder of the IDInvert paper gets its row
(``encoder@conventional``).

Each method inverts the first ``n`` test images of the generator's domain (or the images of a folder), in
batches; its latents (W+ codes and every part: noise maps, weight offsets, ...), seconds and per-step error
curves are cached per method (``CACHE/<generator>/<method>.safetensors`` + ``.json``), keyed by the method's
options and description, the fingerprints of the generator, encoder and perceptual network and the images, so a
rerun inverts only what changed (a new method, other options, retrained weights, more images) and reuses the
metric values of an unchanged method. The inversion and its cache are in :mod:`.inversions`, shared with ``idinvert
evaluate``: with the same ``--cache``, the paper's tables reuse these inversions and the other way round.

Each method is then measured by every registered metric (:mod:`idinvert_plugins.metrics.registry`): fidelity
and realism of its reconstructions, the attribute classifier's agreement, and editability: every attribute
direction of the pipeline (``--editors``: a subset by name) moves each code by the documented step towards the
other side of its attribute, as :func:`~idinvert_plugins.editors.crosstalk.measure_crosstalk` does
(``statistic="absolute"``), keeping every other part of the latent, and the edited images are scored. Outputs:
``OUT/leaderboard.json`` (every number, merged over generators), ``OUT/pareto-<generator>.png`` (fidelity against
editability, every method labelled, the Pareto front joined) and a markdown page (``--report``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..metrics.registry import Metric, get_metrics, main_value
from .inversions import (
    DEFAULT_CACHE,
    Entry,
    LatentCache,
    MethodRun,
    TestImages,
    domain_images_id,
    fingerprint,
    generator_cache,
    invert_entry,
    load_test_images,
)
from .inversions import jsonable as _jsonable
from .measures import SPREAD_IMAGES, EditSetup, edit_setup, measure_run
from .runner import machine_info

#: Registered compositions that solve another task than reconstruction (they need a hole, a second image, or
#: compare a degraded render): not benchmarked unless named with ``--methods``.
TASK_METHODS = frozenset({"inpaint", "crossover", "superres", "colorize"})
#: The method whose final reconstruction error is the time-to-quality target, and the two the frontier question
#: of issue 18 compares against.
REFERENCE = "idinvert"
BASELINES = ("idinvert", "image2stylegan")
#: Pareto plot axes: (x metric, y metric), both lower is better.
PARETO_AXES = ("mse", "fd_edited")


@dataclass
class BenchConfig:
    """What ``idinvert bench`` runs. ``methods``/``directions``/``metrics``: None = every registered one (tasks
    excluded, see :data:`TASK_METHODS`). ``steps``: overrides the step count of every method that declares
    ``steps`` (None: each method's default). ``max_steps``: caps the step count instead (``--quick``)."""

    n: int = 32
    methods: tuple[str, ...] | None = None
    directions: tuple[str, ...] | None = None
    metrics: tuple[str, ...] | None = None
    steps: int | None = None
    max_steps: int | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    edit_step: float = 3.0
    batch: int = 8
    seed: int = 0
    spread_images: int = SPREAD_IMAGES

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """Seconds on a tiny model, a minute or two on the bundled ones: 4 images, at most 5 steps, the attribute
        spreads over the test images themselves."""
        base = cls(n=4, max_steps=5, batch=4, spread_images=0)
        given = {k: v for k, v in overrides.items() if v is not None}
        if "n" in given:
            given["n"] = min(given["n"], base.n)
        if "steps" in given:
            given["steps"] = min(given["steps"], base.max_steps)
        return replace(base, **given)

    def __post_init__(self) -> None:
        for name in ("n", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.edit_step <= 0:
            raise ValueError(f"edit_step must be positive, got {self.edit_step}")
        for name in ("methods", "directions", "metrics"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, tuple(value))


# -- which methods --------------------------------------------------------------------------------------------------
def benchmark_methods(names: Sequence[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The registered inverters to benchmark: ``names`` as given (unknown names raise listing the known ones), or
    every registered one but the tasks. Returns ``(names, excluded)`` with the reason for each excluded one."""
    from ..plugins import get_plugins

    plugins = get_plugins()
    if names is not None:
        for n in names:
            plugins.get("inverter", n)
        return list(dict.fromkeys(names)), {}
    chosen, excluded = [], {}
    for n in plugins.names("inverter"):
        inv = plugins.get("inverter", n)
        if n in TASK_METHODS:
            excluded[n] = "a restoration/editing task, not reconstruction (name it with --methods to run it)"
        elif getattr(inv, "benchmark", True) is False:
            excluded[n] = "the method opts out (benchmark = False)"
        else:
            chosen.append(n)
    # the reference first (its error is the other methods' time-to-quality target), then the built-ins, then plugins
    builtin = {n for n in chosen if plugins.items["inverter"][n].plugin.startswith("idinvert_plugins.")}
    chosen.sort(key=lambda n: (n != REFERENCE, n not in builtin, n))
    return chosen, excluded


def _refiners(inverter: Any) -> tuple[Any, ...]:
    try:
        return tuple(getattr(inverter, "refiners", ()))
    except Exception:  # noqa: BLE001 - a composition naming a stage that is not registered
        return ()


def _encoders(pipe: Any) -> list[tuple[str, nn.Module]]:
    out = [("encoder", pipe.encoder)] if pipe.encoder is not None else []
    out += [(f"encoders.{k}", m) for k, m in pipe.encoders.items() if m is not None]
    return out


def _encoder_roles(plugins: Any) -> set[str]:
    """The ``encoder_role`` of every registered method (``psp``, ``e4e``, ``restyle``): the pipeline's encoders of
    these names belong to their method."""
    roles = set()
    for n in plugins.names("inverter"):
        try:
            role = getattr(plugins.get("inverter", n), "encoder_role", None)
        except Exception:  # noqa: BLE001 - a composition naming a stage that is not registered
            role = None
        if role:
            roles.add(str(role))
    return roles


def _candidates(pipe: Any, inverter: Any, roles: set[str]) -> list[tuple[str, nn.Module]]:
    """The encoders a method is tried with: its own (``pipeline.json``'s ``encoders.<role>``, as
    :meth:`~idinvert_plugins.pipeline.Pipeline.encoder_for` picks it) alone when the pipeline declares one; else the
    pipeline's encoders minus those that belong to another method (``encoders.e4e`` is e4e's, not a plain encoder's)."""
    role = getattr(inverter, "encoder_role", None)
    own = pipe.encoders.get(role) if role else None
    if own is not None:
        return [(f"encoders.{role}", own)]
    return [(k, m) for k, m in _encoders(pipe) if k.removeprefix("encoders.") not in roles]


def _row_key(method: str, encoder: str | None, first: bool) -> str:
    if encoder is None or encoder == "encoder" or first:
        return method
    return f"{method}@{encoder.removeprefix('encoders.')}"


def method_options(inverter: Any, cfg: BenchConfig, method: str) -> dict[str, Any]:
    """The options a method runs with under ``cfg``: ``steps`` overridden or capped where it declares it, plus
    ``cfg.options[method]``."""
    try:
        params = {p.name: p for p in inverter.params}
    except Exception:  # noqa: BLE001
        params = {}
    options: dict[str, Any] = {}
    if "steps" in params:
        steps = cfg.steps if cfg.steps is not None else params["steps"].default
        if cfg.max_steps is not None and steps is not None:
            steps = min(int(steps), cfg.max_steps)
        if steps is not None and (cfg.steps is not None or cfg.max_steps is not None):
            options["steps"] = int(steps)
    options.update(cfg.options.get(method, {}))
    return options


# -- the run --------------------------------------------------------------------------------------------------------
def bench_generator(
    pipe: Any,
    *,
    cfg: BenchConfig | None = None,
    cache_dir: str | Path | None = None,
    name: str | None = None,
    test: TestImages | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Benchmark every method on one pipeline's generator (see the module docstring). ``test``: the images
    (default: the first ``cfg.n`` test images of the pipeline's domain). Returns the generator's results."""
    from tqdm.auto import tqdm

    from ..domains import get_domain
    from ..plugins import get_plugins

    cfg = cfg or BenchConfig()
    G = pipe.generator
    name = name or pipe.name
    dom = pipe.domain or get_domain(None)
    if test is None:
        test = load_test_images(cfg.n, G.resolution, seed=cfg.seed, domain=dom)
        test.domain_images = True
        images_id = domain_images_id(test, dom.name)
    else:
        test.domain_images = getattr(test, "domain_images", False)
        images_id = {"images": hashlib.sha1(test.images.float().numpy().tobytes()).hexdigest()[:16],
                     "count": len(test)}
    cache = generator_cache(cache_dir, name)
    plugins = get_plugins()
    metrics = get_metrics(cfg.metrics)
    names, excluded = benchmark_methods(cfg.methods)
    roles = _encoder_roles(plugins)
    setup = edit_setup(pipe.classifier, pipe.directions, test, dom, resolution=pipe.resolution,
                       selected=cfg.directions, spread_images=cfg.spread_images, cache_dir=cache_dir)
    fd_features = None
    if pipe.classifier is not None:
        from ..features import frechet_features
        from .tables import fd_name

        fd_features = frechet_features(pipe.classifier, "pool", name=fd_name(dom))
    networks = {"classifier": fingerprint(pipe.classifier), "feature_net": fingerprint(pipe.feature_net)}
    rows: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = dict(excluded)
    started = time.perf_counter()
    mse_target: float | None = None
    outer = tqdm(names, desc=f"bench {name}", unit="method", disable=not progress)
    for method in outer:
        outer.set_postfix_str(method)
        inverter = plugins.get("inverter", method)
        reg = plugins.items["inverter"][method]
        needs_encoder = bool(getattr(inverter, "requires_encoder", False))
        candidates: list[tuple[str | None, nn.Module | None]] = (list(_candidates(pipe, inverter, roles))
                                                                 if needs_encoder else [(None, None)])
        if needs_encoder and not candidates:
            skipped[method] = "needs an encoder and the pipeline has none"
            continue
        per_encoder = needs_encoder and not _refiners(inverter)
        accepted = 0
        why = ""
        for enc_key, encoder in candidates:
            entry = Entry(_row_key(method, enc_key, accepted == 0), method, enc_key)
            bar = tqdm(total=len(test), desc=f"  {entry.key}", unit="img", leave=False, disable=not progress)
            try:
                run = invert_entry(entry, inverter, G, test, images_id, cache,
                                   options=method_options(inverter, cfg, method), encoder=encoder,
                                   feature_net=pipe.feature_net, batch=cfg.batch, bar=bar)
            except ValueError as exc:
                why = str(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - one broken (third-party) method must not stop the others
                why = f"failed: {type(exc).__name__}: {exc}"
                break
            finally:
                bar.close()
            accepted += 1
            if method == REFERENCE and mse_target is None:  # the target of every method's time to quality
                mse_target = run.curve()["mse"][-1]
            rows[entry.key] = _measure(run, pipe, test, cfg, setup, metrics, fd_features, mse_target, networks,
                                       cache, reg, inverter, progress)
            if not per_encoder:
                break
        if not accepted:
            skipped[method] = why or "no encoder of the pipeline fits it"
    outer.close()
    frontier = pareto(rows, *PARETO_AXES)
    return _jsonable({
        "name": name, "architecture": getattr(G, "architecture", type(G).__name__), "resolution": G.resolution,
        "domain": dom.name, "n": len(test), "images": images_id, "config": asdict(cfg), "rows": rows,
        "skipped": skipped, "mse_target": mse_target, "reference": REFERENCE,
        "directions": sorted(setup.directions) if setup else [],
        "directions_skipped": setup.skipped if setup else {},
        "metrics": {m.name: m.describe() for m in metrics}, "pareto": frontier,
        "dominating": dominating(rows, BASELINES, *PARETO_AXES), "wall_seconds": time.perf_counter() - started,
    })


def _measure(run: MethodRun, pipe: Any, test: TestImages, cfg: BenchConfig, setup: EditSetup | None,
             metrics: Sequence[Metric], fd_features: Any, mse_target: float | None, networks: Mapping[str, str],
             cache: LatentCache, reg: Any, inverter: Any, progress: bool = False) -> dict[str, Any]:
    m = measure_run(run, pipe.generator, test, cache, metrics=metrics, setup=setup, edit_step=cfg.edit_step,
                    feature_net=pipe.feature_net, fd_features=fd_features, classifier=pipe.classifier,
                    mse_target=mse_target, networks=networks, progress=progress)
    return {
        "method": run.entry.method, "encoder": run.entry.encoder, "description": getattr(inverter, "description", ""),
        "plugin": reg.plugin, "source": reg.source, "third_party": not reg.plugin.startswith("idinvert_plugins."),
        "options": run.options, "n": len(run.latent), "reused": run.reused, "metrics_recomputed": m.recomputed,
        "parts": sorted(run.latent.parts), "metrics": m.values, "not_measured": m.skipped, "curve": run.curve(),
    }


def pareto(rows: Mapping[str, Mapping[str, Any]], x: str, y: str) -> list[str]:
    """The rows no other row beats on both ``x`` and ``y`` (lower is better; rows without both are left out),
    by increasing ``x``."""
    pts = {k: (main_value(r["metrics"].get(x)), main_value(r["metrics"].get(y))) for k, r in rows.items()}
    pts = {k: p for k, p in pts.items() if all(math.isfinite(v) for v in p)}
    front = [k for k, (a, b) in pts.items()
             if not any(c <= a and d <= b and (c < a or d < b) for j, (c, d) in pts.items() if j != k)]
    return sorted(front, key=lambda k: pts[k])


def dominating(rows: Mapping[str, Mapping[str, Any]], baselines: Sequence[str], x: str, y: str) -> list[str]:
    """The rows at least as good as every baseline on both ``x`` and ``y`` and better on one against each."""
    base = [rows[b] for b in baselines if b in rows]
    if len(base) < len(baselines):
        return []

    def xy(r: Mapping[str, Any]) -> tuple[float, float]:
        return main_value(r["metrics"].get(x)), main_value(r["metrics"].get(y))

    out = []
    for k, r in rows.items():
        if k in baselines:
            continue
        a, b = xy(r)
        if not (math.isfinite(a) and math.isfinite(b)):
            continue
        if all(a <= c and b <= d and (a < c or b < d) for c, d in map(xy, base)):
            out.append(k)
    return out


# -- outputs --------------------------------------------------------------------------------------------------------
def run_bench(
    generators: Sequence[str],
    *,
    cfg: BenchConfig | None = None,
    out_dir: str | Path = "runs/bench",
    report: str | Path | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE,
    images: str | Path | None = None,
    device: str = "cpu",
    command: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Benchmark each generator (a named model, folder or Hub id, through its pipeline), merge the results into
    ``out_dir/leaderboard.json``, draw ``out_dir/pareto-<generator>.png`` and write ``report`` (default
    ``out_dir/leaderboard.md``). ``images``: a folder of the user's own images instead of the domain's test split
    (the first ``cfg.n``, sorted by name)."""
    from ..pipeline import Pipeline
    from .leaderboard import pareto_plot, write_leaderboard

    cfg = cfg or BenchConfig()
    if not generators:
        raise ValueError("name at least one generator (--generator NAME)")
    out_dir = Path(out_dir)
    report = Path(report) if report is not None else out_dir / "leaderboard.md"
    path = out_dir / "leaderboard.json"
    merged: dict[str, Any] = {"generators": {}}
    if path.is_file():
        merged = json.loads(path.read_text(encoding="utf-8"))
        merged.setdefault("generators", {})
    for gen in generators:
        pipe = Pipeline.from_pretrained(gen, device=device)
        test = folder_images(images, cfg.n, pipe.resolution) if images is not None else None
        res = bench_generator(pipe, cfg=cfg, cache_dir=cache_dir, name=str(gen), test=test, progress=progress)
        res["machine"] = machine_info(device)
        res["date"] = time.strftime("%Y-%m-%d %H:%M")
        res["command"] = command
        res["pareto_plot"] = os.path.relpath(pareto_plot(res, out_dir / f"pareto-{_slug(str(gen))}.png"),
                                             report.parent)
        merged["generators"][res["name"]] = res
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(merged), indent=1) + "\n", encoding="utf-8")
    write_leaderboard(merged, report, json_path=os.path.relpath(path, report.parent))
    return merged


def folder_images(folder: str | Path, n: int, resolution: int) -> TestImages:
    """The first ``n`` images of a folder (sorted by name) at ``resolution``, as test images without labels."""
    from ..images import load_image

    folder = Path(folder)
    exts = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in exts) if folder.is_dir() else []
    if not files:
        raise ValueError(f"--images {folder}: no .png/.jpg/.webp images there")
    files = files[:n]
    images = torch.stack([load_image(p, resolution, crop=True) for p in files])
    return TestImages(images, list(range(len(files))), {}, 0, len(files), None)


def _slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "generator"


__all__ = ["BASELINES", "BenchConfig", "Entry", "LatentCache", "MethodRun", "REFERENCE", "TASK_METHODS",
           "bench_generator", "benchmark_methods", "dominating", "folder_images", "invert_entry", "pareto",
           "run_bench"]
