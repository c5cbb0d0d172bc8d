"""pSp, e4e and ReStyle next to the methods of the IDInvert paper's Table I, on the same held-out test faces (issue 17,
item 6), and the encoders' throughput.

**Quality** (``--only quality``): the first ``--n`` test faces of ``idinvert evaluate``'s Table I
(:func:`~idinvert_plugins.evaluation.inversions.load_test_images`, same dataset seed and first index; by default the
``n`` and settings of the generator's rows in ``docs/results/results.json``) are inverted by

* the pSp, e4e and ReStyle encoders (``--psp/--e4e/--restyle DIR``; default: the pipeline's ``encoders.<method>``,
  else ``weights/<generator>-<method>-encoder``, else the named model of that name; ``none`` leaves one out), through
  the registered methods ``psp``, ``e4e`` and ``restyle`` (ReStyle with its trained iteration count), timed in
  batches as ``idinvert evaluate`` times Table I;
* the conventional and domain-guided encoders, Image2StyleGAN and IDInvert. Their Table I rows are read from
  ``docs/results/results.json`` when its rows for this generator were measured on the same images with the same
  settings; otherwise they are measured here. Their codes (needed for editability) come from ``idinvert
  evaluate``'s code cache (``--eval-cache``, shared with it: a rerun inverts nothing) or are inverted into it
  (``--skip-optimised``: no Image2StyleGAN / IDInvert codes, so their rows come from the JSON only).

Every reconstruction is measured with Table I's functions (:func:`~idinvert_plugins.evaluation.tables.table1`, i.e.
the registered metrics ``mse``, ``psnr``, ``ssim``, ``swd``, ``fd`` of :mod:`idinvert_plugins.metrics.registry`; FD in
the attribute classifier's ``pool`` features). ReStyle is also measured after each iteration ``1..K``
(``--restyle-iters``, default its trained count): a table and a plot of MSE and FD against the iteration.
Editability (:mod:`idinvert_plugins.evaluation.editability`, as ``idinvert evaluate`` measures it): every code moved
by the documented step (``--edit-step``, Table II's 3.0) along each shipped attribute direction towards the other side
of the attribute, rendered, read by the classifier: success rate, flip rate, the target's change per unit step and
the other attributes' change per unit step (cross-talk; smaller = more disentangled), in spreads over
``--spread-images`` real test faces, and the FD of the manipulated images (the registered ``fd_edited``).

**Throughput** (``--only throughput``): images/s of each encoder on the CPU at batch 1 and 8 (``--batches``), median
of ``--repeats`` runs after ``--warmup``: at the bundled size (the encoders above; a preset encoder with random weights
where none is found) for pSp, e4e and ReStyle after 1..K iterations with the generator in the loop; at the official
256 px input with random weights in the official IR-SE50 layouts (W+ 18 x 512; ReStyle: encoder steps only, the
1024 px generator is not part of it).

Outputs (``--out``, default ``docs/results``): ``encoders.json`` (every number), figures under
``figures/<generator>/``, the markdown sections ``encoders.md`` (for docs/results.md) and ``encoders-performance.md``
(for docs/performance.md), with figure links relative to ``--paste-into``; ``--write`` puts them into those pages
between markers (below docs/results.md's interpretation marker, so ``idinvert evaluate`` keeps them). The tables are
printed.

    OMP_NUM_THREADS=1 python benchmarks/encoders.py                         # both sections, shipped encoders
    OMP_NUM_THREADS=2 python benchmarks/encoders.py --only throughput --threads 2
    python benchmarks/encoders.py --generator DIR --psp A --e4e B --restyle C --n 8 --steps 5 --out runs/enc
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from idinvert_plugins.evaluation import inversions
from idinvert_plugins.evaluation.editability import (
    SPREAD_IMAGES,
    SUCCESS_TARGET,
    classifier_scorer,
    measure_editability,
    real_spreads,
    resolve_targets,
    summarise,
)
from idinvert_plugins.evaluation.inversions import (
    METHOD_LABELS,
    TestImages,
    invert_cached,
    jsonable,
    load_test_images,
    render_codes,
)
from idinvert_plugins.evaluation.plots import labelled_grid, line_plot, tile_pngs
from idinvert_plugins.evaluation.report import INTERPRETATION_MARKER
from idinvert_plugins.evaluation.runner import EvalConfig, machine_info, method_options, to_uint8_nchw
from idinvert_plugins.evaluation.tables import fd_name, table1

ROOT = Path(__file__).resolve().parents[1]
STYLE_METHODS = ("psp", "e4e", "restyle")
ARCHITECTURES = {"psp": "psp-encoder", "e4e": "e4e-encoder", "restyle": "restyle-encoder"}
BASELINES = ("conventional", "domain-guided", "image2stylegan", "idinvert")
OPTIMISED = ("image2stylegan", "idinvert")
LABELS = {**METHOD_LABELS, "psp": "pSp", "e4e": "e4e", "restyle": "ReStyle"}
SHORT = {"conventional": "conventional", "domain-guided": "domain-guided", "image2stylegan": "Image2StyleGAN",
         "idinvert": "IDInvert", "psp": "pSp", "e4e": "e4e", "restyle": "ReStyle"}
ORDER = (*BASELINES, *STYLE_METHODS)
#: the settings of Table I a published row must share to be reused (EvalConfig fields)
MATCHED = ("n", "steps", "i2s_steps", "l_dom", "seed")
BEGIN = {"results": "<!-- benchmarks/encoders.py: results begin -->",
         "performance": "<!-- benchmarks/encoders.py: performance begin -->"}
END = {"results": "<!-- benchmarks/encoders.py: results end -->",
       "performance": "<!-- benchmarks/encoders.py: performance end -->"}
#: the official layouts (pSp/e4e/ReStyle FFHQ checkpoints): IR-SE50 body at 256 px input, W+ 18 x 512
OFFICIAL = {"resolution": 1024, "w_dim": 512, "input_size": 256}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "generator"


def num(value: Any, digits: int = 4) -> str:
    """A table cell: ``n/a`` for a missing or non-finite value, else ``digits`` significant digits."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    v = float(value)
    if v != 0 and (abs(v) < 10 ** -(digits - 1) or abs(v) >= 10**5):
        return f"{v:.{digits - 1}e}"
    if abs(v) >= 10 ** (digits - 1):
        return f"{v:.0f}"
    return f"{v:.{digits}g}" if abs(v) >= 1 else (f"{v:.{digits}f}".rstrip("0").rstrip(".") or "0")


