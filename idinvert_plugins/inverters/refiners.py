"""The built-in refiners: ``domain-regularized`` (IDInvert's optimisation) and ``wplus`` (Image2StyleGAN's).

Both run the one optimisation loop of :mod:`.optimize` on the latent's W+ codes, keeping its other parts in
every render. They differ in the domain regulariser: ``domain-regularized`` adds
``l_dom * mean((w - E(G(w)))^2)`` with the domain-guided encoder E (IDInvert eq. 4), ``wplus`` has none.
"""

from __future__ import annotations

from typing import Any

from ..latent import Latent
from .base import (
    ADD_W_AVG,
    AUTOCAST,
    CHUNK_SIZE,
    FEATURE_AUTOCAST,
    L_DOM,
    L_FEAT,
    L_PIX,
    NOISE_MODE,
    lr_param,
    steps_param,
)
from .optimize import resolve_feature_weight, run_inversion
from .stages import InversionContext, Refiner, RefineResult


class WPlusOptimization(Refiner):
    name = "wplus"
    description = "Adam on the W+ codes with pixel and perceptual losses (Image2StyleGAN); other parts kept"
    params = (steps_param(500), lr_param(0.01), L_PIX, L_FEAT, NOISE_MODE, FEATURE_AUTOCAST, AUTOCAST, CHUNK_SIZE)
    uses_feature_net = True

    def refine(self, ctx: InversionContext, latent: Latent, *, steps: int, lr: float, l_pix: float,
               l_feat: float | None, noise_mode: str, feature_autocast: bool, autocast: bool,
               chunk_size: int | None, l_dom: float = 0.0, add_w_avg: bool | None = None,
               **_: Any) -> RefineResult:
        res = run_inversion(
            ctx.generator, ctx.images, latent.wp, steps=steps, lr=lr,
            encoder=ctx.encoder if l_dom else None, feature_net=ctx.feature_net, mask=ctx.mask, l_pix=l_pix,
            l_feat=resolve_feature_weight(l_feat, ctx.feature_net), l_dom=l_dom, add_w_avg=add_w_avg,
            noise_mode=noise_mode, feature_autocast=feature_autocast, autocast=autocast, chunk_size=chunk_size,
            progress=ctx.progress, callback=ctx.callback, desc=self.name, parts=latent,
        )  # fmt: skip
        return RefineResult(latent.with_wp(res.codes), res.losses, res.images, res.final_losses, res.info)


class DomainRegularizedOptimization(WPlusOptimization):
    name = "domain-regularized"
    description = ("IDInvert's domain-regularised optimisation: Adam on W+ with pixel, perceptual and "
                   "mean((w - E(G(w)))^2) losses, which keeps the code where the encoder maps images")
    params = (steps_param(100), lr_param(0.01), L_PIX, L_FEAT, L_DOM, ADD_W_AVG, NOISE_MODE, FEATURE_AUTOCAST,
              AUTOCAST, CHUNK_SIZE)


__all__ = ["DomainRegularizedOptimization", "WPlusOptimization"]
