"""StyleSpace (Wu, Lischinski, Shechtman, CVPR 2021): edits of single channels of the per-layer style vectors.

The S space is what modulates each synthesis layer: ``G.styles(w)`` (the affine maps ``A`` of every layer,
``G.style_modules()``, in synthesis order). A latent carries S-space edits as its ``styles`` part, offsets added
to those vectors while rendering (:mod:`idinvert_plugins.latent`), so they compose with W+ edits, noise maps and
tuned weights, and survive a code file.

* :class:`StyleChannelEdit` (editor ``stylespace``): move channel ``channel`` of style layer ``style`` by
  ``strength`` standard deviations of that channel (over faces sampled from the generator, :func:`style_std`).
  Nothing else changes: the rendered style vectors differ from the unedited ones in that one entry
  (``tests/test_stylespace.py``).
* :func:`locate_channels`: which channels control an attribute, with the classifier's gradients (StyleSpace's
  procedure, adapted). StyleSpace perturbs every channel and measures the classifier's logit change; here the
  change of every attribute reading per +1 standard deviation of every channel is its gradient with respect to
  that channel's style offset times the channel's deviation (one backward pass per attribute for all channels
  at once), divided by the attribute's spread. Per channel and attribute over sampled images: the mean
  ``effect``, its ``consistency`` (share of images whose change has the mean's sign) and its ``specificity``
  (``|effect|`` over the largest ``|effect|`` on an attribute of another family). Channels that move one
  attribute consistently and at least ``min_specificity`` times more than anything else are the attribute's
  channels, ranked by ``|effect|``.
* :func:`attribute_dependency`: StyleSpace's disentanglement measure (Attribute Dependency, Sec. 6): for an edit
  meant to change one attribute, the mean absolute change of the *other* attributes (other families, in their
  spreads), reported against the target's own change. ``benchmarks/stylespace.py`` compares the located channels
  with the shipped InterFaceGAN directions on the same inverted test faces (``docs/results-beyond-wplus.md``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..latent import Latent, render
from ..models.base import Generator
from ..params import Param
from .base import EditContext, Editor

ScoreFn = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]

_STD_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def style_names(generator: Generator) -> list[str]:
    """The style layers of ``generator`` in synthesis order (the keys of ``G.styles``)."""
    try:
        return list(generator.style_module_paths())
    except NotImplementedError:
        raise ValueError(f"the {getattr(generator, 'architecture', type(generator).__name__)!r} generator does not "
                         "name its style modules (style_module_paths), so it has no S space to edit") from None


@torch.no_grad()
def style_std(generator: Generator, n: int = 2000, seed: int = 0, batch: int = 500) -> dict[str, torch.Tensor]:
    """Per-channel standard deviation ``[C]`` of every style layer over ``n`` codes sampled from the generator
    (truncation 1): the unit of :class:`StyleChannelEdit`'s strength. Cached per generator (and ``n, seed``)."""
    key = (n, seed)
    cached = _STD_CACHE.get(generator, {})
    if key in cached:
        return cached[key]
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    for start in range(0, n, batch):
        z = generator.sample_z(min(batch, n - start), seed=seed + start, device=generator.w_avg.device)
        for name, s in generator.styles(generator.to_wplus(generator.mapping(z))).items():
            s = s.double()
            sums[name] = sums.get(name, 0) + s.sum(0)
            squares[name] = squares.get(name, 0) + s.pow(2).sum(0)
    std = {name: ((squares[name] / n - (sums[name] / n).pow(2)).clamp_min(0) * n / max(n - 1, 1)).sqrt().float()
           for name in sums}
    cached[key] = std
    _STD_CACHE[generator] = cached
    return std


class StyleChannelEdit(Editor):
    """One S-space channel moved by ``strength`` standard deviations; stored as the latent's ``styles`` part."""

    name = "stylespace"
    description = ("StyleSpace: move one channel of one layer's style vector (the S space) by `strength` standard "
                   "deviations; W+ and every other part are kept. `benchmarks/stylespace.py` lists the channels "
                   "that control each attribute")
    params = (
        Param("style", "int", default=0, min=0, max=63, step=1,
              help="style layer, counted from 0 in synthesis order (StyleGAN2 64 px: 14, b4.conv1 ... b64.torgb)"),
        Param("channel", "int", default=0, min=0, max=4095, step=1, help="channel of that layer's style vector"),
        Param("strength", "float", default=10.0, min=-50.0, max=50.0, step=0.5,
              help="how far, in standard deviations of the channel over sampled faces (StyleSpace edits: 5-20)"),
    )

    def edit_latent(self, ctx: EditContext, latent: Latent, *, style: int, channel: int, strength: float,
                    **_: Any) -> Latent:
        G = ctx.generator
        names = style_names(G)
        if not 0 <= style < len(names):
            raise ValueError(f"style layer {style} is out of range: this generator has {len(names)} style layers "
                             f"(0 = {names[0]} ... {len(names) - 1} = {names[-1]})")
        name = names[style]
        std = style_std(G)[name].to(latent.wp)
        if not 0 <= channel < std.numel():
            raise ValueError(f"channel {channel} is out of range: style layer {style} ({name}) has {std.numel()} "
                             "channels")
        offsets = {k: v.clone() for k, v in latent.parts.get("styles", {}).items()}
        delta = torch.zeros(1, std.numel(), dtype=latent.wp.dtype, device=latent.wp.device)
        delta[0, channel] = float(strength) * std[channel]
        offsets[name] = offsets[name] + delta if name in offsets else delta
        return latent.with_part("styles", offsets)