def pct(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else f"{100 * float(value):.1f} %"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


# -- the encoders ----------------------------------------------------------------------------------------------------
@dataclass
class StyleEncoder:
    """One pSp-family encoder under test: the module, where it came from, and its architecture's settings."""

    method: str
    module: nn.Module
    reference: str

    def describe(self) -> dict[str, Any]:
        config = dict(getattr(self.module, "config", {}) or {})
        return {"reference": self.reference, "architecture": getattr(self.module, "architecture", None),
                "params_m": sum(p.numel() for p in self.module.parameters()) / 1e6,
                "config": {k: v for k, v in config.items() if isinstance(v, (int, float, str, bool, list, type(None)))}}


def default_reference(pipe: Any, generator: str, method: str) -> str | None:
    """Where the encoder of ``method`` is by default: the pipeline's ``encoders.<method>``, else the folder
    ``weights/<generator>-<method>-encoder`` (what the trainer exports), else the named model of that name."""
    refs = pipe.references().get("encoders", {})
    if refs.get(method):
        return str(refs[method])
    name = f"{Path(generator).name}-{method}-encoder"
    for folder in (Path(generator).expanduser().parent / name, ROOT / "weights" / name):
        if (folder / "config.json").is_file():
            return str(folder)
    from idinvert_plugins.hub import ModelLoadError, ModelNotFoundError, resolve_model

    try:
        resolve_model(name, local_files_only=True)
    except (ModelNotFoundError, ModelLoadError, OSError, ValueError):
        return None
    return name


def load_style_encoders(pipe: Any, generator: str, given: Mapping[str, str | None]) -> tuple[dict[str, StyleEncoder],
                                                                                                  list[str]]:
    """The pSp / e4e / ReStyle encoders to measure (``given[method]``: a folder or name, ``"none"``, or None for the
    default), each checked against the generator and its method's architecture. Returns them and notes on the
    missing ones."""
    from idinvert_plugins.hub import load_model
    from idinvert_plugins.pipeline import check_encoder

    found: dict[str, StyleEncoder] = {}
    notes: list[str] = []
    for method in STYLE_METHODS:
        ref = given.get(method)
        if ref is not None and str(ref).lower() == "none":
            notes.append(f"{LABELS[method]}: left out (--{method} none)")
            continue
        declared = pipe.references().get("encoders", {}).get(method)
        ref = ref or default_reference(pipe, generator, method)
        if ref is None:
            notes.append(f"{LABELS[method]}: no encoder found (pipeline.json 'encoders.{method}', "
                         f"weights/{Path(generator).name}-{method}-encoder); pass --{method} DIR")
            continue
        if given.get(method) is None and declared:  # the pipeline's own (loaded and checked by it)
            module = pipe.encoders[method]
        else:
            module = load_model(ref, kind="encoder", device=pipe.generator.w_avg.device).eval()
        check_encoder(module, pipe.generator, str(ref))
        arch = getattr(module, "architecture", type(module).__name__)
        if arch != ARCHITECTURES[method]:
            raise ValueError(f"--{method} {ref}: a {arch} encoder, not a {ARCHITECTURES[method]}")
        found[method] = StyleEncoder(method, module.requires_grad_(False), str(ref))
    return found, notes


# -- inverting -------------------------------------------------------------------------------------------------------
def invert_style(method: str, encoder: nn.Module, G: nn.Module, images: torch.Tensor, batch: int,
                 n_iters: int | None = None) -> tuple[torch.Tensor, float]:
    """Codes of ``images`` by the registered method ``psp`` / ``e4e`` / ``restyle`` and the wall seconds it took, in
    batches of ``batch`` after an untimed one-image warm-up (as ``idinvert evaluate`` times Table I)."""
    from idinvert_plugins.plugins import get_plugins

    inverter = get_plugins().get("inverter", method)
    options = {"n_iters": int(n_iters)} if method == "restyle" and n_iters else {}
    device = G.w_avg.device
    inverter.invert(G, images[:1].to(device), encoder=encoder, **options)
    codes, seconds = [], 0.0
    for start in range(0, len(images), batch):
        result = inverter.invert(G, images[start : start + batch].to(device), encoder=encoder, **options)
        codes.append(result.codes.detach().float().cpu())
        seconds += float(result.seconds)
    return torch.cat(codes), seconds


def restyle_codes_per_iteration(encoder: nn.Module, G: nn.Module, images: torch.Tensor, iters: int,
                                batch: int) -> list[torch.Tensor]:
    """ReStyle's codes after each of ``iters`` iterations (:func:`~idinvert_plugins.inverters.psp_family.
    restyle_iterations`, what the ``restyle`` method runs): ``iters`` tensors ``[N, L, D]``."""
    from idinvert_plugins.inverters.psp_family import average_image, restyle_iterations

    device = G.w_avg.device
    avg = average_image(G, encoder.latent_avg, encoder.input_size)
    per: list[list[torch.Tensor]] = [[] for _ in range(iters)]
    for start in range(0, len(images), batch):
        codes, _ = restyle_iterations(encoder, G, images[start : start + batch].to(device), iters, avg)
        for k, c in enumerate(codes):
            per[k].append(c.detach().float().cpu())
    return [torch.cat(p) for p in per]


def published_rows(path: Path, name: str, test: TestImages, cfg: EvalConfig, domain: Any) -> tuple[dict, str]:
    """Table I rows of ``name`` in ``idinvert evaluate``'s JSON when they were measured on these images with these
    settings (else empty), and a note saying which."""
    if not path.is_file():
        return {}, f"{path} not found"
    data = json.loads(path.read_text(encoding="utf-8"))
    g = data.get("generators", {}).get(name)
    if not g or not g.get("table1"):
        return {}, f"{path} has no Table I rows for {name!r}"
    ours = {"n": len(test), "steps": cfg.steps, "l_dom": cfg.l_dom, "seed": test.seed,
            "i2s_steps": method_options("image2stylegan", cfg)["steps"]}
    theirs = {**g.get("config", {}), "n": g.get("n")}
    differ = [k for k in MATCHED if theirs.get(k) != ours[k]]
    if g.get("first_index") != test.indices[0]:
        differ.append("first_index")
    their_domain = g.get("domain") or data.get("meta", {}).get("domain")
    if their_domain is not None and their_domain != domain.name:
        differ.append("domain")
    if differ:
        return {}, (f"{path}: its rows for {name!r} were measured with other settings (there: "
                    + ", ".join(f"{k} {theirs.get(k) if k != 'first_index' else g.get('first_index')}" for k in differ)
                    + ")")
    date = data.get("meta", {}).get("date", "?")
    rows = {m: {**{k: r.get(k) for k in ("mse", "psnr", "ssim", "swd", "fd", "seconds_per_image", "n")},
                "source": f"results.json ({date})"} for m, r in g["table1"].items() if m in BASELINES}
    return rows, f"Table I rows of {', '.join(SHORT[m] for m in rows)}: {path.name} ({date}, `idinvert evaluate`)"


def baseline_codes(pipe: Any, name: str, test: TestImages, cfg: EvalConfig, cache_dir: str | None,
                   skip_optimised: bool, progress: bool) -> tuple[dict[str, Any], list[str]]:
    """The codes of the four Table I methods (:class:`~idinvert_plugins.evaluation.inversions.Inversion`), from
    ``idinvert evaluate``'s code cache or inverted into it; methods without their encoder are noted."""
    encoders = {"domain-guided": pipe.encoder, "conventional": pipe.encoders.get("conventional")}
    cache = inversions.generator_cache(cache_dir, name)  # shared with idinvert evaluate and bench
    out, notes = {}, []
    for method in BASELINES:
        needs = {"conventional": "conventional", "domain-guided": "domain-guided", "idinvert": "domain-guided"}
        if method in needs and encoders.get(needs[method]) is None:
            notes.append(f"{SHORT[method]}: not measured (the pipeline has no {needs[method]} encoder)")
            continue
        if skip_optimised and method in OPTIMISED:
            continue
        t0 = time.perf_counter()
        out[method] = invert_cached(method, pipe.generator, test, encoders=encoders, feature_net=pipe.feature_net,
                                    options=method_options(method, cfg), cache=cache, batch=cfg.batch,
                                    progress=progress)
        log(f"{SHORT[method]}: {len(test)} codes ({out[method].reused} from the cache) in "
            f"{time.perf_counter() - t0:.1f} s")
    return out, notes


# -- editability -----------------------------------------------------------------------------------------------------
@dataclass
class EditBench:
    """The shipped directions a classifier head reads, their scorer, thresholds and the real faces' spreads."""

    directions: dict[str, Any]
    score: Callable[[torch.Tensor], dict[str, torch.Tensor]]
    thresholds: dict[str, float]
    scales: dict[str, float]
    spread_images: int
    skipped: dict[str, str]


def edit_bench(pipe: Any, test: TestImages, domain: Any, spread_images: int) -> EditBench | None:
    """What editability is measured with (as ``idinvert evaluate`` does): the pipeline's directions that a head of
    its classifier reads, and the spreads over the first ``max(n, spread_images)`` real test faces."""
    classifier, directions = pipe.classifier, dict(pipe.directions)
    if classifier is None or not directions:
        return None
    targets, skipped = resolve_targets(directions, classifier.attributes, domain)
    if not targets:
        return None
    score = classifier_scorer(classifier, targets)
    n_spread = max(len(test), spread_images)
    spread_set = test if n_spread == len(test) else load_test_images(n_spread, pipe.resolution, seed=test.seed,
                                                                      domain=domain)
    return EditBench({n: directions[n] for n in targets}, score, {n: t.threshold for n, t in targets.items()},
                     real_spreads(score(spread_set.images)), n_spread, skipped)


def editability(G: nn.Module, codes: torch.Tensor, inputs: torch.Tensor, reconstructions: torch.Tensor,
                bench: EditBench, step: float, fd_fn: Any) -> dict[str, Any]:
    """Per attribute: success, flip, change per unit and the others' change (editability.measure_editability on
    renders quantised as ``idinvert evaluate`` does), their means, and the FD of the manipulated images (the
    registered ``fd_edited``)."""
    from idinvert_plugins.metrics.registry import MetricData, compute_metrics, get_metrics

    rows, edited = measure_editability(
        codes, bench.directions, lambda c: to_uint8_nchw(render_codes(G, c)),
        lambda x: bench.score(x.float() / 127.5 - 1.0), step=step, thresholds=bench.thresholds, scales=bench.scales,
        keep_images=True)  # fmt: skip
    as_float = {n: x.float() / 127.5 - 1.0 for n, x in edited.items()}
    values, skipped = compute_metrics(MetricData(inputs, reconstructions, fd_features=fd_fn, edited=as_float),
                                      get_metrics(["fd_edited"]))
    summary = summarise(rows)
    summary["at_target"] = int(sum(r["success_rate"] >= SUCCESS_TARGET for r in rows.values()))
    return {"attributes": rows, "summary": summary, "fd_manipulated": float(values.get("fd_edited", float("nan"))),
            "n_manipulated": int(sum(len(x) for x in edited.values())), "not_measured": skipped}


# -- findings --------------------------------------------------------------------------------------------------------
def findings(rows: Mapping[str, Mapping[str, Any]], restyle: Mapping[str, Any] | None,
             edits: Mapping[str, Mapping[str, Any]], step: float) -> list[dict[str, Any]]:
    """The two paper findings of issue 17 on these numbers: e4e trades reconstruction for editability (Tov et al.
    2021: worse reconstruction than pSp, better editing: here success rate, cross-talk and FD of the manipulated
    images against pSp's); ReStyle improves with iterations (Alaluf et al. 2021: MSE and FD after the last iteration
    against the first, and how many iterations lowered the MSE)."""
    out = []
    if "psp" in rows and "e4e" in rows:
        p, e = rows["psp"], rows["e4e"]
        recon_worse = e["mse"] > p["mse"]
        text = (f"e4e trades reconstruction for editability (Tov et al. 2021). Reconstruction: MSE {num(e['mse'])} vs "
                f"pSp {num(p['mse'])}, FD {num(e['fd'], 3)} vs {num(p['fd'], 3)}")
        holds: bool | None = None
        if "psp" in edits and "e4e" in edits:
            ps, es = edits["psp"]["summary"], edits["e4e"]["summary"]
            better = {"success": es["success_rate"] > ps["success_rate"],
                      "cross-talk": es["others_mean"] < ps["others_mean"],
                      "FD manipulated": edits["e4e"]["fd_manipulated"] < edits["psp"]["fd_manipulated"]}
            text += (f"; editing at step {step:g}: "
                     f"success {pct(es['success_rate'])} vs {pct(ps['success_rate'])}, cross-talk (others per unit) "
                     f"{num(es['others_mean'], 3)} vs {num(ps['others_mean'], 3)}, FD manipulated "
                     f"{num(edits['e4e']['fd_manipulated'], 3)} vs {num(edits['psp']['fd_manipulated'], 3)} "
                     f"(e4e better on {sum(better.values())} of 3: "
                     f"{', '.join(k for k, v in better.items() if v) or 'none'})")
            holds = recon_worse and sum(better.values()) >= 2
        else:
            text += "; editability not measured"
        verdict = "n/a" if holds is None else ("holds" if holds else "does not hold")
        why = "" if holds is None or holds else (" (e4e reconstructs better than pSp here)" if not recon_worse
                                                  else " (e4e does not edit better than pSp here)")
        out.append({"finding": "e4e_tradeoff", "holds": holds, "text": f"{text}: **{verdict}**{why}."})
    if restyle and len(restyle.get("rows", [])) >= 2:
        r = restyle["rows"]
        mses = [x["mse"] for x in r]
        lower = sum(b < a for a, b in zip(mses, mses[1:], strict=False))
        holds = r[-1]["mse"] < r[0]["mse"] and (not math.isfinite(r[0]["fd"]) or r[-1]["fd"] < r[0]["fd"])
        text = (f"ReStyle improves with iterations (Alaluf et al. 2021): MSE {' -> '.join(num(m) for m in mses)} over "
                f"iterations 1..{len(r)} (lower after {lower} of {len(r) - 1} iterations), FD {num(r[0]['fd'], 3)} -> "
                f"{num(r[-1]['fd'], 3)}: **{'holds' if holds else 'does not hold'}**.")
        out.append({"finding": "restyle_iterations", "holds": bool(holds), "text": text})
    return out


# -- throughput ------------------------------------------------------------------------------------------------------
def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int) -> tuple[float, list[float]]:
    """Median wall seconds of ``fn()`` over ``repeats`` runs after ``warmup`` untimed ones, and every run's."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def official_encoder(method: str) -> nn.Module:
    """A random-weight encoder in the official FFHQ layout of ``method`` (IR-SE50 body, 256 px input, W+ 18 x 512;
    ReStyle: the IR-SE50 ``BackboneEncoder``)."""
    from idinvert_plugins.models.e4e import E4EEncoder
    from idinvert_plugins.models.psp import PSPEncoder
    from idinvert_plugins.models.restyle import ReStyleEncoder

    torch.manual_seed(0)
    cls = {"psp": PSPEncoder, "e4e": E4EEncoder, "restyle": ReStyleEncoder}[method]
    return cls(**OFFICIAL).eval().requires_grad_(False)


def preset_encoder(method: str, generator: str, G: nn.Module, preset: str | None) -> tuple[nn.Module, str]:
    """A random-weight encoder of the pSp-family training preset for ``G`` (when the trained one is missing)."""
    from idinvert_plugins.training.style_encoder import PRESETS, StyleEncoderTrainConfig, build_style_encoder

    preset = preset or PRESETS.default()
    torch.manual_seed(0)
    cfg = StyleEncoderTrainConfig.preset(preset, generator=generator, objective=method)
    return build_style_encoder(cfg, G).eval().requires_grad_(False), f"preset {preset} (random weights)"


def throughput_rows(encoders: Mapping[str, tuple[nn.Module, str]], G: nn.Module | None, size: str,
                    batches: Sequence[int], iters: Sequence[int], repeats: int, warmup: int) -> list[dict[str, Any]]:
    """Images/s of each encoder's forward pass (``torch.no_grad``) at each batch size; ReStyle after each count in
    ``iters``: with ``G`` in the loop (k encoder steps + k syntheses, the average image precomputed) or, without
    ``G``, k encoder steps fed with a fixed reconstruction."""
    from idinvert_plugins.inverters.psp_family import average_image, restyle_iterations

    rows = []
    for method, (E, layout) in encoders.items():
        params = sum(p.numel() for p in E.parameters()) / 1e6
        res = int(E.resolution) if G is None else int(G.resolution)
        counts = list(iters) if method == "restyle" else [None]
        avg = average_image(G, E.latent_avg, E.input_size) if method == "restyle" and G is not None else None
        for b in batches:
            x = torch.rand(b, 3, E.input_size if G is None else res, E.input_size if G is None else res) * 2 - 1
            for k in counts:
                if method != "restyle":
                    def fn(E=E, x=x) -> Any:
                        return E(x)
                elif G is not None:
                    def fn(E=E, x=x, k=k, avg=avg) -> Any:
                        return restyle_iterations(E, G, x, k, avg)
                else:
                    y = torch.rand_like(x) * 2 - 1

                    def fn(E=E, x=x, k=k, y=y) -> Any:
                        previous = None
                        for _ in range(k):
                            previous = E.step(x, y, previous)
                        return previous
                with torch.no_grad():
                    med, times = median_seconds(fn, repeats, warmup)
                row = {"size": size, "method": method, "layout": layout, "input_size": int(E.input_size),
                       "params_m": params, "iterations": k, "batch": b, "generator_in_loop": G is not None
                       and method == "restyle", "seconds_per_batch": med, "images_per_s": b / med,
                       "runs": times}
                rows.append(row)
                log(f"throughput {size} {method}{'' if k is None else f' x{k}'} batch {b}: {b / med:.2f} img/s")
    return rows


# -- markdown --------------------------------------------------------------------------------------------------------
def results_markdown(res: Mapping[str, Any], fig_link: Callable[[str], str]) -> str:
    """The section for docs/results.md: the table, ReStyle's iterations, editability, the findings."""
    q = res["quality"]
    rows = q["table"]
    lines = [BEGIN["results"], "", "### pSp, e4e and ReStyle next to Table I (issue 17)", "",
             f"`{q['command']}` ({q['date']}, {q['wall_seconds'] / 60:.1f} min, {q['machine']['threads']} torch "
             f"thread(s)). The {q['n']} held-out test faces of Table I (dataset seed {q['seed']}, indices "
             f"{q['first_index']}..{q['first_index'] + q['n'] - 1}); IDInvert {q['config']['steps']} steps "
             f"(l_dom {q['config']['l_dom']:g}), Image2StyleGAN {q['config']['i2s_steps']} steps. Encoders: "
             + "; ".join(f"{LABELS[m]} `{e['reference']}` ({num(e['params_m'], 3)} M parameters"
                         + (f", {q['restyle_trained_iters']} iterations" if m == "restyle" else "") + ")"
                         for m, e in q["encoders"].items()) + ".", ""]
    header = ["Method", "MSE ↓", "PSNR (dB) ↑", "SSIM ↑", "SWD ↓", "FD ↓", "s / image", "row"]
    body = []
    for m in ORDER:
        if m in rows:
            r = rows[m]
            label = LABELS[m] + (f" ({q['restyle_trained_iters']} iterations)" if m == "restyle" else "")
            body.append([label, num(r["mse"]), num(r["psnr"], 3), num(r["ssim"]), num(r["swd"], 3), num(r["fd"], 3),
                         num(r["seconds_per_image"], 3), r.get("source", "measured")])
    lines += table(header, body) + [""]
    lines += [f"Seconds per image: inversion wall time / images in batches of {q['config']['batch']} (rows from "
              "results.json: timed by `idinvert evaluate` on its machine; the others here). "
              + " ".join(q["notes"]), ""]
    if q.get("figures", {}).get("inversions"):
        lines += [f"![inputs and their reconstructions, pSp/e4e/ReStyle beside the paper's methods]"
                  f"({fig_link(q['figures']['inversions'])})", ""]
    rs = q.get("restyle_iterations")
    if rs:
        lines += ["#### ReStyle after each iteration", "",
                  f"Codes after iteration k of {len(rs['rows'])} (the average image G(latent_avg) before the first), "
                  "measured as Table I.", ""]
        lines += table(["iteration", "MSE ↓", "PSNR (dB) ↑", "SSIM ↑", "SWD ↓", "FD ↓"],
                       [[str(r["iteration"]), num(r["mse"]), num(r["psnr"], 3), num(r["ssim"]), num(r["swd"], 3),
                         num(r["fd"], 3)] for r in rs["rows"]]) + [""]
        if q.get("figures", {}).get("restyle_iterations"):
            lines += [f"![ReStyle: MSE and FD after each iteration]({fig_link(q['figures']['restyle_iterations'])})",
                      ""]
    ed = q.get("editability")
    if ed and ed.get("methods"):
        methods = [m for m in ORDER if m in ed["methods"]]
        lines += ["#### Editability with the shipped directions", "",
                  f"Each code moved {ed['step']:g} along each of the {len(ed['directions'])} shipped attribute "
                  "directions that the classifier reads, towards the other side of the attribute (as read on its "
                  "reconstruction), rendered and read by the classifier (`evaluation/editability.py`, as Table II). "
                  f"*Success*: share of images whose attribute moved the intended way (must-show target: "
                  f"{SUCCESS_TARGET:.0%}); *change / unit*: that change per unit step, in spreads (standard deviations "
                  f"over {ed['spread_images']} real test faces); *cross-talk*: the mean absolute change of all other "
                  "attributes per unit step, in spreads (smaller = more disentangled); *FD manipulated*: all edited "
                  "images against the real test faces.", ""]
        body = []
        for m in methods:
            s, e = ed["methods"][m]["summary"], ed["methods"][m]
            body.append([SHORT[m], pct(s["success_rate"]), pct(s["flip_rate"]), num(s["change_per_unit_std"], 3),
                         num(s["others_mean"], 3), num(e["fd_manipulated"], 3),
                         f"{s['at_target']} / {len(e['attributes'])}"])
        lines += table(["Codes", "success ↑", "flip", "change / unit ↑", "cross-talk ↓", "FD manipulated ↓",
                        f"attributes ≥ {SUCCESS_TARGET:.0%}"], body) + [""]
        attrs = list(ed["methods"][methods[0]]["attributes"])
        body = [[a, *(f"{pct(ed['methods'][m]['attributes'][a]['success_rate'])} / "
                      f"{num(ed['methods'][m]['attributes'][a]['others_mean'], 2)}" for m in methods)] for a in attrs]
        lines += ["Per attribute: success / cross-talk.", ""]
        lines += table(["Attribute", *(SHORT[m] for m in methods)], body) + [""]
    if q.get("findings"):
        lines += ["#### Paper findings", "", *(f"- {f['text']}" for f in q["findings"]), ""]
    lines += [f"Every number: `{fig_link(q['json'])}`.", "", END["results"]]
    return "\n".join(lines) + "\n"


