"""In-domain inversion (Zhu et al., "In-Domain GAN Inversion for Real Image Editing", ECCV 2020, sec. 3.3).

Start from the domain-guided encoder's code ``w = E(x)``, then minimise with Adam (lr 0.01, 100 steps)::

    mean((x - G(w))^2) + 5e-5 * mean((F(x) - F(G(w)))^2) + 2 * mean((w - E(G(w)))^2)

where F is VGG16 conv4_3. The last term, the domain regulariser, keeps the code where the encoder maps
images, i.e. in the semantically meaningful part of the latent space. Defaults follow the official
``StyleGANInverter``. With a ``mask`` and ``l_dom=0`` this is the official semantic-diffusion objective.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models.base import Generator
from .base import (
    ADD_W_AVG,
    AUTOCAST,
    CHUNK_SIZE,
    FEATURE_AUTOCAST,
    L_DOM,
    L_FEAT,
    L_PIX,
    NOISE_MODE,
    InversionResult,
    Inverter,
    StepCallback,
    lr_param,
    steps_param,
)
from .optimize import encode_images, resolve_feature_weight, run_inversion


class IDInvert(Inverter):
    name = "idinvert"
    description = ("In-domain inversion: encoder initialisation, then Adam on W+ with pixel, perceptual and "
                   "domain-regularisation losses (IDInvert, eq. 4).")
    params = (steps_param(100), lr_param(0.01), L_PIX, L_FEAT, L_DOM, ADD_W_AVG, NOISE_MODE, FEATURE_AUTOCAST,
              AUTOCAST, CHUNK_SIZE)
    requires_encoder = True
    uses_feature_net = True

    def run(self, generator: Generator, images: torch.Tensor, *, encoder: nn.Module | None,
            feature_net: nn.Module | None, mask: torch.Tensor | None, init_codes: torch.Tensor | None,
            progress: bool, callback: StepCallback | None, steps: int, lr: float, l_pix: float,
            l_feat: float | None, l_dom: float, add_w_avg: bool | None, noise_mode: str,
            feature_autocast: bool, autocast: bool, chunk_size: int | None, **_: Any) -> InversionResult:
        if init_codes is None:
            assert encoder is not None
            init_codes = encode_images(encoder, generator, images, add_w_avg, chunk_size)
        return run_inversion(
            generator, images, init_codes, steps=steps, lr=lr, encoder=encoder, feature_net=feature_net,
            mask=mask, l_pix=l_pix, l_feat=resolve_feature_weight(l_feat, feature_net), l_dom=l_dom,
            add_w_avg=add_w_avg, noise_mode=noise_mode, feature_autocast=feature_autocast,
            autocast=autocast, chunk_size=chunk_size, progress=progress,
            callback=callback, desc=self.name,
        )  # fmt: skip
