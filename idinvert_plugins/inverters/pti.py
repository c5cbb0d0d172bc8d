"""Pivotal Tuning Inversion (Roich et al., "Pivotal Tuning for Latent-based Editing of Real Images", 2021).

Two stages. A *pivot* code comes from any embedder (the paper: W-space optimisation, the ``w`` embedder); then
the generator itself is tuned so that it renders the image exactly from that pivot, with the pixel and
perceptual losses (official defaults: Adam, lr 3e-4, 350 steps, L2 weight 1 and LPIPS weight 1). Because the
pivot stays in the well-behaved region of W, edits that move it keep working; because the generator fits the
image, details the latent space cannot express (hair strands, accessories, a real photo's lighting) survive.

The result is a :class:`~idinvert_plugins.latent.Latent` whose ``wp`` is the pivot and whose ``weights`` part
holds the offsets of the tuned parameters only (float16 in code files). Edits move the pivot and render with
the tuned weights (every W+ editor keeps the part). ``shared=True`` tunes one generator for all images of the
batch (several photos of one person, a frequent request); otherwise each image gets its own offsets.

The locality regulariser of the paper (keep the tuned generator's output unchanged for codes between random
ones and the pivot) is an option, off by default as in the official code's default configuration.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..latent import Latent
from ..models.base import Generator
from ..params import Param
from .base import L_FEAT, L_PIX, NOISE_MODE, lr_param, steps_param
from .optimize import frozen, resolve_feature_weight
from .stages import InversionContext, Refiner, RefineResult

#: which parameters are tuned: ``synthesis`` (every synthesis parameter, the official choice) or ``all``
TUNED = ("synthesis", "all")


class PivotalTuning(Refiner):
    name = "pti"
    description = ("Pivotal tuning: the generator's weights are tuned so that it renders the image from the pivot "
                   "code (pixel + perceptual loss); the latent keeps the pivot and the tuned layers' offsets")
    params = (
        steps_param(350), lr_param(3e-4), L_PIX, L_FEAT, NOISE_MODE,
        Param("tune", "choice", default="synthesis", choices=TUNED,
              help="parameters to tune: every synthesis parameter (official) or all, the mapping network too"),
        Param("shared", "bool", default=False,
              help="tune one generator for all images of the batch (several photos of one person)"),
        Param("l_locality", "float", default=0.0, min=0.0, max=1e3, step=0.1,
              help="weight of the locality regulariser (0 = off, the official default; the paper uses 0.1)"),
        Param("locality_alpha", "float", default=30.0, min=0.0, max=1e3, step=1.0,
              help="distance from a random code towards the pivot at which locality is enforced (paper: 30)"),
        Param("seed", "int", default=0, min=0, max=2**31 - 1, step=1, help="seed of the locality samples"),
    )
    uses_feature_net = True

    def refine(self, ctx: InversionContext, latent: Latent, *, steps: int, lr: float, l_pix: float,
               l_feat: float | None, noise_mode: str, tune: str, shared: bool, l_locality: float,
               locality_alpha: float, seed: int, **_: Any) -> RefineResult:
        if latent.parts.get("weights"):
            raise ValueError("pti: the latent already carries generator weight offsets; start from a pivot")
        l_feat = resolve_feature_weight(l_feat, ctx.feature_net)
        groups = [list(range(len(latent)))] if shared else [[i] for i in range(len(latent))]
        offsets: list[dict[str, torch.Tensor]] = []
        losses_per_group: list[list[dict[str, list[float]]]] = []
        for group in groups:
            delta, history = tune_generator(
                ctx.generator, ctx.images[group], latent.wp[group], feature_net=ctx.feature_net,
                mask=None if ctx.mask is None else ctx.mask[group], steps=steps, lr=lr, l_pix=l_pix,
                l_feat=l_feat, noise_mode=noise_mode, tune=tune, l_locality=l_locality,
                locality_alpha=locality_alpha, seed=seed, progress=ctx.progress)
            offsets.append(delta)
            losses_per_group.append(history)
        if shared:
            weights = {k: v[None] for k, v in offsets[0].items()}
            losses = losses_per_group[0]
        else:
            names = sorted(set().union(*offsets))
            weights = {k: torch.stack([o[k] if k in o else torch.zeros_like(_param(ctx.generator, k))
                                       for o in offsets]) for k in names}
            losses = [{term: [v for h in losses_per_group for v in h[t][term]] for term in losses_per_group[0][t]}
                      for t in range(len(losses_per_group[0]))]
        tuned = latent.with_part("weights", weights)
        return RefineResult(tuned, losses, info={"tuned_parameters": len(weights), "shared": shared})


def _param(generator: nn.Module, name: str) -> torch.Tensor:
    return dict(generator.named_parameters())[name].detach()


def tune_generator(generator: Generator, images: torch.Tensor, pivots: torch.Tensor, *,
                   feature_net: nn.Module | None = None, mask: torch.Tensor | None = None, steps: int = 350,
                   lr: float = 3e-4, l_pix: float = 1.0, l_feat: float = 0.0, noise_mode: str = "const",
                   tune: str = "synthesis", l_locality: float = 0.0, locality_alpha: float = 30.0, seed: int = 0,
                   progress: bool = False) -> tuple[dict[str, torch.Tensor], list[dict[str, list[float]]]]:
    """Tune a copy of ``generator`` so that ``synthesis(pivots)`` reconstructs ``images``; return the offsets of
    the parameters that changed (``{name: tuned - original}``) and the per-step losses (at the weights each step
    started from). ``generator`` itself is never modified."""
    if tune not in TUNED:
        raise ValueError(f"tune must be one of {TUNED}, got {tune!r}")
    G = copy.deepcopy(generator).eval()
    G.requires_grad_(False)
    names = [n for n, _ in G.named_parameters() if tune == "all" or n.startswith("synthesis_network.")]
    params = dict(G.named_parameters())
    for n in names:
        params[n].requires_grad_(True)
    optimizer = torch.optim.Adam([params[n] for n in names], lr=lr)
    pivots = pivots.detach()
    target_features = None
    if l_feat and feature_net is not None:
        with torch.no_grad():
            target_features = feature_net(images if mask is None else images * mask)
    gen = torch.Generator().manual_seed(seed)
    history: list[dict[str, list[float]]] = []
    bar = None
    if progress and steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="pti", leave=False)
    with frozen(feature_net):
        for _ in range(steps):
            rendered = G.synthesis(pivots, noise_mode=noise_mode)
            error = images - rendered if mask is None else (images - rendered) * mask
            pix = error.pow(2).flatten(1).mean(1)
            total = l_pix * pix
            terms = {"pix": pix}
            if target_features is not None:
                feats = feature_net(rendered if mask is None else rendered * mask)
                terms["feat"] = (feats - target_features).pow(2).flatten(1).mean(1)
                total = total + l_feat * terms["feat"]
            if l_locality:
                terms["locality"] = _locality(generator, G, pivots, locality_alpha, gen, noise_mode)
                total = total + l_locality * terms["locality"]
            terms["total"] = total
            optimizer.zero_grad(set_to_none=True)
            total.sum().backward()
            optimizer.step()
            history.append({k: v.detach().double().tolist() for k, v in terms.items()})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(pix=f"{pix.mean().item():.4g}")
    if bar is not None:
        bar.close()
    original = dict(generator.named_parameters())
    offsets = {n: (params[n].detach() - original[n].detach()) for n in names}
    return {n: d for n, d in offsets.items() if bool(d.abs().max() > 0)}, history


def _locality(original: Generator, tuned: Generator, pivots: torch.Tensor, alpha: float, gen: torch.Generator,
              noise_mode: str) -> torch.Tensor:
    """PTI's locality regulariser: for a random code w_z, the code ``w_r = w_z + alpha * (w_p - w_z) /
    ||w_p - w_z||`` between it and the pivot must render the same before and after tuning (pixel MSE)."""
    n = pivots.shape[0]
    with torch.no_grad():
        z = torch.randn(n, original.z_dim, generator=gen).to(pivots)
        w_z = original.to_wplus(original.mapping(z))
        direction = pivots - w_z
        w_r = w_z + alpha * direction / direction.flatten(1).norm(dim=1).clamp_min(1e-8)[:, None, None]
        before = original.synthesis(w_r, noise_mode=noise_mode)
    return (tuned.synthesis(w_r, noise_mode=noise_mode) - before).pow(2).flatten(1).mean(1)


__all__ = ["PivotalTuning", "TUNED", "tune_generator"]