# -- locating the channels of an attribute -----------------------------------------------------------------------
def channel_gradients(generator: Generator, codes: torch.Tensor, score: ScoreFn, attributes: Sequence[str], *,
                      batch: int = 16, noise_mode: str = "const") -> dict[str, dict[str, torch.Tensor]]:
    """``{attribute: {style layer: [N, C]}}``: the gradient of each attribute reading of each image with respect
    to that image's style offsets (``score`` must be differentiable, e.g.
    ``classifier_scorer(..., differentiable=True)``)."""
    G = generator
    names = style_names(G)
    out: dict[str, dict[str, list[torch.Tensor]]] = {a: {s: [] for s in names} for a in attributes}
    params = [(n, p.requires_grad) for n, p in G.named_parameters()]
    G.requires_grad_(False)
    try:
        for start in range(0, len(codes), batch):
            wp = codes[start:start + batch].detach()
            with torch.no_grad():
                base = G.styles(wp)
            offsets = {s: torch.zeros_like(base[s], requires_grad=True) for s in names}
            images = render(G, Latent(wp, {"styles": offsets}), noise_mode=noise_mode)
            readings = score(images)
            for i, a in enumerate(attributes):
                grads = torch.autograd.grad(readings[a].sum(), [offsets[s] for s in names],
                                            retain_graph=i < len(attributes) - 1)
                for s, g in zip(names, grads, strict=True):
                    out[a][s].append(g.detach().cpu())
    finally:
        flags = dict(params)
        for n, p in G.named_parameters():
            p.requires_grad_(flags[n])
    return {a: {s: torch.cat(v) for s, v in per.items()} for a, per in out.items()}


@dataclass(frozen=True)
class ChannelEffect:
    """One channel's effect on an attribute (see :func:`locate_channels`)."""

    style: str
    index: int  # the style layer's position in synthesis order (the editor's ``style``)
    channel: int
    effect: float  # mean change of the attribute per +1 std of the channel, in the attribute's spreads
    consistency: float  # share of images whose change has the sign of the mean
    specificity: float  # |effect| / the largest |effect| on an attribute of another family
    worst: str  # that attribute

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def locate_channels(generator: Generator, codes: torch.Tensor, score: ScoreFn, *, families: Mapping[str, str],
                    scales: Mapping[str, float] | None = None, attributes: Sequence[str] | None = None,
                    std: Mapping[str, torch.Tensor] | None = None, top: int = 5, min_consistency: float = 0.8,
                    min_specificity: float = 2.0, batch: int = 16) -> dict[str, list[ChannelEffect]]:
    """The channels that control each attribute (StyleSpace's detection with the classifier's gradients; see the
    module docstring). ``codes`` ``[N, L, D]``: the images to measure on (sampled or inverted faces); ``score``:
    differentiable readings ``{attribute: [N]}``, one per name in ``families`` (each reading's family: readings of
    one classifier head share it); ``scales``: each reading's spread (default 1). Returns, per attribute, up to
    ``top`` channels that pass ``min_consistency`` and ``min_specificity``, strongest first (an empty list when
    none does)."""
    names = list(attributes if attributes is not None else families)
    missing = [a for a in names if a not in families]
    if missing:
        raise ValueError(f"no family given for {missing}")
    every = list(families)
    std = std if std is not None else style_std(generator)
    grads = channel_gradients(generator, codes, score, every, batch=batch)
    layers = style_names(generator)
    spread = {a: float(scales[a]) if scales and scales.get(a) else 1.0 for a in every}
    # per reading: [N, total channels] change per +1 std, in spreads
    effects = {a: torch.cat([grads[a][s] * std[s].cpu()[None] for s in layers], 1) / spread[a] for a in every}
    means = {a: e.mean(0) for a, e in effects.items()}
    where = [(s, i, c) for i, s in enumerate(layers) for c in range(std[s].numel())]
    result: dict[str, list[ChannelEffect]] = {}
    for a in names:
        mean = means[a]
        consistency = (torch.sign(effects[a]) == torch.sign(mean)[None]).double().mean(0)
        others = [b for b in every if families[b] != families[a]]
        if others:
            stacked = torch.stack([means[b].abs() for b in others])
            worst_value, worst_index = stacked.max(0)
        else:
            worst_value, worst_index = torch.zeros_like(mean), torch.zeros_like(mean, dtype=torch.long)
        specificity = mean.abs() / worst_value.clamp_min(1e-12)
        keep = (consistency >= min_consistency) & (specificity >= min_specificity)
        order = [int(k) for k in torch.argsort(mean.abs(), descending=True) if bool(keep[k])][:top]
        result[a] = [ChannelEffect(where[k][0], where[k][1], where[k][2], float(mean[k]), float(consistency[k]),
                                   float(specificity[k]), others[int(worst_index[k])] if others else "")
                     for k in order]
    return result


def attribute_dependency(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor], target: str, *,
                         families: Mapping[str, str], scales: Mapping[str, float] | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """StyleSpace's Attribute Dependency of an edit meant to change ``target``: per image, the target's change
    (``after - before`` in its spread) and the mean absolute change of the attributes of other families (each in
    its spread). Returns ``(target change [N], dependency [N])``."""
    spread = {a: float(scales[a]) if scales and scales.get(a) else 1.0 for a in before}
    change = (after[target].double() - before[target].double()) / spread[target]
    others = [a for a in before if families.get(a) != families.get(target)]
    if not others:
        raise ValueError(f"no attribute outside {target!r}'s family to measure its dependency on")
    dependency = torch.stack([(after[a].double() - before[a].double()).abs() / spread[a] for a in others]).mean(0)
    return change, dependency


__all__ = ["ChannelEffect", "StyleChannelEdit", "attribute_dependency", "channel_gradients", "locate_channels",
           "style_names", "style_std"]
