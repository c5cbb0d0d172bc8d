"""Encoder-only inversion: ``w = E(x)`` in one forward pass (plus ``G.w_avg`` for offset encoders).

Fast and always in-domain, but a looser reconstruction than optimisation; IDInvert uses it as the
starting point (see :mod:`.idinvert`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models.base import Generator
from .base import ADD_W_AVG, CHUNK_SIZE, NOISE_MODE, InversionResult, Inverter, StepCallback
from .optimize import encode_images, resolve_feature_weight, run_inversion


class EncoderInverter(Inverter):
    name = "encoder"
    description = "The domain-guided encoder's code E(x), without optimisation."
    params = (ADD_W_AVG, NOISE_MODE, CHUNK_SIZE)
    requires_encoder = True

    def run(self, generator: Generator, images: torch.Tensor, *, encoder: nn.Module | None,
            feature_net: nn.Module | None, mask: torch.Tensor | None, init_codes: torch.Tensor | None,
            progress: bool, callback: StepCallback | None, add_w_avg: bool | None, noise_mode: str,
            chunk_size: int | None, **_: Any) -> InversionResult:
        if init_codes is None:
            assert encoder is not None
            init_codes = encode_images(encoder, generator, images, add_w_avg, chunk_size)
        # steps=0: no optimisation, only the rendering and the loss of E(x) (perceptual if a network is given)
        return run_inversion(
            generator, images, init_codes, steps=0, lr=0.0, feature_net=feature_net, mask=mask,
            l_feat=resolve_feature_weight(None, feature_net), noise_mode=noise_mode, chunk_size=chunk_size,
            desc=self.name,
        )  # fmt: skip
