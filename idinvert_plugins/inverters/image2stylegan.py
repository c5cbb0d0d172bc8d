"""Image2StyleGAN (Abdal et al., ICCV 2019): optimise a W+ code from the average latent.

Start from ``w_avg`` on every layer and minimise ``l_pix * MSE + l_feat * perceptual`` with Adam (lr 0.01;
the paper ran 5000 steps). There is no encoder and no domain regulariser, so the code can drift out of the
generator's domain: reconstructions are good, edits less so. That contrast is the point of IDInvert.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models.base import Generator
from .base import (
    AUTOCAST,
    CHUNK_SIZE,
    FEATURE_AUTOCAST,
    L_FEAT,
    L_PIX,
    NOISE_MODE,
    InversionResult,
    Inverter,
    StepCallback,
    lr_param,
    steps_param,
)
from .optimize import resolve_feature_weight, run_inversion


class Image2StyleGAN(Inverter):
    name = "image2stylegan"
    description = "W+ optimisation from the average latent with pixel and perceptual losses (Image2StyleGAN)."
    params = (steps_param(500), lr_param(0.01), L_PIX, L_FEAT, NOISE_MODE, FEATURE_AUTOCAST,
              AUTOCAST, CHUNK_SIZE)
    uses_feature_net = True

    def run(self, generator: Generator, images: torch.Tensor, *, encoder: nn.Module | None,
            feature_net: nn.Module | None, mask: torch.Tensor | None, init_codes: torch.Tensor | None,
            progress: bool, callback: StepCallback | None, steps: int, lr: float, l_pix: float,
            l_feat: float | None, noise_mode: str, feature_autocast: bool, autocast: bool,
            chunk_size: int | None, **_: Any) -> InversionResult:
        if init_codes is None:
            n = images.shape[0]
            init_codes = generator.w_avg.detach().to(images).expand(n, generator.num_layers, -1).clone()
        return run_inversion(
            generator, images, init_codes, steps=steps, lr=lr, feature_net=feature_net, mask=mask, l_pix=l_pix,
            l_feat=resolve_feature_weight(l_feat, feature_net), noise_mode=noise_mode,
            feature_autocast=feature_autocast, autocast=autocast, chunk_size=chunk_size,
            progress=progress, callback=callback, desc=self.name,
        )  # fmt: skip
