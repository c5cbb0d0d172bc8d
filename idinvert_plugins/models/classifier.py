"""Attribute classifier of an image domain (one head per attribute of its schema); also the offline feature
network (the bundled domain's classifier ships with the package).

One small CNN serves three uses: scoring generated images to learn editing directions, measuring how well
an edit changed an attribute, and (as no VGG / Inception weights can be downloaded here) providing the
features of the perceptual loss and of Fréchet distances.

Network, for an input ``[N, 3, R, R]`` in [-1, 1] (R a power of two >= 8, 64 for the bundled domain):

* ``stem``: 3x3 conv -> norm -> lrelu 0.2 at full resolution;
* ``stage1`` .. ``stageS`` (S = log2(R / 4)): 2x2 average pool, then two (3x3 conv -> norm -> lrelu) blocks;
  the last stage works at 4x4;
* ``pool``: global average of the 4x4 map, a vector ``[N, C]`` (translation-robust features for Fréchet
  distances; the heads do not use it);
* ``embed``: the flattened 4x4 map (``16 C`` values: it keeps where things are, which pose and position
  attributes need) -> dense -> lrelu, a vector ``[N, hidden]`` shared by all heads;
* ``heads``: one dense layer per attribute: one logit for a binary attribute, ``K`` logits for a
  categorical one, one value for a continuous one (in normalised units, see :func:`normalise`; two for a
  cyclic one such as a hue).

``norm`` is BatchNorm by default (eval mode uses the running statistics, so outputs do not depend on the
batch); ``"group"`` selects GroupNorm, which behaves the same in training and eval mode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("binary", "continuous", "categorical")


def default_channels(resolution: int, channel_base: int = 1536, channel_max: int = 192,
                     channels_4x4: int = 128) -> list[int]:
    """Widths from ``resolution`` down to 4x4: ``min(channel_base // r, channel_max)``, and ``channels_4x4``
    at 4x4, whose map is flattened into the dense layer (64: 24 48 96 192 128, 1.6 M parameters; narrow
    at high resolution because that is where a CPU spends its time)."""
    widths = []
    r = resolution
    while r > 4:
        widths.append(max(min(channel_base // r, channel_max), 8))
        r //= 2
    return [*widths, channels_4x4]


def head_spec(name: str, kind: str, num_classes: int | None = None, value_range: Sequence[float] | None = None,
              cyclic: bool = False) -> dict[str, Any]:
    """One attribute head as stored in ``config["attributes"]`` (JSON-safe).

    ``value_range`` ``(lo, hi)`` of a continuous attribute sets its normalisation: the head predicts
    ``(v - centre) / half_width``, which :meth:`AttributeClassifier.predict` maps back to ``v``. A
    ``cyclic`` continuous attribute (a hue: ``lo`` and ``hi`` are the same value) is predicted as the point
    ``(cos, sin)`` of its angle ``2 pi (v - lo) / (hi - lo)``, so that the wrap-around is not an error.
    """
    if kind not in KINDS:
        raise ValueError(f"attribute {name!r}: kind must be one of {KINDS}, got {kind!r}")
    if kind == "categorical" and (num_classes is None or num_classes < 2):
        raise ValueError(f"categorical attribute {name!r} needs num_classes >= 2, got {num_classes}")
    if kind != "categorical" and num_classes is not None:
        raise ValueError(f"{kind} attribute {name!r} takes no num_classes (got {num_classes})")
    if cyclic and kind != "continuous":
        raise ValueError(f"only continuous attributes can be cyclic ({name!r} is {kind})")
    spec: dict[str, Any] = {"name": name, "kind": kind, "num_classes": num_classes}
    if kind == "continuous":
        lo, hi = (-1.0, 1.0) if value_range is None else (float(value_range[0]), float(value_range[1]))
        if not hi > lo:
            raise ValueError(f"continuous attribute {name!r}: range must have hi > lo, got {value_range}")
        spec["range"] = [lo, hi]
        spec["cyclic"] = bool(cyclic)
    return spec


def head_width(spec: dict[str, Any]) -> int:
    """Number of outputs of a head: 1 (binary, continuous), K (categorical), 2 (cyclic: cos, sin)."""
    if spec["kind"] == "categorical":
        return int(spec["num_classes"])
    return 2 if spec.get("cyclic") else 1


def heads_from_specs(specs: Sequence[Any]) -> list[dict[str, Any]]:
    """Head specs for a domain's attribute schema (:class:`~idinvert_plugins.domain_spec.AttributeSpec` objects,
    e.g. ``get_domain().attributes``). Hues (names ending in ``_hue``) are cyclic continuous heads.
    """
    heads = []
    for s in specs:
        if s.kind == "categorical":
            heads.append(head_spec(s.name, "categorical", num_classes=len(s.values)))
        elif s.kind == "continuous":
            heads.append(head_spec(s.name, "continuous", value_range=s.values, cyclic=s.name.endswith("_hue")))
        else:
            heads.append(head_spec(s.name, s.kind))
    return heads


def normalise(spec: dict[str, Any], value: torch.Tensor) -> torch.Tensor:
    """A continuous attribute's training target: its range ``[lo, hi]`` mapped to [-1, 1], or for a cyclic
    one the point ``[..., 2]`` = (cos, sin) of its angle."""
    lo, hi = spec["range"]
    if spec.get("cyclic"):
        angle = (value - lo) * (2 * math.pi / (hi - lo))
        return torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)
    return (value - (lo + hi) / 2) / ((hi - lo) / 2)


def denormalise(spec: dict[str, Any], value: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalise` (a cyclic value comes back in ``[lo, hi)``)."""
    lo, hi = spec["range"]
    if spec.get("cyclic"):
        angle = torch.atan2(value[..., 1], value[..., 0])
        return lo + torch.remainder(angle / (2 * math.pi), 1.0) * (hi - lo)
    return value * ((hi - lo) / 2) + (lo + hi) / 2


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    raise ValueError(f"norm must be 'batch' or 'group', got {kind!r}")


