"""Semantic diffusion (IDInvert paper sec. 4.3, official ``diffuse.py``): paste a target patch into a context.

The target's region (a box or a mask) is pasted onto each context image; the stitched image is encoded,
``w = E(x)``, then optimised with Adam on the reconstruction loss *inside the target region only* (the
domain regulariser is off, as in the official code). The generator fills the rest in-domain, so the patch
blends into its surroundings.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..inverters.idinvert import IDInvert
from ..inverters.optimize import resolve_feature_weight
from ..latent import Latent
from ..models.base import Generator
from .base import EditContext, Editor, Param


def box_mask(resolution: int, center_x: int, center_y: int, crop_x: int, crop_y: int | None = None
             ) -> torch.Tensor:
    """``[1, 1, R, R]`` mask, 1 on rows ``[cy - crop_y//2, +crop_y)`` and columns ``[cx - crop_x//2, +crop_x)``
    (the official diffusion box; clipped at the borders)."""
    crop_y = crop_x if crop_y is None else crop_y
    mask = torch.zeros(1, 1, resolution, resolution)
    top, left = max(center_y - crop_y // 2, 0), max(center_x - crop_x // 2, 0)
    mask[..., top : center_y - crop_y // 2 + crop_y, left : center_x - crop_x // 2 + crop_x] = 1.0
    if mask.sum() == 0:
        raise ValueError(f"the box centred at ({center_x}, {center_y}) of size {crop_x}x{crop_y} misses the "
                         f"{resolution}x{resolution} image")
    return mask


def diffuse(
    generator: Generator,
    target: torch.Tensor,
    contexts: torch.Tensor,
    mask: torch.Tensor,
    *,
    encoder: nn.Module | None = None,
    init_codes: torch.Tensor | None = None,
    feature_net: nn.Module | None = None,
    steps: int = 100,
    lr: float = 0.01,
    l_feat: float = 0.0,
    noise_mode: str = "const",
) -> torch.Tensor:
    """Blend ``target`` (``[C, R, R]`` or ``[1 or N, C, R, R]``, in [-1, 1]) into ``contexts`` ``[N, C, R, R]``
    where ``mask`` is 1, and return the W+ codes ``[N, L, D]`` of the blended images.

    The optimisation starts from ``E(stitched)`` when an ``encoder`` is given, else from ``init_codes``.
    """
    if target.ndim == 3:
        target = target.unsqueeze(0)
    mask = torch.as_tensor(mask).to(contexts)
    if mask.ndim == 2:
        mask = mask[None, None]
    stitched = target.to(contexts) * mask + contexts * (1 - mask)
    if encoder is None and init_codes is None:
        raise ValueError("diffusion needs an encoder (init E(stitched)) or init_codes")
    result = IDInvert().invert(
        generator, stitched, encoder=encoder, feature_net=feature_net, mask=mask,
        init_codes=None if encoder is not None else init_codes,
        steps=steps, lr=lr, l_feat=l_feat, l_dom=0.0, noise_mode=noise_mode,
    )  # fmt: skip
    return result.codes


class Diffuse(Editor):
    """Semantic diffusion. The edited codes are the *contexts* (rendered with ``G.synthesis``); the ``target``
    image's region is diffused into each of them.

    It follows the paper (init ``E(stitched)``, perceptual loss with the feature network) when an encoder is
    in its context (``EditContext.encoder``, filled from the pipeline by the CLI and the app) or given to the
    constructor; without one the optimisation starts from the context codes themselves.
    """

    uses = ("encoder", "feature_net")

    name = "diffuse"
    description = ("Semantic diffusion: paste the target image's region (box or mask) into each context and "
                   "optimise the code to reconstruct only that region, letting the generator blend the rest.")
    params = (
        Param("target", "image", required=True, help="image [C, R, R] in [-1, 1] whose region is pasted"),
        Param("mask", "mask", default=None, help="[R, R] mask of the region (1 = target); overrides the box"),
        Param("center_x", "int", default=None, min=0, max=8192, step=1, help="box centre column (default: middle)"),
        Param("center_y", "int", default=None, min=0, max=8192, step=1, help="box centre row (default: middle)"),
        Param("crop_size", "int", default=None, min=1, max=8192, step=1,
              help="box side (default: 43% of the resolution, the official 110 of 256)"),
        Param("steps", "int", default=100, min=0, max=10_000, step=1, help="Adam steps"),
        Param("lr", "float", default=0.01, min=0.0, max=10.0, step=1e-3, help="Adam learning rate"),
        Param("l_feat", "float", default=None, min=0.0, max=1e6, step=1e-5,
              help="perceptual weight; default: the feature network's recommended weight, 0 without one"),
    )

    def __init__(self, encoder: nn.Module | None = None, feature_net: nn.Module | None = None) -> None:
        self.encoder = encoder
        self.feature_net = feature_net

    def edit_latent(self, ctx: EditContext, latent: Latent, **params: Any) -> Latent:
        encoder = self.encoder if self.encoder is not None else ctx.encoder
        feature_net = self.feature_net if self.feature_net is not None else ctx.feature_net
        codes = self._diffuse(ctx.generator, latent.wp, encoder, feature_net, **params)
        return latent.with_wp(codes)

    def edit(self, generator: Generator, codes: torch.Tensor, **params: Any) -> torch.Tensor:
        return self._diffuse(generator, codes, self.encoder, self.feature_net, **params)

    def _diffuse(self, generator: Generator, codes: torch.Tensor, encoder: nn.Module | None,
                 feature_net: nn.Module | None, *, target: torch.Tensor, mask: torch.Tensor | None,
                 center_x: int | None, center_y: int | None, crop_size: int | None, steps: int, lr: float,
                 l_feat: float | None, **_: Any) -> torch.Tensor:
        res = generator.resolution
        if mask is None:
            crop = crop_size if crop_size is not None else round(res * 110 / 256)
            mask = box_mask(res, res // 2 if center_x is None else center_x,
                            res // 2 if center_y is None else center_y, crop)
        l_feat = resolve_feature_weight(l_feat, feature_net)
        with torch.no_grad():
            contexts = generator.synthesis(codes, noise_mode="const")
        return diffuse(generator, target, contexts, mask, encoder=encoder, init_codes=codes,
                       feature_net=feature_net, steps=steps, lr=lr, l_feat=l_feat)
