"""The metrics registry: what ``idinvert bench`` measures, as plugins (stylegan2-ada's ``metric_main.py`` is the
precedent: a metric is a named function of what a run produced, and the harness knows none of them by name).

A :class:`Metric` reads a :class:`MetricData`, everything one inversion method produced on one generator's
held-out images (the inputs, the reconstructions, the edited images and the measured cross-talk of every
attribute direction, the seconds per image, the per-step error curve) plus the networks that go with the
generator (its perceptual network, the Fréchet-distance features, the attribute classifier), and returns a
number (or a few named numbers). Metrics register with the ``register_metrics`` hook (see
:mod:`idinvert_plugins.hookspecs`); the built-ins (``idinvert_plugins.builtins.metrics``) reuse the metric
functions of :mod:`.pixel`, :mod:`.frechet`, :mod:`.swd` and :mod:`.attributes`:

=============  ==========================================================================================
group          metrics
=============  ==========================================================================================
fidelity       ``mse``, ``psnr``, ``ssim`` (pixels), ``perceptual`` (the pipeline's feature network)
realism        ``fd`` (Fréchet distance of the reconstructions in the FD feature space), ``swd``
attributes     ``attributes``: the classifier's readings of input and reconstruction agree
editability    ``edit_success``, ``crosstalk`` (per direction), ``fd_edited`` / ``swd_edited`` (of the edited
               images), ``fd_interpolated`` / ``swd_interpolated`` (of interpolations between the codes)
cost           ``seconds_per_image``, ``time_to_quality``
=============  ==========================================================================================

A metric whose inputs are missing (no classifier, no directions, images below SWD's 16 px) is reported as
not measured with the reason (:meth:`Metric.unavailable`), never as a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

#: The groups metrics belong to, in the order the leaderboard shows them.
GROUPS: tuple[str, ...] = ("fidelity", "realism", "attributes", "editability", "cost")
#: The :class:`MetricData` fields a metric may declare in ``needs``.
NEEDS: tuple[str, ...] = ("feature_net", "fd_features", "classifier", "edited", "crosstalk", "interpolated",
                          "curve", "mse_target")

FeatureFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class MetricData:
    """What one method produced on one generator's held-out images, and the networks to measure it with.

    * ``inputs``, ``reconstructions``: float images ``[N, C, R, R]`` in [-1, 1] (CPU);
    * ``seconds_per_image``: inversion wall time per image (warm-up excluded);
    * ``feature_net``: the perceptual network of the generator's pipeline (``F(x)``: any ``[N, ...]`` features);
    * ``fd_features``: ``images -> [N, D]`` features of the Fréchet distances (a domain classifier's pool layer);
    * ``classifier``: the attribute classifier (``classifier.predict``, ``classifier.attributes``);
    * ``edited``: per attribute direction, the inputs' codes moved by the documented step towards the
      attribute's other side, rendered ``[N, C, R, R]``;
    * ``crosstalk``: the :class:`~idinvert_plugins.editors.crosstalk.CrossTalk` of those edits
      (``statistic="absolute"``), or None;
    * ``interpolated``: renders between each input's latent and the next input's W+ code (at 1/4, 1/2, 3/4,
      keeping the input's other parts) ``[3N, C, R, R]``, or None (the paper's Table II);
    * ``curve``: ``{"seconds": [...], "mse": [...]}``, the mean reconstruction MSE against seconds per image
      along the method's steps (its final point the measured reconstruction);
    * ``mse_target``: the MSE a method must reach for ``time_to_quality`` (IDInvert's after its steps);
    * ``info``: free-form (method name, options) for third-party metrics.
    """

    inputs: torch.Tensor
    reconstructions: torch.Tensor
    seconds_per_image: float = float("nan")
    feature_net: nn.Module | None = None
    fd_features: FeatureFn | None = None
    classifier: nn.Module | None = None
    edited: Mapping[str, torch.Tensor] = field(default_factory=dict)
    crosstalk: Any = None
    interpolated: torch.Tensor | None = None
    curve: Mapping[str, Sequence[float]] | None = None
    mse_target: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.inputs.shape != self.reconstructions.shape:
            raise ValueError(f"inputs {list(self.inputs.shape)} and reconstructions "
                             f"{list(self.reconstructions.shape)} must have the same shape")

    def has(self, need: str) -> bool:
        """Whether the input ``need`` (one of :data:`NEEDS`) is present."""
        value = getattr(self, need)
        if need == "edited":
            return bool(value)
        if need == "mse_target":
            return value is not None and math.isfinite(value)
        return value is not None


class Metric:
    """Base class of metric plugins: set ``name``, ``group`` (one of :data:`GROUPS`), ``description``,
    ``higher_is_better`` (None: neither) and ``needs`` (the :class:`MetricData` fields it reads beyond inputs and
    reconstructions), and implement :meth:`compute`. ``table = False`` keeps a metric out of the leaderboard's
    table (it is still measured and written to the JSON file).

    :meth:`compute` returns a float, or a dict of named floats whose ``"value"`` entry is the leaderboard's
    number (the others, e.g. per-direction values, go to the JSON file only).
    """

    name: ClassVar[str] = ""
    group: ClassVar[str] = "fidelity"
    description: ClassVar[str] = ""
    higher_is_better: ClassVar[bool | None] = False
    needs: ClassVar[tuple[str, ...]] = ()
    #: the table's column heading (default: the name)
    label: ClassVar[str] = ""
    #: how the table prints the value
    fmt: ClassVar[str] = "{:.4g}"
    #: whether the leaderboard's table shows it (False: the JSON file only)
    table: ClassVar[bool] = True

    def unavailable(self, data: MetricData) -> str | None:
        """Why this metric cannot be measured on ``data`` (None: it can). Default: a missing ``needs`` input."""
        missing = [n for n in self.needs if not data.has(n)]
        return f"needs {', '.join(missing)}" if missing else None

    def compute(self, data: MetricData) -> float | dict[str, float]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "group": self.group, "description": self.description,
                "higher_is_better": self.higher_is_better, "needs": list(self.needs),
                "label": self.label or self.name, "fmt": self.fmt, "table": self.table}


def check_metric(metric: Any) -> None:
    """The registration check of ``register_metrics``: a :class:`Metric` with a name, a known group and known
    needs (raises ``TypeError``/``ValueError`` naming the problem)."""
    if not isinstance(metric, Metric):
        raise TypeError(f"register_metrics expects an instance of idinvert_plugins.metrics.registry.Metric, "
                        f"got {metric!r}")
    if metric.group not in GROUPS:
        raise ValueError(f"metric {metric.name!r}: group {metric.group!r} is not one of {', '.join(GROUPS)}")
    unknown = [n for n in metric.needs if n not in NEEDS]
    if unknown:
        raise ValueError(f"metric {metric.name!r}: needs {unknown} are not MetricData fields ({', '.join(NEEDS)})")


def get_metrics(names: Sequence[str] | None = None) -> list[Metric]:
    """The registered metrics (``names``: only these, in that order; an unknown name lists the known ones),
    ordered by group then registration otherwise."""
    from ..plugins import get_plugins

    plugins = get_plugins()
    if names is not None:
        return [plugins.get("metric", n) for n in names]
    items = [r.obj for r in plugins.items.get("metric", {}).values()]
    return sorted(items, key=lambda m: GROUPS.index(m.group))


def compute_metrics(data: MetricData, metrics: Sequence[Metric]) -> tuple[dict[str, Any], dict[str, str]]:
    """Run each metric on ``data``. Returns ``(values, skipped)``: ``values[name]`` is a float or a dict of
    floats (see :class:`Metric`), ``skipped[name]`` why a metric was not measured (missing inputs, or the
    exception a third-party metric raised: one broken metric does not stop the others)."""
    values: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for metric in metrics:
        why = metric.unavailable(data)
        if why:
            skipped[metric.name] = why
            continue
        try:
            out = metric.compute(data)
        except Exception as exc:  # noqa: BLE001 - a plugin's metric must not stop the benchmark
            skipped[metric.name] = f"failed: {type(exc).__name__}: {exc}"
            continue
        values[metric.name] = ({k: _num(v) for k, v in out.items()} if isinstance(out, Mapping) else _num(out))
    return values, skipped


def main_value(value: Any) -> float:
    """The leaderboard's number of a metric value (a float, or a dict's ``"value"``)."""
    if isinstance(value, Mapping):
        return _num(value.get("value", float("nan")))
    return _num(value)


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


# -- helpers the built-in metrics share -----------------------------------------------------------------------
def _device_of(module: Any) -> torch.device | None:
    params = next(module.parameters(), None) if isinstance(module, nn.Module) else None
    return params.device if params is not None else None


@torch.no_grad()
def _features(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch: int = 128) -> torch.Tensor:
    device = _device_of(fn)
    out = [fn(images[i : i + batch].to(device) if device is not None else images[i : i + batch]).float().cpu()
           for i in range(0, len(images), batch)]
    return torch.cat(out)


def fd_of(images_a: torch.Tensor, images_b: torch.Tensor, feature_fn: FeatureFn) -> float:
    """Fréchet distance between two image sets in ``feature_fn``'s space (NaN with fewer than 2 images each)."""
    from .frechet import feature_statistics, frechet_distance

    if len(images_a) < 2 or len(images_b) < 2:
        return float("nan")
    device = _device_of(feature_fn)
    return frechet_distance(*feature_statistics(images_a, feature_fn, device=device),
                            *feature_statistics(images_b, feature_fn, device=device))


def swd_of(images_a: torch.Tensor, images_b: torch.Tensor) -> float:
    """Mean multi-scale SWD (x 1e3, seed 0) between two image sets."""
    from .swd import swd

    return float(swd(images_a, images_b, seed=0)["mean"])


def _below_swd(data: MetricData) -> str | None:
    return "images below SWD's 16 px coarsest level" if data.inputs.shape[-1] < 16 else None


# -- fidelity -----------------------------------------------------------------------------------------------------
class MSEMetric(Metric):
    name = "mse"
    group = "fidelity"
    label = "MSE"
    description = "mean squared error per pixel of the reconstruction (images in [-1, 1])"

    def compute(self, data: MetricData) -> float:
        from .pixel import mse

        return float(mse(data.reconstructions, data.inputs).mean())


class PSNRMetric(Metric):
    name = "psnr"
    group = "fidelity"
    label = "PSNR"
    higher_is_better = True
    fmt = "{:.2f}"
    description = "peak signal-to-noise ratio of the reconstruction in dB (peak: the [-1, 1] range)"

    def compute(self, data: MetricData) -> float:
        from .pixel import psnr

        return float(psnr(data.reconstructions, data.inputs).mean())


class SSIMMetric(Metric):
    name = "ssim"
    group = "fidelity"
    label = "SSIM"
    higher_is_better = True
    fmt = "{:.3f}"
    description = "structural similarity of the reconstruction (11 px Gaussian window; smaller for tiny images)"

    def compute(self, data: MetricData) -> float:
        from .pixel import ssim

        side = min(data.inputs.shape[-2:])
        window = 11 if side >= 11 else (side // 2) * 2 - 1
        return float(ssim(data.reconstructions, data.inputs, window=window).mean())


class PerceptualMetric(Metric):
    name = "perceptual"
    group = "fidelity"
    label = "perceptual"
    needs = ("feature_net",)
    description = ("perceptual distance: mean((F(x) - F(G(w)))^2) in the pipeline's feature network F (the "
                   "optimisers' perceptual loss, unweighted)")

    def compute(self, data: MetricData) -> float:
        a = _features(data.feature_net, data.inputs)
        b = _features(data.feature_net, data.reconstructions)
        return float((a - b).pow(2).flatten(1).mean(1).mean())


# -- realism ------------------------------------------------------------------------------------------------------
class FDMetric(Metric):
    name = "fd"
    group = "realism"
    label = "FD"
    needs = ("fd_features",)
    fmt = "{:.3g}"
    description = ("Fréchet distance between the inputs and the reconstructions in the FD feature space (a "
                   "domain classifier's pool features: not FID)")

    def compute(self, data: MetricData) -> float:
        return fd_of(data.inputs, data.reconstructions, data.fd_features)


class SWDMetric(Metric):
    name = "swd"
    group = "realism"
    label = "SWD"
    fmt = "{:.3g}"
    description = "multi-scale sliced Wasserstein distance (x 1e3, mean over levels) inputs vs reconstructions"

    def unavailable(self, data: MetricData) -> str | None:
        return _below_swd(data)

    def compute(self, data: MetricData) -> float:
        return swd_of(data.inputs, data.reconstructions)


# -- attribute preservation ------------------------------------------------------------------------------------------
class AttributePreservation(Metric):
    name = "attributes"
    group = "attributes"
    label = "attr. kept"
    higher_is_better = True
    needs = ("classifier",)
    fmt = "{:.3f}"
    description = ("share of (image, attribute) pairs the classifier reads the same on input and reconstruction "
                   "(binary: same side of 0.5; categorical: same class; continuous: same side of its threshold); "
                   "per attribute in the JSON")

    @torch.no_grad()
    def compute(self, data: MetricData) -> dict[str, float]:
        from ..domains import domain_of_heads

        clf = data.classifier
        heads = {h["name"]: h for h in clf.attributes}
        dom = domain_of_heads(heads)
        specs = dom.attribute_specs if dom is not None else {}
        device = _device_of(clf)
        size = int(getattr(clf, "resolution", data.inputs.shape[-1]))

        def read(images: torch.Tensor) -> dict[str, torch.Tensor]:
            out: dict[str, list[torch.Tensor]] = {n: [] for n in heads}
            for i in range(0, len(images), 128):
                x = images[i : i + 128].to(device)
                if x.shape[-1] != size:
                    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                                        antialias=True)
                pred = clf.predict(x)
                for n in heads:
                    out[n].append(pred[n].cpu())
            return {n: torch.cat(v) for n, v in out.items()}

        a, b = read(data.inputs), read(data.reconstructions)
        agree: dict[str, float] = {}
        for n, h in heads.items():
            if h["kind"] == "categorical":
                same = a[n] == b[n]
            else:
                spec = specs.get(n)
                thr = 0.5 if h["kind"] == "binary" else (None if spec is None else spec.threshold)
                if thr is None or h.get("cyclic"):
                    continue
                same = (a[n] > thr) == (b[n] > thr)
            agree[n] = float(same.double().mean())
        if not agree:
            raise ValueError("the classifier has no attribute with a binary reading")
        return {"value": float(np.mean(list(agree.values()))), **agree}


# -- editability ----------------------------------------------------------------------------------------------------
class EditSuccess(Metric):
    name = "edit_success"
    group = "editability"
    label = "edit success"
    higher_is_better = True
    needs = ("crosstalk",)
    fmt = "{:.2f}"
    description = ("share of images whose targeted attribute moves the intended way at the documented step, "
                   "mean over the directions (per direction in the JSON)")

    def compute(self, data: MetricData) -> dict[str, float]:
        ct = data.crosstalk
        return {"value": float(np.mean([ct.success[r] for r in ct.rows])), **{r: ct.success[r] for r in ct.rows}}


class CrossTalkMetric(Metric):
    name = "crosstalk"
    group = "editability"
    label = "cross-talk"
    needs = ("crosstalk",)
    fmt = "{:.2f}"
    description = ("median over the directions of the worst other-family attribute's mean absolute change "
                   "relative to the target's change (editors.crosstalk, statistic='absolute'; lower is cleaner); "
                   "per direction and the clean count in the JSON")

    def compute(self, data: MetricData) -> dict[str, float]:
        ct = data.crosstalk
        worst = {r: ct.worst(r)[0] for r in ct.rows}
        return {"value": ct.median_worst(), "clean": float(ct.clean_count()), **worst}


class FDEdited(Metric):
    name = "fd_edited"
    group = "editability"
    label = "FD edited"
    needs = ("fd_features", "edited")
    fmt = "{:.3g}"
    description = ("Fréchet distance between the inputs and the edited images (every direction at the documented "
                   "step; the paper's FD of manipulated images)")

    def compute(self, data: MetricData) -> float:
        return fd_of(data.inputs, torch.cat(list(data.edited.values())), data.fd_features)


class SWDEdited(Metric):
    name = "swd_edited"
    group = "editability"
    label = "SWD edited"
    needs = ("edited",)
    fmt = "{:.3g}"
    table = False
    description = "multi-scale SWD (x 1e3) between the inputs and the edited images (the paper's Table II)"

    def unavailable(self, data: MetricData) -> str | None:
        return _below_swd(data) or super().unavailable(data)

    def compute(self, data: MetricData) -> float:
        return swd_of(data.inputs, torch.cat(list(data.edited.values())))


class FDInterpolated(Metric):
    name = "fd_interpolated"
    group = "editability"
    label = "FD interp."
    needs = ("fd_features", "interpolated")
    fmt = "{:.3g}"
    description = ("Fréchet distance between the inputs and interpolations between the codes of consecutive "
                   "inputs (at 1/4, 1/2, 3/4: the paper's Table II, how real the code space between two faces is)")

    def compute(self, data: MetricData) -> float:
        return fd_of(data.inputs, data.interpolated, data.fd_features)


class SWDInterpolated(Metric):
    name = "swd_interpolated"
    group = "editability"
    label = "SWD interp."
    needs = ("interpolated",)
    fmt = "{:.3g}"
    table = False
    description = "multi-scale SWD (x 1e3) between the inputs and the interpolations (the paper's Table II)"

    def unavailable(self, data: MetricData) -> str | None:
        return _below_swd(data) or super().unavailable(data)

    def compute(self, data: MetricData) -> float:
        return swd_of(data.inputs, data.interpolated)




# -- cost -----------------------------------------------------------------------------------------------------------
class SecondsPerImage(Metric):
    name = "seconds_per_image"
    group = "cost"
    label = "s/img"
    fmt = "{:.3g}"
    description = "inversion wall time per image (batches of the run, an untimed one-image warm-up first)"

    def compute(self, data: MetricData) -> float:
        return float(data.seconds_per_image)


class TimeToQuality(Metric):
    name = "time_to_quality"
    group = "cost"
    label = "time to IDInvert MSE"
    needs = ("curve", "mse_target")
    fmt = "{:.3g}"
    description = ("seconds per image until the method's mean reconstruction MSE first reaches mse_target (the "
                   "MSE IDInvert reaches after its steps), from its per-step curve (timed by the step callback where "
                   "the method reports its steps, else its steps spread evenly over its time); inf if it never does")

    def compute(self, data: MetricData) -> float:
        return time_to_reach(data.curve["seconds"], data.curve["mse"], float(data.mse_target))


def time_to_reach(seconds: Sequence[float], errors: Sequence[float], target: float) -> float:
    """The first time along a curve at which ``errors`` is at most ``target`` (``inf`` if never; a relative
    tolerance of 1e-5 so a method reaches its own final error whatever the float rounding)."""
    for t, e in zip(seconds, errors, strict=True):
        if e <= target * (1 + 1e-5):
            return float(t)
    return math.inf


BUILTIN_METRICS: tuple[type[Metric], ...] = (
    MSEMetric, PSNRMetric, SSIMMetric, PerceptualMetric, FDMetric, SWDMetric, AttributePreservation, EditSuccess,
    CrossTalkMetric, FDEdited, SWDEdited, FDInterpolated, SWDInterpolated, SecondsPerImage, TimeToQuality,
)

__all__ = ["BUILTIN_METRICS", "GROUPS", "NEEDS", "Metric", "MetricData", "check_metric", "compute_metrics",
           "fd_of", "get_metrics", "main_value", "time_to_reach"]