class ConvBlock(nn.Module):
    """3x3 conv -> norm -> lrelu 0.2 (the conv has no bias: the norm's shift replaces it)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm = norm_layer(norm, out_channels)
        nn.init.kaiming_normal_(self.conv.weight, a=0.2, nonlinearity="leaky_relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), 0.2)


class DownStage(nn.Module):
    """2x2 average pool, then two conv blocks (the first changes the width)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.conv1 = ConvBlock(in_channels, out_channels, norm)
        self.conv2 = ConvBlock(out_channels, out_channels, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(F.avg_pool2d(x, 2)))


class AttributeClassifier(nn.Module):
    """Multi-head attribute classifier: image ``[N, img_channels, R, R]`` in [-1, 1] -> one output per attribute.

    ``self.config`` holds the constructor arguments (JSON-safe), so ``AttributeClassifier(**config)``
    rebuilds it. ``self.attributes`` is the list of head specs (see :func:`head_spec`).

    Feature layers for :meth:`features`: ``"stem"`` ``[N, C0, R, R]``, ``"stage1"`` .. ``"stageS"``
    (spatial maps, ``stageK`` at ``R / 2**K``; at 64x64 ``"stage2"`` is ``[N, 96, 16, 16]``, the natural
    choice for a perceptual loss), ``"pool"`` ``[N, C_S]`` (global average of the 4x4 map, for Fréchet
    distances) and ``"embed"`` ``[N, hidden]``.
    """

    #: registered under this name, and by the bundled domain under the id its shipped weights carry
    architecture: ClassVar[str] = "attribute-classifier"

    def __init__(
        self,
        attributes: Sequence[dict[str, Any]],
        resolution: int = 64,
        img_channels: int = 3,
        channels: Sequence[int] | None = None,
        hidden: int = 256,
        norm: str = "batch",
    ) -> None:
        """
        Args:
            attributes: head specs, dicts ``{name, kind, num_classes[, range, cyclic]}`` (see
                :func:`head_spec`; :func:`heads_from_specs` gives those of a domain's schema).
            resolution: input size, a power of two >= 8.
            channels: widths at resolutions ``R, R/2, ..., 4`` (``log2(R) - 1`` numbers); None means
                :func:`default_channels`.
            hidden: width of the shared ``embed`` layer.
            norm: ``"batch"`` or ``"group"``.
        """
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
        num_stages = int(math.log2(resolution)) - 2
        channels = list(channels) if channels is not None else default_channels(resolution)
        if len(channels) != num_stages + 1:
            raise ValueError(f"channels must list {num_stages + 1} widths (resolutions {resolution} down to 4), "
                             f"got {len(channels)}: {channels}")
        attributes = [head_spec(a["name"], a["kind"], a.get("num_classes"), a.get("range"), a.get("cyclic", False))
                      for a in attributes]
        names = [a["name"] for a in attributes]
        if not names:
            raise ValueError("attributes is empty: the classifier needs at least one head")
        if len(set(names)) != len(names):
            raise ValueError(f"attribute names must be unique, got {names}")
        self.config: dict[str, Any] = dict(
            attributes=attributes, resolution=resolution, img_channels=img_channels,
            channels=[int(c) for c in channels], hidden=hidden, norm=norm,
        )  # fmt: skip
        self.attributes = attributes
        self.resolution = resolution
        self.img_channels = img_channels

        self.stem = ConvBlock(img_channels, channels[0], norm)
        self.stages = nn.ModuleList(DownStage(channels[i], channels[i + 1], norm) for i in range(num_stages))
        self.embed = nn.Linear(channels[-1] * 16, hidden)
        self.heads = nn.ModuleDict({a["name"]: nn.Linear(hidden, head_width(a)) for a in attributes})

    @classmethod
    def for_attributes(cls, specs: Sequence[Any], resolution: int = 64, **kwargs: Any) -> AttributeClassifier:
        """A classifier with one head per attribute of a domain's schema (``get_domain().attributes``)."""
        return cls(heads_from_specs(specs), resolution=resolution, **kwargs)

    @property
    def layer_names(self) -> list[str]:
        """The names :meth:`features` accepts, from the input side to the output side."""
        return ["stem", *(f"stage{i + 1}" for i in range(len(self.stages))), "pool", "embed"]

    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.img_channels, self.resolution, self.resolution)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"classifier input must be [N, {', '.join(map(str, expected))}] in [-1, 1], got "
                             f"{list(x.shape)} (resize other resolutions first, e.g. F.interpolate(..., "
                             "mode='area'))")

    def features(self, x: torch.Tensor, layer: str = "pool") -> torch.Tensor:
        """The representation of ``x`` at ``layer`` (see the class docstring for the names and shapes).

        Differentiable with respect to ``x``: freeze the parameters (``requires_grad_(False)``) and call
        ``eval()`` to use it as a fixed perceptual feature network.
        """
        if layer not in self.layer_names:
            raise ValueError(f"unknown feature layer {layer!r}; this classifier has {self.layer_names}")
        self._check_input(x)
        x = self.stem(x)
        if layer == "stem":
            return x
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if layer == f"stage{i + 1}":
                return x
        if layer == "pool":
            return x.mean(dim=(2, 3))
        return F.leaky_relu(self.embed(x.flatten(1)), 0.2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs: binary ``[N]`` logits, categorical ``[N, K]`` logits, continuous ``[N]``
        values in normalised units (the attribute's range mapped to [-1, 1]; ``[N, 2]`` (cos, sin) for a
        cyclic one), see :func:`normalise`."""
        h = self.features(x, "embed")
        out = {}
        for a in self.attributes:
            y = self.heads[a["name"]](h)
            out[a["name"]] = y if head_width(a) > 1 else y[:, 0]
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Readable predictions: probability of True (binary), class index (categorical, int64) and the
        value in the attribute's own units (continuous)."""
        raw = self.forward(x)
        out = {}
        for a in self.attributes:
            y = raw[a["name"]]
            if a["kind"] == "binary":
                out[a["name"]] = torch.sigmoid(y)
            elif a["kind"] == "categorical":
                out[a["name"]] = y.argmax(dim=1)
            else:
                out[a["name"]] = denormalise(a, y)
        return out