def performance_markdown(res: Mapping[str, Any]) -> str:
    """The section for docs/performance.md: images/s per encoder, size, iteration count and batch."""
    t = res["throughput"]
    m = t["machine"]
    lines = [BEGIN["performance"], "", "## pSp, e4e and ReStyle encoders (`benchmarks/encoders.py`)", "",
             f"`{t['command']}` ({t['date']}, {m['processor']}, {m['cpu_count']} CPUs, torch {m['torch']}, "
             f"{m['threads']} thread(s)). Images/s of one forward pass (`torch.no_grad`), median of {t['repeats']} "
             f"runs ({t['official_repeats']} at 256 px) after {t['warmup']} untimed, random input images. *Bundled*: "
             "the encoders measured in "
             "docs/results.md at the generator's size; ReStyle after k iterations with the generator in the loop "
             "(k encoder steps + k syntheses; the average image precomputed). *Official*: random weights in the "
             "official FFHQ layouts (IR-SE50 body, 256 px input, W+ 18 x 512; ReStyle's IR-SE50 `BackboneEncoder`), "
             "encoder only (ReStyle: k encoder steps, the 1024 px generator not included).", ""]
    body = []
    for r in t["rows"]:
        k = "-" if r["iterations"] is None else str(r["iterations"])
        body.append([r["size"], LABELS[r["method"]], r["layout"], str(r["input_size"]), num(r["params_m"], 3), k,
                     str(r["batch"]), num(r["images_per_s"], 3), num(r["seconds_per_batch"], 3)])
    lines += table(["size", "encoder", "layout", "input px", "params (M)", "iterations", "batch", "img/s",
                    "s / batch"], body)
    lines += ["", END["performance"]]
    return "\n".join(lines) + "\n"


