"""e4e: ``Encoder4Editing`` of "Designing an Encoder for StyleGAN Image Manipulation" (Tov et al., 2021).

Names as in omertov/encoder4editing ``models/encoders/psp_encoders.py``: the IR-SE50 body and feature pyramid
of pSp (:mod:`.psp`; the input layer always has 3 channels), and one map2style block per W+ layer. It predicts
**one base code plus per-layer offsets**: ``w0 = styles[0](c3)`` is copied to every layer, then for
``i = 1 .. min(progressive_stage + 1, n_styles) - 1`` the offset ``styles[i](features)`` is added to layer i
(features: c3 for i < 3, p2 for i < 7, p1 after). ``progressive_stage`` is e4e's training schedule (0: only
w0, k: the first k offsets); it is not saved in checkpoints and a freshly built encoder is at the inference
stage (all offsets), as the official ``ProgressiveStage.Inference``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from .irse import DEFAULT_WIDTHS, IRSE_STAGES, irse_body, irse_input_layer, stage_ends
from .psp import GradualStyleBlock, StyleEncoderBase, n_styles_for, upsample_add

#: ``ProgressiveStage.Inference`` of the official code: every offset applies
INFERENCE_STAGE = 18


class Encoder4Editing(nn.Module):
    """e4e's encoder: ``[N, 3, S, S]`` -> ``w0`` repeated plus offsets ``[N, n_styles, w_dim]`` (see the module
    docstring). Arguments as :class:`~.psp.GradualStyleEncoder` (without ``input_nc``: e4e reads RGB)."""

    def __init__(self, n_styles: int, w_dim: int = 512, input_size: int = 256,
                 stages: Sequence[int] = IRSE_STAGES[50], widths: Sequence[int] = DEFAULT_WIDTHS, stem: int = 64,
                 coarse_ind: int = 3, middle_ind: int = 7) -> None:
        super().__init__()
        if input_size < 16 or input_size & (input_size - 1):
            raise ValueError(f"input_size must be a power of two >= 16, got {input_size}")
        self.input_layer = irse_input_layer(3, stem)
        self.body = irse_body(stages, widths, se=True, stem=stem)
        self.taps = stage_ends(stages)[1:]
        self.style_count = n_styles
        self.coarse_ind, self.middle_ind = coarse_ind, middle_ind
        top = widths[3]
        self.styles = nn.ModuleList()
        for i in range(n_styles):
            spatial = input_size // 16 if i < coarse_ind else input_size // 8 if i < middle_ind else input_size // 4
            self.styles.append(GradualStyleBlock(top, w_dim, spatial))
        self.latlayer1 = nn.Conv2d(widths[2], top, kernel_size=1, stride=1, padding=0)
        self.latlayer2 = nn.Conv2d(widths[1], top, kernel_size=1, stride=1, padding=0)
        self.progressive_stage = INFERENCE_STAGE

    def set_progressive_stage(self, stage: int) -> None:
        """0 trains only the base code w0; k adds the offsets of layers 1..k; >= n_styles - 1 all of them."""
        self.progressive_stage = int(stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_layer(x)
        feats = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self.taps:
                feats.append(x)
        c1, c2, c3 = feats
        w0 = self.styles[0](c3)
        w = w0.repeat(self.style_count, 1, 1).permute(1, 0, 2)
        features = c3
        p2 = None
        for i in range(1, min(self.progressive_stage + 1, self.style_count)):
            if i == self.coarse_ind:
                p2 = upsample_add(c3, self.latlayer1(c2))
                features = p2
            elif i == self.middle_ind:
                assert p2 is not None
                features = upsample_add(p2, self.latlayer2(c1))
            w[:, i] += self.styles[i](features)
        return w


class E4EEncoder(StyleEncoderBase):
    """e4e (``Encoder4Editing``) with its ``latent_avg``: images -> W+ codes ``w + latent_avg``
    (``start_from_latent_avg``, the official default). Arguments as :class:`~.psp.PSPEncoder`.
    :meth:`set_progressive_stage` selects how many offsets apply (training)."""

    architecture: ClassVar[str] = "e4e-encoder"
    official_class: ClassVar[str] = "Encoder4Editing"

    def __init__(self, resolution: int, num_layers: int | None = None, w_dim: int = 512, input_size: int = 256,
                 stages: Sequence[int] = IRSE_STAGES[50], widths: Sequence[int] = DEFAULT_WIDTHS, stem: int = 64,
                 start_from_latent_avg: bool = True) -> None:
        super().__init__()
        num_layers = n_styles_for(resolution) if num_layers is None else int(num_layers)
        self._setup(dict(resolution=resolution, num_layers=num_layers, w_dim=w_dim, input_size=input_size,
                         stages=list(stages), widths=list(widths), stem=stem,
                         start_from_latent_avg=start_from_latent_avg),
                    resolution, num_layers, w_dim, input_size, 3)
        self.start_from_latent_avg = bool(start_from_latent_avg)
        self.encoder = Encoder4Editing(num_layers, w_dim, input_size, stages, widths, stem)

    def set_progressive_stage(self, stage: int) -> None:
        self.encoder.set_progressive_stage(stage)

    @property
    def progressive_stage(self) -> int:
        return self.encoder.progressive_stage

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        codes = self.encoder(self.prepare(images))
        return codes + self.latent_avg if self.start_from_latent_avg else codes


__all__ = ["E4EEncoder", "Encoder4Editing", "INFERENCE_STAGE"]
