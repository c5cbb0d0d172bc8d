"""Image2StyleGAN++'s noise space: W+ codes and per-layer noise maps optimised in turn, under any objective.

Image2StyleGAN++ (Abdal, Qin, Wonka, CVPR 2020) embeds an image in W+ *and* in the generator's noise inputs
``N``: first the codes with the noise fixed, then the noise with the codes fixed (its Algorithm 1), which
reaches detail W+ cannot express. Left free, noise maps overfit (they start to carry the image itself), so this
module adds the StyleGAN2 projector's regularisation (Karras et al. 2020, ``projector.py``):

* a multi-scale autocorrelation penalty: for every map, at every scale down to 8x8 (halving by 2x2 averages),
  the squared mean of the map times itself shifted by one pixel, horizontally and vertically; white noise has
  none (:func:`noise_regularization`, weight ``l_noise_reg``: 10 by default; the projector's 1e5 is scaled
  for its LPIPS distance, and next to a pixel MSE it pins the maps: on a tiny StyleGAN2 with noise strength
  0.3, 60 joint steps reached MSE 0.26 with 1e5, 0.10 with 10, against 0.25 for W+ alone);
* renormalisation after every noise step to zero mean and unit variance per map (:func:`normalize_noise_`).

:func:`fit_latent` is the loop behind every refiner of this family (``noise`` here; ``inpaint`` and
``crossover`` in :mod:`.masked`; ``superres`` and ``colorize`` in :mod:`.restoration`): Adam on the W+ codes
and, with ``optimize_noise``, on the noise maps: both every step (``switch_every=0``, the StyleGAN2 projector's
schedule and the default) or alternating every ``switch_every`` steps (Image2StyleGAN++'s order: codes with the
noise fixed, then noise with the codes fixed). At a fixed budget alternation gives each variable half the
updates: on a tiny StyleGAN2 (noise strength 0.3, 60 steps, 3 images) joint steps reached MSE 0.09-0.13, W+
alone 0.16-0.32 and alternation every 10 steps 0.18-0.31, so joint is the default. Its objective is a sum of
:class:`Term` s, each comparing a *degraded* render with the same degradation of a target::

    sum_k  l_pix * mean((D_k(G(w, n)) - D_k(x_k))^2) + l_feat * mean((F(V_k(G(w, n))) - F(V_k(x_k)))^2)
    + l_dom * mean((w - E(G(w, n)))^2) + l_noise_reg * sum_maps autocorrelation(n)

``D_k`` is a :class:`Degradation` (identity for plain inversion, a mask, x4 downsampling, grayscale) and ``V_k``
its *view* in image space for the perceptual network ``F`` (the masked image, the low-resolution image
upsampled, the grayscale image on three channels). The pixel means run over the full image size (a masked
term divides by all pixels, as the official IDInvert diffusion loss). It differs from the W+ loop of
:mod:`.optimize` in what it optimises (the noise part too) and what it compares (degraded renders), and keeps
every other part of the latent (S-space offsets, tuned weights) in each render.

The result carries the maps as the latent's ``noise`` part (``[N, 1, r, r]`` per layer), so editors keep them
and code files store them; noise optimisation needs a generator that takes explicit noise (``accepts_noise``:
both built-in backends). How much it can add is bounded by the generator's learned noise strengths; even the
small ones of the bundled domain's StyleGAN2 (1e-4 to 1.4e-2: trained on images without stochastic detail) let
500 joint steps lower the held-out MSE from 0.0066 (the same loop with ``noise=false``, i.e. Image2StyleGAN) to
0.0046 (``docs/results-beyond-wplus.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..latent import Latent, render
from ..models.base import Generator
from ..params import Param
from .base import ADD_W_AVG, L_DOM, L_FEAT, L_PIX, NOISE_MODE, StepCallback, encode, lr_param, steps_param
from .optimize import frozen, resolve_feature_weight
from .stages import InversionContext, Refiner, RefineResult

#: where the noise maps start: the generator's stored maps (the render equals W+ alone at step 0) or fresh
#: standard-normal draws (Image2StyleGAN++ and the StyleGAN2 projector)
NOISE_INITS = ("stored", "random")


# -- degradations: what a term compares ----------------------------------------------------------------------
class Degradation:
    """An operator ``D`` applied to renders and targets alike before they are compared (a restoration
    problem's forward model). :meth:`__call__` gives the degraded images the pixel loss compares; :meth:`view`
    gives them back in image space ``[N, C, R, R]`` for the perceptual network (default: :meth:`__call__`)."""

    name: str = "identity"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def view(self, images: torch.Tensor) -> torch.Tensor:
        return self(images)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


class Identity(Degradation):
    """No degradation: plain reconstruction."""


class Masking(Degradation):
    """``D(x) = x * mask``: only the pixels where ``mask`` is 1 count (inpainting's known pixels, one side of a
    crossover). ``mask`` is ``[N or 1, 1 or C, R, R]`` with values in [0, 1]."""

    name = "mask"

    def __init__(self, mask: torch.Tensor) -> None:
        if not isinstance(mask, torch.Tensor) or mask.ndim != 4:
            got = list(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"Masking needs a mask [N or 1, 1 or C, R, R], got {got}")
        self.mask = mask

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images * self.mask.to(images)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "coverage": float(self.mask.float().mean())}


@dataclass
class Term:
    """One part of an objective: ``weight`` times the loss between ``degradation(render)`` and
    ``degradation(target)``. ``target`` is ``[N, C, R, R]`` (or ``[1, ...]``, shared by every image)."""

    target: torch.Tensor
    degradation: Degradation
    weight: float = 1.0


# -- the projector's noise regularisation ----------------------------------------------------------------------
def noise_regularization(maps: dict[str, torch.Tensor] | Sequence[torch.Tensor]) -> torch.Tensor:
    """The StyleGAN2 projector's noise penalty per image ``[N]``: for every map ``[N, 1, r, r]`` and every scale
    from ``r`` down to 8 (2x2 average pooling in between; maps of 8 or less have one scale), the squared mean of
    ``n * roll(n, 1)`` along the width plus the same along the height (circular shifts, as the projector)."""
    items = list(maps.values()) if isinstance(maps, dict) else list(maps)
    if not items:
        raise ValueError("noise_regularization needs at least one noise map")
    total = torch.zeros(items[0].shape[0], dtype=items[0].dtype, device=items[0].device)
    for noise in items:
        while True:
            total = total + (noise * torch.roll(noise, shifts=1, dims=3)).mean((1, 2, 3)).pow(2)
            total = total + (noise * torch.roll(noise, shifts=1, dims=2)).mean((1, 2, 3)).pow(2)
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return total


@torch.no_grad()
def normalize_noise_(maps: dict[str, torch.Tensor] | Sequence[torch.Tensor]) -> None:
    """Renormalise every map ``[N, 1, r, r]`` in place to zero mean and unit variance per image (the StyleGAN2
    projector does it after every step)."""
    for noise in (maps.values() if isinstance(maps, dict) else maps):
        noise -= noise.mean(dim=(1, 2, 3), keepdim=True)
        noise *= noise.square().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12).rsqrt()


def initial_noise(generator: Generator, n: int, init: str = "stored", seed: int = 0,
                  start: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Per-image noise maps ``{layer: [n, 1, r, r]}`` to optimise: ``start`` (e.g. the latent's own ``noise``
    part) where it has a layer, else the generator's stored maps (``init="stored"``) or standard-normal draws
    with ``seed`` (``"random"``)."""
    if init not in NOISE_INITS:
        raise ValueError(f"noise_init must be one of {NOISE_INITS}, got {init!r}")
    if not getattr(generator, "accepts_noise", False):
        raise ValueError(f"the {getattr(generator, 'architecture', type(generator).__name__)!r} generator does not "
                         "take explicit noise maps (accepts_noise is False), so its noise cannot be optimised: "
                         "use a W+ refiner (wplus) instead")
    shapes = generator.noise_shapes()
    device, dtype = generator.w_avg.device, generator.w_avg.dtype
    stored = generator.stored_noise() if init == "stored" else {}
    gen = torch.Generator(device="cpu").manual_seed(seed)
    maps = {}
    for name, shape in shapes.items():
        if start and name in start:
            base = start[name].detach()
        elif init == "stored":
            base = stored[name].detach()
        else:
            base = torch.randn(n, *shape[1:], generator=gen)
        maps[name] = base.to(device=device, dtype=dtype).expand(n, *shape[1:]).clone()
    return maps


# -- the loop ------------------------------------------------------------------------------------------------
def _latent_with(latent: Latent, wp: torch.Tensor, maps: dict[str, torch.Tensor] | None) -> Latent:
    """``latent`` with new codes and (differentiable, unrounded) noise maps."""
    out = latent.with_wp(wp)
    if maps is not None:
        out.parts["noise"] = dict(maps)
    return out


def fit_latent(
    generator: Generator,
    latent: Latent,
    terms: Sequence[Term],
    *,
    steps: int,
    lr: float,
    optimize_noise: bool = False,
    noise_lr: float = 0.1,
    switch_every: int = 0,
    noise_init: str = "stored",
    normalize_noise: bool = True,
    l_noise_reg: float = 10.0,
    l_pix: float = 1.0,
    l_feat: float = 0.0,
    l_dom: float = 0.0,
    feature_net: nn.Module | None = None,
    encoder: nn.Module | None = None,
    add_w_avg: bool | None = None,
    noise_mode: str = "const",
    seed: int = 0,
    progress: bool = False,
    callback: StepCallback | None = None,
    desc: str = "fit",
) -> RefineResult:
    """Optimise ``latent``'s W+ codes (and with ``optimize_noise`` its noise maps) so that its renders match
    ``terms`` (see the module docstring for the objective). ``switch_every=k > 0`` alternates: ``k`` steps on
    the codes, then ``k`` on the noise, and so on (Image2StyleGAN++); 0 optimises both every step. The other
    parts of ``latent`` stay fixed in every render. Returns the refined latent, per-step losses (at the latent
    each step started from), the final renders and the loss terms at them."""
    if not terms:
        raise ValueError("fit_latent needs at least one term")
    if l_feat and feature_net is None:
        raise ValueError(f"l_feat={l_feat} needs a feature network (feature_net=) or l_feat=0")
    if l_dom and encoder is None:
        raise ValueError(f"l_dom={l_dom} (domain regulariser) needs an encoder: pass one (CLI: --encoder) or l_dom=0")
    if switch_every < 0:
        raise ValueError(f"switch_every must be >= 0, got {switch_every}")
    G = generator
    n = len(latent)
    device = G.w_avg.device
    prepared = []
    with torch.no_grad():
        for term in terms:
            target = term.target.to(device=device, dtype=G.w_avg.dtype)
            if target.shape[0] not in (1, n):
                raise ValueError(f"a term's target has {target.shape[0]} images for a latent of {n}")
            degraded = term.degradation(target)
            feats = feature_net(term.degradation.view(target)) if l_feat else None
            prepared.append((term, degraded, feats))
    wp = latent.wp.detach().clone().to(device).requires_grad_(True)
    maps = None
    if optimize_noise:
        maps = initial_noise(G, n, noise_init, seed, start=latent.parts.get("noise"))
        for m in maps.values():
            m.requires_grad_(True)
    base = latent.to(device).detach()
    opt_w = torch.optim.Adam([wp], lr=lr)
    opt_n = torch.optim.Adam(list(maps.values()), lr=noise_lr) if maps is not None else None

    def evaluate(current: Latent, with_reg: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images = render(G, current, noise_mode=noise_mode)
        pix = torch.zeros(n, device=device)
        feat = torch.zeros(n, device=device)
        for term, degraded, feats in prepared:
            pix = pix + term.weight * (term.degradation(images) - degraded).pow(2).flatten(1).mean(1)
            if feats is not None:
                diff = feature_net(term.degradation.view(images)) - feats
                feat = feat + term.weight * diff.pow(2).flatten(1).mean(1)
        out = {"pix": pix}
        total = l_pix * pix
        if l_feat:
            out["feat"] = feat
            total = total + l_feat * feat
        if l_dom:
            out["dom"] = (current.wp - encode(encoder, G, images, add_w_avg)).pow(2).flatten(1).mean(1)
            total = total + l_dom * out["dom"]
        if with_reg and maps is not None:
            out["noise_reg"] = noise_regularization(current.parts["noise"])
            total = total + l_noise_reg * out["noise_reg"]
        out["total"] = total
        return images, out

    history: list[dict[str, list[float]]] = []
    noise_steps = 0
    bar = None
    if progress and steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=desc, leave=False)
    try:
        with frozen(G, feature_net, encoder):
            for step in range(steps):
                noise_phase = maps is not None and switch_every > 0 and (step // switch_every) % 2 == 1
                joint = maps is not None and switch_every == 0
                _, loss = evaluate(_latent_with(base, wp, maps), with_reg=maps is not None)
                opt_w.zero_grad(set_to_none=True)
                if opt_n is not None:
                    opt_n.zero_grad(set_to_none=True)
                loss["total"].sum().backward()
                if not noise_phase:
                    opt_w.step()
                if (noise_phase or joint) and opt_n is not None:
                    opt_n.step()
                    noise_steps += 1
                    if normalize_noise:
                        normalize_noise_(maps)
                detached = {k: v.detach() for k, v in loss.items()}
                history.append({k: v.double().cpu().tolist() for k, v in detached.items()})
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(pix=f"{detached['pix'].mean().item():.4g}")
                if callback is not None and callback(step + 1, wp.detach().clone(), detached):
                    break
            with torch.no_grad():
                final = _latent_with(base, wp.detach(), None if maps is None else {k: v.detach() for k, v in
                                                                                  maps.items()})
                images, loss = evaluate(final, with_reg=maps is not None)
    finally:
        if bar is not None:
            bar.close()
    info = {"steps_run": len(history), "noise_steps": noise_steps,
            "weights": {"l_pix": l_pix, "l_feat": l_feat, "l_dom": l_dom,
                        **({"l_noise_reg": l_noise_reg} if maps is not None else {})},
            "objective": [t.degradation.describe() for t in terms]}
    return RefineResult(final.detach(), history, images.detach(),
                        {k: v.double().cpu().tolist() for k, v in loss.items()}, info)


# -- the refiner -------------------------------------------------------------------------------------------
NOISE_PARAMS: tuple[Param, ...] = (
    Param("noise_lr", "float", default=0.1, min=0.0, max=10.0, step=1e-3, help="Adam learning rate of the noise maps"),
    Param("switch_every", "int", default=0, min=0, max=100_000, step=1,
          help="0: W+ and the noise maps both every step (the StyleGAN2 projector; lower error per step); k > 0: "
               "k steps on W+, then k on the noise maps, alternating (Image2StyleGAN++'s order)"),
    Param("noise_init", "choice", default="stored", choices=NOISE_INITS,
          help="start from the generator's stored noise maps (step 0 renders as W+ alone) or random ones; a "
               "latent that already has noise maps starts from them"),
    Param("normalize_noise", "bool", default=True,
          help="renormalise each map to zero mean and unit variance after every noise step (StyleGAN2 projector)"),
    Param("l_noise_reg", "float", default=10.0, min=0.0, max=1e9, step=1.0,
          help="weight of the multi-scale autocorrelation penalty on the noise maps (the StyleGAN2 projector uses "
               "1e5 next to an LPIPS distance; next to a pixel MSE that freezes the maps, 10 lets them fit)"),
    Param("seed", "int", default=0, min=0, max=2**31 - 1, step=1, help="seed of random noise maps"),
)


def loop_params(steps: int) -> tuple[Param, ...]:
    """The options every refiner of :func:`fit_latent` declares (all but whether the noise maps are optimised),
    with ``steps`` as the default step count."""
    return (steps_param(steps), lr_param(0.01), L_PIX, L_FEAT, replace(L_DOM, default=0.0), ADD_W_AVG, NOISE_MODE,
            *NOISE_PARAMS)


class NoiseOptimization(Refiner):
    """Image2StyleGAN++'s embedding: W+ and the noise maps (together, or alternating with ``switch_every``), from
    the latent it is given."""

    name = "noise"
    description = ("Image2StyleGAN++: Adam on W+ and on the per-layer noise maps, together or in turn (switch_every); "
                   "pixel + perceptual loss, the StyleGAN2 projector's noise regularisation; the latent keeps the maps")
    params = (Param("noise", "bool", default=True,
                    help="optimise the noise maps (off: W+ alone through the same loop, the ablation)"),
              *loop_params(500))
    uses_feature_net = True
    #: whether the noise maps are optimised unless the caller says otherwise (masked refiners: a ``noise`` option)
    optimize_noise = True

    def terms(self, ctx: InversionContext, **params: Any) -> list[Term]:
        """The objective's terms: the images, masked by ``ctx.mask`` when the inversion has one."""
        if ctx.mask is not None:
            return [Term(ctx.images, Masking(ctx.mask))]
        return [Term(ctx.images, Identity())]

    def refine(self, ctx: InversionContext, latent: Latent, *, steps: int, lr: float, l_pix: float,
               l_feat: float | None, l_dom: float, add_w_avg: bool | None, noise_mode: str, noise_lr: float,
               switch_every: int, noise_init: str, normalize_noise: bool, l_noise_reg: float, seed: int,
               noise: bool | None = None, **params: Any) -> RefineResult:
        return fit_latent(
            ctx.generator, latent, self.terms(ctx, **params), steps=steps, lr=lr,
            optimize_noise=self.optimize_noise if noise is None else bool(noise), noise_lr=noise_lr,
            switch_every=switch_every, noise_init=noise_init, normalize_noise=normalize_noise,
            l_noise_reg=l_noise_reg, l_pix=l_pix, l_feat=resolve_feature_weight(l_feat, ctx.feature_net),
            l_dom=l_dom, feature_net=ctx.feature_net, encoder=ctx.encoder if l_dom else None, add_w_avg=add_w_avg,
            noise_mode=noise_mode, seed=seed, progress=ctx.progress, callback=ctx.callback, desc=self.name)


__all__ = ["Degradation", "Identity", "Masking", "NOISE_INITS", "NOISE_PARAMS", "NoiseOptimization", "Term",
           "fit_latent", "loop_params", "initial_noise", "noise_regularization", "normalize_noise_"]