def put_section(page: Path, key: str, section: str) -> None:
    """Replace the marked section of ``page`` (or append it: below the interpretation marker of a report page)."""
    text = page.read_text(encoding="utf-8") if page.is_file() else ""
    pattern = re.escape(BEGIN[key]) + ".*?" + re.escape(END[key]) + "\n?"
    if BEGIN[key] in text:
        text = re.sub(pattern, lambda _: section, text, flags=re.S)
    else:
        if INTERPRETATION_MARKER not in text and key == "results" and text:
            log(f"{page}: no interpretation marker; the section is appended at the end")
        text = text.rstrip("\n") + "\n\n" + section
    page.write_text(text, encoding="utf-8")


# -- the run ---------------------------------------------------------------------------------------------------------
def eval_config(args: argparse.Namespace, published: Mapping[str, Any]) -> EvalConfig:
    """Table I's settings (the generator's ``config`` in results.json, else ``idinvert evaluate``'s defaults with
    200 images), with the command line's overrides."""
    base = {k: published[k] for k in ("n", "steps", "i2s_steps", "l_dom", "edit_step", "batch", "seed")
            if published.get(k) is not None}
    base.setdefault("n", 200)
    for key in ("n", "steps", "i2s_steps", "l_dom", "edit_step", "batch", "seed"):
        value = getattr(args, key)
        if value is not None:
            base[key] = value
    return EvalConfig(**base, sections=("table1", "editability"))


