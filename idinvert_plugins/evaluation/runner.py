"""The ``idinvert evaluate`` driver: invert the test split with every method, measure, draw the figures.

:func:`evaluate` works on already-loaded models for one generator and returns plain dicts (what the report
prints); :func:`run_evaluation` loads models by name, evaluates each generator, merges the results into
``OUT/results.json`` (so a later ``--only`` run updates only its sections) and writes the markdown report.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..domains import Domain, get_domain
from ..editors.directions import Direction
from ..metrics.registry import get_metrics, main_value
from ..models.base import Generator
from ..models.classifier import heads_from_specs
from .editability import SUCCESS_TARGET, edit_codes, editability_rows, resolve_targets, summarise
from .inversions import (
    DEFAULT_CACHE,
    METHODS,
    SHORT_LABELS,
    LatentCache,
    MethodRun,
    TestImages,
    generator_cache,
    invert_cached,
    load_test_images,
    render_codes,
    render_latent,
)
from .measures import INTERPOLATION_TS, SPREAD_IMAGES, EditSetup, Measured, edit_setup, measure_run
from .plots import labelled_grid, line_plot, tile_pngs
from .tables import fd_name, ldom_sweep_row, semantic_property

SECTIONS = ("table1", "semantic", "ldom", "editability")
#: ``run_evaluation(classifier=, feature_net=)``: the evaluation domain's network serves every generator
FROM_DOMAIN = "domain"


@dataclass
class EvalConfig:
    """How much to measure. ``i2s_steps`` None means as many Image2StyleGAN steps as IDInvert steps (the paper
    ran Image2StyleGAN far longer; on a CPU that is not affordable). ``ldom_n`` images (the first of the test
    images) go through the l_dom sweep; ``edit_step`` is the documented manipulation step along the unit
    directions."""

    n: int = 500
    steps: int = 100
    i2s_steps: int | None = None
    l_dom: float = 2.0
    ldom_values: tuple[float, ...] = (0.0, 0.5, 2.0, 10.0, 40.0)
    ldom_n: int = 100
    edit_step: float = 3.0
    batch: int = 16
    sections: tuple[str, ...] = SECTIONS
    seed: int = 0
    n_figure: int = 8
    diffusion_examples: int = 3
    spread_images: int = SPREAD_IMAGES

    @classmethod
    def quick(cls, **overrides: Any) -> EvalConfig:
        """A few minutes on a CPU: 8 images, 10 steps, 4 images in the l_dom sweep (for sizing a real run)."""
        return replace(cls(n=8, steps=10, ldom_n=4, n_figure=4, diffusion_examples=1), **overrides)

    def __post_init__(self) -> None:
        self.sections = tuple(self.sections)
        self.ldom_values = tuple(float(v) for v in self.ldom_values)
        unknown = [s for s in self.sections if s not in SECTIONS]
        if unknown:
            raise ValueError(f"unknown evaluation section(s) {unknown}; choose from {', '.join(SECTIONS)}")
        for name in ("n", "ldom_n", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.steps < 0 or (self.i2s_steps is not None and self.i2s_steps < 0):
            raise ValueError("steps must be >= 0")
        if self.edit_step <= 0:
            raise ValueError(f"edit_step must be positive, got {self.edit_step}")


@dataclass
class _Context:
    generator: Generator
    test: TestImages
    cfg: EvalConfig
    cache: LatentCache
    encoders: dict[str, nn.Module]
    feature_net: nn.Module | None
    fig_dir: Path
    progress: bool
    classifier: nn.Module | None = None
    fd_features: Any = None
    setup: EditSetup | None = None
    inversions: dict[str, MethodRun] = field(default_factory=dict)
    measured: dict[str, Measured] = field(default_factory=dict)

    def invert(self, method: str, test: TestImages | None = None, variant: str | None = None,
               options: dict[str, Any] | None = None) -> MethodRun:
        """One method's inversion of the test images (``test``: a prefix of them), through the cache ``idinvert
        bench`` shares (``variant``: a run with other ``options`` kept beside the method's main one)."""
        test = test or self.test
        if options is None and variant is None and test is self.test and method in self.inversions:
            return self.inversions[method]
        inv = invert_cached(method, self.generator, test, encoders=self.encoders, feature_net=self.feature_net,
                            options=options if options is not None else method_options(method, self.cfg),
                            cache=self.cache, variant=variant, batch=self.cfg.batch, progress=self.progress)
        if options is None and variant is None and test is self.test:
            self.inversions[method] = inv
        return inv

    def render(self, codes: torch.Tensor) -> torch.Tensor:
        return render_codes(self.generator, codes)

    def mse_target(self) -> float | None:
        """IDInvert's final reconstruction MSE, the time-to-quality target (as in ``idinvert bench``)."""
        if "domain-guided" not in self.encoders:
            return None
        return self.invert("idinvert").curve()["mse"][-1]

    def measure(self, method: str) -> Measured:
        """Every registered metric of one method's inversions, through :func:`~.measures.measure_run`: the values
        ``idinvert bench`` reports for the same method, images and settings (read back when it measured them)."""
        if method not in self.measured:
            self.measured[method] = measure_run(
                self.invert(method), self.generator, self.test, self.cache, metrics=get_metrics(None),
                setup=self.setup, edit_step=self.cfg.edit_step, feature_net=self.feature_net,
                fd_features=self.fd_features, classifier=self.classifier, mse_target=self.mse_target(),
                progress=self.progress)
        return self.measured[method]


def method_options(method: str, cfg: EvalConfig) -> dict[str, Any]:
    """Inverter options of a Table I method under ``cfg``."""
    if method == "idinvert":
        return {"steps": cfg.steps, "l_dom": cfg.l_dom}
    if method == "image2stylegan":
        return {"steps": cfg.steps if cfg.i2s_steps is None else cfg.i2s_steps}
    return {}


def subset(test: TestImages, n: int) -> TestImages:
    """The first ``n`` test images."""
    n = min(n, len(test))
    return TestImages(test.images[:n], test.indices[:n], {k: v[:n] for k, v in test.attributes.items()},
                      test.seed, test.n_total, test.domain)


def to_uint8_nchw(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] quantised as :func:`idinvert_plugins.images.to_uint8` does, kept NCHW."""
    return ((images.float() + 1.0) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)


def _slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "generator"


def _jsonable(value: Any) -> Any:
    """NaN and infinities become None (JSON has no NaN); tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return _jsonable(value.item())
    return value


def evaluate(
    generator: Generator,
    *,
    encoders: Mapping[str, nn.Module | None] | None = None,
    feature_net: nn.Module | None = None,
    classifier: nn.Module | None = None,
    directions: Mapping[str, Direction] | None = None,
    out_dir: str | Path,
    cache_dir: str | Path | None = None,
    config: EvalConfig | None = None,
    name: str | None = None,
    progress: bool = True,
    domain: str | Domain | None = None,
) -> dict[str, Any]:
    """Evaluate one generator on the first ``config.n`` test images of ``domain`` (None: the default domain).

    Args:
        encoders: ``{"domain-guided": E, "conventional": E_conv}``; a missing one drops its rows (and, for the
            domain-guided encoder, IDInvert, the l_dom sweep and the diffusion examples).
        feature_net: the perceptual network of the optimisation-based inverters (None: pixel loss only).
        classifier: the attribute classifier: Fréchet distances use its ``pool`` features, editability its
            predictions. None skips both.
        directions: attribute directions of ``generator`` by name (see :func:`generator_directions`).
        out_dir: figures go to ``out_dir/figures/<name>/``.
        cache_dir: inversions are cached in ``cache_dir/<name>/`` (None: no cache), the layout of ``idinvert
            bench``'s cache: with the same folder, either command reuses the other's inversions.

    Returns the generator's results (plain dicts and lists; figure paths relative to ``out_dir``).
    """
    cfg = config or EvalConfig()
    dom = get_domain(domain)
    G = generator
    name = name or getattr(getattr(G, "resolved", None), "name", None) or type(G).__name__
    slug = _slug(name)
    out_dir = Path(out_dir)
    test = load_test_images(cfg.n, G.resolution, seed=cfg.seed, domain=dom)
    test.domain_images = True
    ctx = _Context(
        generator=G, test=test, cfg=cfg, cache=generator_cache(cache_dir, name),
        encoders={k: v for k, v in (encoders or {}).items() if v is not None}, feature_net=feature_net,
        fig_dir=out_dir / "figures" / slug, progress=progress, classifier=classifier,
    )  # fmt: skip
    start = time.perf_counter()
    available = [m for m in METHODS if m == "image2stylegan" or
                 (m == "conventional" and "conventional" in ctx.encoders) or
                 (m in ("domain-guided", "idinvert") and "domain-guided" in ctx.encoders)]
    result: dict[str, Any] = {
        "name": name, "architecture": getattr(G, "architecture", type(G).__name__), "resolution": G.resolution,
        "num_layers": G.num_layers, "w_dim": G.w_dim, "n": len(ctx.test), "first_index": ctx.test.indices[0],
        "config": {**asdict(cfg), "i2s_steps": method_options("image2stylegan", cfg)["steps"]},
        "methods": available, "notes": [], "figures": {}, "timings": {}, "domain": dom.name,
    }  # fmt: skip
    for method in METHODS:
        if method not in available:
            missing = "conventional" if method == "conventional" else "domain-guided"
            result["notes"].append(f"{SHORT_LABELS[method]}: not measured (no {missing} encoder was given)")
    fd_fn = None
    if classifier is not None:
        from ..features import frechet_features

        fd_fn = frechet_features(classifier, "pool", name=fd_name(dom))
        ctx.fd_features = fd_fn
    else:
        result["notes"].append("no attribute classifier: Fréchet distances and editability are not measured")
    heads = classifier.attributes if classifier is not None else heads_from_specs(dom.attributes)
    targets, skipped = resolve_targets(directions or {}, heads, dom)
    for d, why in skipped.items():
        result["notes"].append(f"direction {d!r} not used: {why}")
    if not targets and ({"semantic", "editability"} & set(cfg.sections) or "ldom" in cfg.sections):
        result["notes"].append("no attribute directions found for this generator: the semantic-property "
                               "table, the manipulated-image distances and editability are not measured "
                               "(learn them with `idinvert directions learn`)")
    dirs = {n: directions[n] for n in targets} if directions else {}
    if classifier is not None and dirs:  # the edits every method's metrics measure, as idinvert bench's
        ctx.setup = edit_setup(classifier, dirs, ctx.test, dom, resolution=G.resolution,
                               spread_images=cfg.spread_images, cache_dir=cache_dir)

    def timed(section: str, fn, *args) -> None:
        t0 = time.perf_counter()
        fn(*args)
        result["timings"][section] = time.perf_counter() - t0

    if "table1" in cfg.sections:
        timed("table1", _table1, ctx, available, result, out_dir)
    if "semantic" in cfg.sections and dirs:
        timed("semantic", _semantic, ctx, available, targets, dirs, result, out_dir)
    if "ldom" in cfg.sections:
        if "domain-guided" in ctx.encoders:
            timed("ldom", _ldom, ctx, targets, dirs, fd_fn, result, out_dir)
        else:
            result["notes"].append("l_dom sweep: not measured (it needs the domain-guided encoder)")
    if "editability" in cfg.sections and dirs and classifier is not None:
        timed("editability", _editability, ctx, available, targets, dirs, result, out_dir)
    result["wall_seconds"] = time.perf_counter() - start
    return _jsonable(result)


def _rel(path: Path, out_dir: Path) -> str:
    return os.path.relpath(path, out_dir)


# -- sections -----------------------------------------------------------------------------------------------
def _table1(ctx: _Context, available: list[str], result: dict, out_dir: Path) -> None:
    """The paper's Table I: a view of each method's measured metrics (:meth:`_Context.measure`)."""
    rows: dict[str, dict[str, Any]] = {}
    for m in available:
        inv, measured = ctx.invert(m), ctx.measure(m)
        row = {k: main_value(measured.values.get(k)) for k in ("mse", "psnr", "ssim", "swd", "fd")}
        rows[m] = {**row, "seconds_per_image": float(inv.seconds_per_image), "n": len(inv.latent),
                   "reused_from_cache": inv.reused, "metrics_reused": not measured.recomputed, "options": inv.options}
    result["table1"] = rows
    k = min(ctx.cfg.n_figure, len(ctx.test))
    recon = {m: render_latent(ctx.generator, ctx.invert(m).latent[:k]) for m in available}
    tiles = torch.stack([torch.stack([ctx.test.images[i], *(recon[m][i] for m in available)]) for i in range(k)])
    path = labelled_grid(tiles.flatten(0, 1), k, 1 + len(available), ctx.fig_dir / "fig2_inversions.png",
                         col_labels=["input", *(SHORT_LABELS[m] for m in available)], scale=_scale(ctx))
    result["figures"]["fig2"] = _rel(path, out_dir)


def _scale(ctx: _Context) -> int:
    return max(1, 128 // ctx.generator.resolution)


def _semantic(ctx: _Context, available: list[str], targets, dirs, result: dict, out_dir: Path) -> None:
    methods = [m for m in ("image2stylegan", "idinvert") if m in available]
    labels = {n: t.labels(ctx.test.attributes) for n, t in targets.items()}
    labels = {n: v for n, v in labels.items() if v is not None}
    sem = semantic_property({m: ctx.invert(m).codes for m in methods}, dirs, labels)
    result["semantic"] = sem
    names = sorted({a for rows in sem.values() for a in rows})
    plots = []
    for a in names:
        # the staircase starts at recall 0 with the first precision: its area is the AP
        series = {f"{SHORT_LABELS[m]} (AP {sem[m][a]['ap']:.2f})":
                  ([0.0, *sem[m][a]["recall"]], [sem[m][a]["precision"][0], *sem[m][a]["precision"]])
                  for m in methods if a in sem[m]}
        plots.append(line_plot(series, ctx.fig_dir / "pr" / f"{_slug(a)}.png", title=a, xlabel="recall",
                               ylabel="precision", xlim=(0.0, 1.0), ylim=(0.0, 1.02), step=True, legend="lower left",
                               size=(360, 280)))
    if plots:
        result["figures"]["semantic_pr"] = _rel(tile_pngs(plots, ctx.fig_dir / "semantic_pr.png", cols=3), out_dir)


def _push_to_other_side(ctx: _Context, codes: torch.Tensor, test: TestImages, targets, dirs) -> torch.Tensor | None:
    """Each code moved by the edit step along each direction, away from its ground-truth label (down for
    positives, up for negatives), rendered: the manipulated images of the l_dom sweep."""
    images = []
    for n, t in targets.items():
        labels = t.labels(test.attributes)
        if labels is None:
            continue
        sign = 1.0 - 2.0 * torch.as_tensor(labels, dtype=torch.float32)
        images.append(to_uint8_nchw(ctx.render(edit_codes(codes, dirs[n], sign * ctx.cfg.edit_step))))
    return torch.cat(images) if images else None


def _ldom(ctx: _Context, targets, dirs, fd_fn, result: dict, out_dir: Path) -> None:
    cfg = ctx.cfg
    sub = subset(ctx.test, cfg.ldom_n)
    rows = []
    for v in cfg.ldom_values:
        # the main IDInvert run uses l_dom = cfg.l_dom: its cached codes serve that point of the sweep
        variant = None if v == cfg.l_dom else f"ldom{v:g}"
        inv = ctx.invert("idinvert", sub, variant=variant, options={"steps": cfg.steps, "l_dom": v})
        manipulated = _push_to_other_side(ctx, inv.codes, sub, targets, dirs) if dirs else None
        row = ldom_sweep_row(v, sub.images, ctx.render(inv.codes), manipulated, fd_fn)
        row["seconds_per_image"] = inv.seconds_per_image
        rows.append(row)
    result["ldom"] = {"n": len(sub), "steps": cfg.steps, "edit_step": cfg.edit_step, "rows": rows}
    ticks = [(float(i), f"{v:g}") for i, v in enumerate(cfg.ldom_values)]
    xs = list(range(len(rows)))
    plots = [line_plot({"reconstruction MSE": (xs, [r["mse"] for r in rows])}, ctx.fig_dir / "ldom_mse.png",
                       title="reconstruction", xlabel="l_dom", ylabel="MSE", xticks=ticks, legend=None,
                       size=(360, 280))]
    if any(math.isfinite(r["fd_manipulated"]) for r in rows):
        plots.append(line_plot({"manipulated": (xs, [r["fd_manipulated"] for r in rows])},
                               ctx.fig_dir / "ldom_fd.png", title="manipulated images", xlabel="l_dom",
                               ylabel="FD (classifier features)", xticks=ticks, legend=None, size=(360, 280)))
    result["figures"]["ldom"] = _rel(tile_pngs(plots, ctx.fig_dir / "ldom_sweep.png", cols=2), out_dir)


def _editability(ctx: _Context, available: list[str], targets, dirs, result: dict, out_dir: Path) -> None:
    """The paper's Table II and the per-attribute editability: a view of each method's measured edits and metrics
    (:meth:`_Context.measure`, the cross-talk ``idinvert bench`` ranks by)."""
    cfg, setup = ctx.cfg, ctx.setup
    methods = [m for m in ("image2stylegan", "idinvert") if m in available]
    out: dict[str, Any] = {"step": cfg.edit_step, "scales": setup.scales, "spread_images": setup.spread_images,
                           "methods": {}}
    for m in methods:
        measured = ctx.measure(m)
        rows = editability_rows(measured.crosstalk)
        v = measured.values
        n = len(ctx.test)
        out["methods"][m] = {
            "attributes": rows, "summary": summarise(rows),
            "fd_manipulated": main_value(v.get("fd_edited")), "swd_manipulated": main_value(v.get("swd_edited")),
            "fd_interpolated": main_value(v.get("fd_interpolated")),
            "swd_interpolated": main_value(v.get("swd_interpolated")),
            "crosstalk": main_value(v.get("crosstalk")), "edit_success": main_value(v.get("edit_success")),
            "n_manipulated": n * len(rows), "n_interpolated": n * len(INTERPOLATION_TS) if n > 1 else 0,
        }  # fmt: skip
    if "idinvert" in out["methods"]:
        ours = out["methods"]["idinvert"]["attributes"]
        theirs = out["methods"].get("image2stylegan", {}).get("attributes", {})
        out["must_show"] = {
            n: {"success_rate": r["success_rate"], "holds_success": r["success_rate"] >= SUCCESS_TARGET,
                "others_idinvert": r["others_mean"],
                "others_image2stylegan": theirs[n]["others_mean"] if n in theirs else None,
                "holds_others": (r["others_mean"] < theirs[n]["others_mean"]) if n in theirs else None}
            for n, r in ours.items()
        }  # fmt: skip
    result["editability"] = out
    result["figures"].update(_edit_figures(ctx, methods, targets, dirs, out_dir))


def _edit_figures(ctx: _Context, methods: list[str], targets, dirs, out_dir: Path) -> dict[str, Any]:
    cfg, test = ctx.cfg, ctx.test
    figures: dict[str, Any] = {"manipulation": [], "interpolation": None, "diffusion": None}
    names = list(targets)[:5]
    strengths = torch.linspace(-cfg.edit_step, cfg.edit_step, 5)
    for i in range(min(2, len(test))):
        for m in methods:
            code = ctx.invert(m).codes[i : i + 1]
            rows = []
            for n in names:
                edits = ctx.render(torch.cat([edit_codes(code, dirs[n], s.view(1)) for s in strengths]))
                rows.append(torch.cat([test.images[i : i + 1], edits]))
            path = labelled_grid(torch.cat(rows), len(names), 1 + len(strengths),
                                 ctx.fig_dir / f"manipulation_{m}_{i}.png",
                                 col_labels=["input", *(f"{s:+.1f}" for s in strengths.tolist())],
                                 row_labels=names, scale=_scale(ctx))
            figures["manipulation"].append({"method": m, "image": i, "path": _rel(path, out_dir)})
    pairs = [(0, 1), (2, 3)] if len(test) >= 4 else [(0, 1 % len(test))]
    frames, labels = [], []
    for a, b in pairs:
        for m in methods:
            codes = ctx.invert(m).codes
            t = torch.linspace(0, 1, 8).view(-1, 1, 1)
            lerp = codes[a : a + 1] + t * (codes[b : b + 1] - codes[a : a + 1])
            frames.append(torch.cat([test.images[a : a + 1], ctx.render(lerp), test.images[b : b + 1]]))
            labels.append(f"{SHORT_LABELS[m]} {a}->{b}")
    path = labelled_grid(torch.cat(frames), len(frames), 10, ctx.fig_dir / "interpolation.png",
                         col_labels=["input A", *[""] * 8, "input B"], row_labels=labels, scale=_scale(ctx))
    figures["interpolation"] = _rel(path, out_dir)
    encoder = ctx.encoders.get("domain-guided")
    if encoder is not None and cfg.diffusion_examples > 0 and len(test) >= 2:
        from ..editors.diffusion import box_mask, diffuse
        from ..inverters.optimize import resolve_feature_weight

        res = ctx.generator.resolution
        mask = box_mask(res, res // 2, res // 2, round(res * 110 / 256))
        rows = []
        for k in range(min(cfg.diffusion_examples, len(test) - 1)):
            target, context = test.images[k], test.images[k + 1 : k + 2]
            device = ctx.generator.w_avg.device
            l_feat = resolve_feature_weight(None, ctx.feature_net)
            codes = diffuse(ctx.generator, target.to(device), context.to(device), mask.to(device), encoder=encoder,
                            feature_net=ctx.feature_net, steps=cfg.steps, l_feat=l_feat)
            stitched = target * mask[0] + context[0] * (1 - mask[0])
            rows.append(torch.stack([target, context[0], stitched, ctx.render(codes.cpu())[0]]))
        path = labelled_grid(torch.cat(rows), len(rows), 4, ctx.fig_dir / "diffusion.png",
                             col_labels=["target", "context", "stitched", "diffused"], scale=_scale(ctx))
        figures["diffusion"] = _rel(path, out_dir)
    return figures


# -- loading by name and the whole run ----------------------------------------------------------------------
def generator_directions(model: str | Path) -> dict[str, Direction]:
    """The saved directions of a generator: its pipeline's ``directions`` (see
    :class:`~idinvert_plugins.pipeline.Pipeline`)."""
    from ..pipeline import Pipeline

    return Pipeline.from_pretrained(model, encoder=None, feature_net=None, classifier=None).directions


def _choice(spec: str | nn.Module | None) -> str | nn.Module | None:
    """An evaluation override as a :meth:`Pipeline.from_pretrained` argument: None -> the pipeline's own."""
    from ..pipeline import AUTO

    return AUTO if spec is None else spec


def generator_pipeline(generator: str | Path, *, encoder: str | None = None, conventional_encoder: str | None = None,
                       classifier: str | nn.Module | None = None, feature_net: str | nn.Module | None = None,
                       device: str = "cpu", notes: list[str] | None = None):
    """The :class:`~idinvert_plugins.pipeline.Pipeline` of one evaluated generator: its encoders, classifier,
    perceptual network and directions from its ``pipeline.json`` (or the naming rules), where the evaluation's
    arguments do not override them (``"none"``: without; None or ``"auto"``: the pipeline's). Missing encoders
    are recorded in ``notes``."""
    from ..hub import encoder_name
    from ..pipeline import Pipeline

    conventional = {} if conventional_encoder is None else {"conventional": conventional_encoder}
    pipe = Pipeline.from_pretrained(generator, encoder=_choice(encoder), encoders=conventional,
                                    classifier=_choice(classifier), feature_net=_choice(feature_net), device=device)
    if notes is not None:
        for objective, present in (("domain-guided", pipe.has("encoder")),
                                   ("conventional", "conventional" in pipe.encoders)):
            if not present and (encoder if objective == "domain-guided" else conventional_encoder) is None:
                notes.append(f"encoder {encoder_name(generator, objective)!r} not found (not a local model folder "
                             "or a named model available offline)")
    return pipe


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What the timings were measured on."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": str(device)}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def run_evaluation(
    generators: Sequence[str],
    *,
    encoders: Sequence[str | None] = (),
    conventional_encoders: Sequence[str | None] = (),
    classifier: str | None = FROM_DOMAIN,
    feature_net: str | None = FROM_DOMAIN,
    domain: str | None = None,
    out_dir: str | Path = "docs/results",
    report: str | Path | None = "docs/results.md",
    cache_dir: str | Path | None = DEFAULT_CACHE,
    config: EvalConfig | None = None,
    device: str = "cpu",
    command: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate each generator (a name or folder), merge into ``out_dir/results.json`` and write ``report``.

    Each generator's components come from its :class:`~idinvert_plugins.pipeline.Pipeline` (its
    ``pipeline.json``; without one, ``<generator>-encoder`` and ``<generator>-encoder-conventional`` and the
    folder's ``directions/``); ``encoders[i]`` / ``conventional_encoders[i]`` override the encoders of
    ``generators[i]`` (``"none"`` skips one). ``classifier`` / ``feature_net`` named here serve every generator;
    ``"domain"`` (the default) the evaluation domain's (its ``classifier`` / ``feature_net``), ``"auto"`` each
    pipeline's. ``domain``: whose test split is inverted (None: the default domain; ``idinvert plugins`` lists
    the registered ones).
    """
    from ..hub import load_model
    from ..losses import load_feature_network
    from ..pipeline import AUTO
    from .report import write_report

    cfg = config or EvalConfig()
    if not generators:
        raise ValueError("name at least one generator (--generator NAME)")
    for label, given in (("--encoder", encoders), ("--conventional-encoder", conventional_encoders)):
        if len(given) > len(generators):
            raise ValueError(f"{len(given)} {label} values for {len(generators)} generator(s): give at most one "
                             "per --generator, in the same order")
    out_dir = Path(out_dir)
    started = time.perf_counter()
    dom = get_domain(domain)
    classifier = dom.classifier if classifier == FROM_DOMAIN else classifier
    feature_net = dom.feature_net if feature_net == FROM_DOMAIN else feature_net
    # a classifier / feature network named here serves every generator (loaded once); "auto": each pipeline's
    clf = classifier if classifier == AUTO else (
        load_model(classifier, kind="classifier", device=device) if classifier else "none")
    fnet = feature_net if feature_net == AUTO else (
        load_feature_network(feature_net, device=device) if feature_net else "none")
    results_path = out_dir / "results.json"
    merged: dict[str, Any] = {"generators": {}}
    if results_path.is_file():
        merged = json.loads(results_path.read_text(encoding="utf-8"))
        merged.setdefault("generators", {})
    for i, gen_name in enumerate(generators):
        notes: list[str] = []
        pipe = generator_pipeline(gen_name, encoder=encoders[i] if i < len(encoders) else None,
                                  conventional_encoder=conventional_encoders[i] if i < len(conventional_encoders)
                                  else None, classifier=clf, feature_net=fnet, device=device, notes=notes)
        res = evaluate(pipe.generator, encoders={"domain-guided": pipe.encoder, **pipe.encoders},
                       feature_net=pipe.feature_net, classifier=pipe.classifier, directions=pipe.directions,
                       out_dir=out_dir, cache_dir=cache_dir, config=cfg, name=str(gen_name), progress=progress,
                       domain=dom)
        res["notes"] = notes + res["notes"]
        previous = merged["generators"].get(res["name"], {})
        if previous.get("n") != res["n"] or previous.get("config", {}).get("steps") != res["config"]["steps"]:
            previous = {}  # sections measured under other settings must not be mixed in
        for section in SECTIONS:
            if section not in res and section in previous:
                res[section] = previous[section]
        res["figures"] = {**previous.get("figures", {}), **res["figures"]}
        merged["generators"][res["name"]] = res
    merged["meta"] = {"machine": machine_info(device), "date": time.strftime("%Y-%m-%d %H:%M"),
                      "wall_seconds": time.perf_counter() - started, "command": command,
                      "classifier": classifier, "feature_net": feature_net, "sections": list(cfg.sections),
                      "domain": dom.name, "domain_label": dom.label, "fd_name": fd_name(dom),
                      "cache": None if cache_dir is None else str(cache_dir), "shared_cache": True}
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(_jsonable(merged), indent=1) + "\n", encoding="utf-8")
    if report is not None:
        write_report(merged, report, out_dir)
    return merged