def quality(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """The quality section: Table I rows, ReStyle per iteration, editability, findings, figures."""
    from idinvert_plugins.domains import get_domain
    from idinvert_plugins.evaluation.runner import generator_pipeline
    from idinvert_plugins.features import frechet_features

    started = time.perf_counter()
    out = Path(args.out)
    results_path = Path(args.results)
    known = {}
    if results_path.is_file():
        known = json.loads(results_path.read_text(encoding="utf-8")).get("generators", {}).get(args.generator, {})
    cfg = eval_config(args, {**known.get("config", {}), "n": known.get("n")})
    notes: list[str] = []
    pipe = generator_pipeline(args.generator, device=args.device, notes=notes)
    G = pipe.generator
    dom = pipe.domain or get_domain(None)
    test = load_test_images(cfg.n, G.resolution, seed=cfg.seed, domain=dom)
    log(f"{args.generator}: {len(test)} test faces (indices {test.indices[0]}..{test.indices[-1]})")
    encoders, missing = load_style_encoders(pipe, args.generator, {m: getattr(args, m) for m in STYLE_METHODS})
    notes += missing
    fd_fn = frechet_features(pipe.classifier, "pool", name=fd_name(dom)) if pipe.classifier is not None else None
    if fd_fn is None:
        notes.append("no attribute classifier: FD and editability not measured")

    # -- the four methods of Table I: published rows where they match, codes from evaluate's cache or inverted
    rows, why = ({}, "--recompute-baselines") if args.recompute_baselines else published_rows(
        results_path, args.generator, test, cfg, dom)
    notes.append(why if rows else f"Table I rows measured here ({why}).")
    base, more = baseline_codes(pipe, args.generator, test, cfg, args.eval_cache, args.skip_optimised,
                                not args.no_progress)
    notes += more
    codes: dict[str, torch.Tensor] = {m: inv.codes for m, inv in base.items()}
    recon: dict[str, torch.Tensor] = {m: render_codes(G, c) for m, c in codes.items()}
    computed = table1(test.images, {m: recon[m] for m in codes if m not in rows},
                      {m: base[m].seconds_per_image for m in codes if m not in rows}, fd_fn)
    rows.update({m: {**r, "source": "measured"} for m, r in computed.items()})

    # -- pSp, e4e, ReStyle
    trained_iters = None
    for method, enc in encoders.items():
        n_iters = None
        if method == "restyle":
            trained_iters = int(getattr(enc.module, "n_iters", 5))
            n_iters = trained_iters
        codes[method], seconds = invert_style(method, enc.module, G, test.images, cfg.batch, n_iters)
        recon[method] = render_codes(G, codes[method])
        rows[method] = {**table1(test.images, {method: recon[method]}, {method: seconds / len(test)}, fd_fn)[method],
                        "source": "measured"}
        log(f"{LABELS[method]}: MSE {rows[method]['mse']:.4f}, {seconds / len(test):.4f} s/image")
    restyle = None
    if "restyle" in encoders:
        iters = args.restyle_iters or trained_iters
        per = restyle_codes_per_iteration(encoders["restyle"].module, G, test.images, iters, cfg.batch)
        restyle = {"trained_iters": trained_iters, "rows": []}
        for k, c in enumerate(per, 1):
            r = table1(test.images, {"k": render_codes(G, c)}, {"k": float("nan")}, fd_fn)["k"]
            restyle["rows"].append({"iteration": k, **{f: r[f] for f in ("mse", "psnr", "ssim", "swd", "fd")}})
        log("ReStyle MSE per iteration: " + ", ".join(f"{r['mse']:.4f}" for r in restyle["rows"]))

    # -- editability
    edits: dict[str, Any] = {}
    ed_out = None
    bench = edit_bench(pipe, test, dom, args.spread_images) if fd_fn is not None else None
    if bench is None:
        notes.append("editability not measured (no classifier, or no direction a classifier head reads)")
    else:
        for method in ORDER:
            if method in codes:
                edits[method] = editability(G, codes[method], test.images, recon[method], bench, cfg.edit_step, fd_fn)
                s = edits[method]["summary"]
                log(f"editability {SHORT[method]}: success {s['success_rate']:.3f}, cross-talk {s['others_mean']:.3f}")
        ed_out = {"step": cfg.edit_step, "spread_images": bench.spread_images, "scales": bench.scales,
                  "directions": sorted(bench.directions), "skipped": bench.skipped, "methods": edits}

    # -- figures
    fig_dir = out / "figures" / slug(Path(args.generator).name if Path(args.generator).is_dir() else args.generator)
    figures: dict[str, str] = {}
    shown = [m for m in ORDER if m in codes]
    k = min(args.figure_images, len(test))
    if shown and k:
        tiles = torch.stack([torch.stack([test.images[i], *(recon[m][i] for m in shown)]) for i in range(k)])
        path = labelled_grid(tiles.flatten(0, 1), k, 1 + len(shown), fig_dir / "encoders_inversions.png",
                             col_labels=["input", *(SHORT[m] for m in shown)],
                             scale=max(1, 128 // G.resolution))
        figures["inversions"] = os.path.relpath(path, out)
    if restyle:
        xs = [r["iteration"] for r in restyle["rows"]]
        plots = []
        for metric, label in (("mse", "MSE"), ("fd", "FD (classifier features)")):
            series = {"ReStyle": (xs, [r[metric] for r in restyle["rows"]])}
            for m in ("psp", "e4e", "domain-guided", "idinvert"):
                if m in rows and rows[m].get(metric) is not None and math.isfinite(rows[m][metric]):
                    series[SHORT[m]] = ([xs[0], xs[-1]], [rows[m][metric]] * 2)
            if all(math.isfinite(v) for v in series["ReStyle"][1]):
                plots.append(line_plot(series, fig_dir / f"restyle_{metric}.png", title=f"ReStyle: {label}",
                                       xlabel="iteration", ylabel=label, xticks=[(float(x), str(x)) for x in xs],
                                       size=(420, 300)))
        if plots:
            figures["restyle_iterations"] = os.path.relpath(
                tile_pngs(plots, fig_dir / "restyle_iterations.png", cols=2), out)

    return jsonable({
        "generator": args.generator, "domain": dom.name, "n": len(test), "seed": test.seed,
        "first_index": test.indices[0], "config": {"steps": cfg.steps, "l_dom": cfg.l_dom, "batch": cfg.batch,
                                                   "i2s_steps": method_options("image2stylegan", cfg)["steps"],
                                                   "edit_step": cfg.edit_step},
        "encoders": {m: e.describe() for m, e in encoders.items()}, "restyle_trained_iters": trained_iters,
        "table": rows, "restyle_iterations": restyle, "editability": ed_out,
        "findings": findings(rows, restyle, edits, cfg.edit_step), "figures": figures, "notes": notes,
        "machine": machine_info(args.device), "date": time.strftime("%Y-%m-%d %H:%M"), "command": command,
        "wall_seconds": time.perf_counter() - started, "json": "encoders.json",
    })


def throughput(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """The throughput section: bundled-size encoders (trained, or the preset with random weights) and the official
    256 px layouts with random weights."""
    from idinvert_plugins.pipeline import Pipeline

    batches = [int(b) for b in args.batches.split(",")]
    pipe = Pipeline.from_pretrained(args.generator, feature_net=None, classifier=None)
    G = pipe.generator
    found, _ = load_style_encoders(pipe, args.generator, {m: getattr(args, m) for m in STYLE_METHODS})
    bundled: dict[str, tuple[nn.Module, str]] = {}
    for method in STYLE_METHODS:
        if method in found:
            bundled[method] = (found[method].module, f"`{Path(found[method].reference).name}`")
        elif str(getattr(args, method) or "").lower() != "none":
            bundled[method] = preset_encoder(method, args.generator, G, args.preset)
    trained_iters = int(getattr(bundled["restyle"][0], "n_iters", 5)) if "restyle" in bundled else 5
    iters = list(range(1, (args.restyle_iters or trained_iters) + 1))
    rows = throughput_rows(bundled, G, "bundled", batches, iters, args.repeats, args.warmup)
    if not args.no_official:
        official_iters = [int(k) for k in args.official_restyle_iters.split(",")]
        for method in STYLE_METHODS:
            if str(getattr(args, method) or "").lower() == "none":
                continue
            E = official_encoder(method)
            rows += throughput_rows({method: (E, "official IR-SE50, random weights")}, None, "official", batches,
                                    official_iters, args.official_repeats, args.warmup)
            del E
    return jsonable({"rows": rows, "repeats": args.repeats, "official_repeats": args.official_repeats,
                     "warmup": args.warmup, "machine": machine_info("cpu"), "date": time.strftime("%Y-%m-%d %H:%M"),
                     "command": command})


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", default="toyfaces-stylegan2-64", help="a named model, folder or Hub id")
    for m in STYLE_METHODS:
        ap.add_argument(f"--{m}", default=None, metavar="DIR",
                        help=f"the {LABELS[m]} encoder (folder or name; 'none': leave out; default: the pipeline's "
                             f"encoders.{m}, else weights/GENERATOR-{m}-encoder)")
    ap.add_argument("--only", choices=("quality", "throughput"), default=None, help="one section (default: both)")
    ap.add_argument("--n", type=int, default=None, help="test faces (default: Table I's count in --results, else 200)")
    ap.add_argument("--steps", type=int, default=None, help="IDInvert steps (default: Table I's)")
    ap.add_argument("--i2s-steps", type=int, default=None, help="Image2StyleGAN steps (default: Table I's)")
    ap.add_argument("--l-dom", type=float, default=None, help="IDInvert's l_dom (default: Table I's)")
    ap.add_argument("--edit-step", type=float, default=None, help="manipulation step (default: Table II's, 3.0)")
    ap.add_argument("--batch", type=int, default=None, help="inversion batch (default: Table I's, 16)")
    ap.add_argument("--seed", type=int, default=None, help="dataset seed (default: Table I's, 0)")
    ap.add_argument("--restyle-iters", type=int, default=None,
                    help="ReStyle iterations measured one by one (default: its trained count)")
    ap.add_argument("--spread-images", type=int, default=SPREAD_IMAGES,
                    help="real test faces whose attribute spreads are the editability unit (at least --n)")
    ap.add_argument("--results", default=str(ROOT / "docs" / "results" / "results.json"),
                    help="idinvert evaluate's JSON whose Table I rows are reused when they match")
    ap.add_argument("--eval-cache", default=str(ROOT / getattr(inversions, "DEFAULT_CACHE", "runs/evaluate-cache")),
                    help="idinvert evaluate's code cache (shared: codes found there are not inverted again)")
    ap.add_argument("--recompute-baselines", action="store_true", help="measure the four Table I rows here")
    ap.add_argument("--skip-optimised", action="store_true",
                    help="do not invert with Image2StyleGAN/IDInvert (their rows from --results only, no editability)")
    ap.add_argument("--figure-images", type=int, default=6, help="test faces in the reconstruction figure")
    ap.add_argument("--batches", default="1,8", help="throughput batch sizes")
    ap.add_argument("--repeats", type=int, default=5, help="timed throughput runs at the bundled size")
    ap.add_argument("--official-repeats", type=int, default=3, help="timed throughput runs at 256 px")
    ap.add_argument("--warmup", type=int, default=1, help="untimed throughput runs first")
    ap.add_argument("--official-restyle-iters", default="1", help="ReStyle iteration counts timed at 256 px")
    ap.add_argument("--no-official", action="store_true", help="leave the 256 px random-weight layouts out")
    ap.add_argument("--preset", default=None, help="style-encoder preset for a missing bundled encoder's throughput")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: as the environment sets)")
    ap.add_argument("--device", default="cpu", help="where the quality section runs (throughput: always the CPU)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"), help="JSON, figures and markdown sections")
    ap.add_argument("--paste-into", default=str(ROOT / "docs" / "results.md"),
                    help="the page the results section goes into (figure links relative to it)")
    ap.add_argument("--perf-into", default=str(ROOT / "docs" / "performance.md"),
                    help="the page the throughput section goes into")
    ap.add_argument("--write", action="store_true", help="put the sections into --paste-into / --perf-into")
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shown = list(sys.argv[1:] if argv is None else argv)
    command = "python benchmarks/encoders.py" + ("" if not shown else " " + shlex.join(shown))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "encoders.json"
    res: dict[str, Any] = json.loads(json_path.read_text(encoding="utf-8")) if json_path.is_file() else {}
    if args.only in (None, "quality"):
        res["quality"] = quality(args, command)
    if args.only in (None, "throughput"):
        res["throughput"] = throughput(args, command)
    json_path.write_text(json.dumps(jsonable(res), indent=1) + "\n", encoding="utf-8")
    paste_dir = Path(args.paste_into).resolve().parent

    def fig_link(rel: str) -> str:
        return os.path.relpath((out / rel).resolve(), paste_dir)

    if res.get("quality"):
        text = results_markdown(res, fig_link)
        (out / "encoders.md").write_text(text, encoding="utf-8")
        print(text)
        if args.write and args.only in (None, "quality"):
            put_section(Path(args.paste_into), "results", text)
    if res.get("throughput"):
        text = performance_markdown(res)
        (out / "encoders-performance.md").write_text(text, encoding="utf-8")
        print(text)
        if args.write and args.only in (None, "throughput"):
            put_section(Path(args.perf_into), "performance", text)
    log(f"wrote {json_path}")
    return res


if __name__ == "__main__":
    main()
