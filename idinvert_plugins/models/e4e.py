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

from .irse import DEFAULT_WIDTHS, IRSE_STAGES
from .psp import GradualStyleEncoder, StyleEncoderBase, n_styles_for, upsample_add

#: ``ProgressiveStage.Inference`` of the official code: every offset applies
INFERENCE_STAGE = 18


class Encoder4Editing(GradualStyleEncoder):
    """e4e's encoder: ``[N, 3, S, S]`` -> ``w0`` repeated plus offsets ``[N, n_styles, w_dim]`` (see the module
    docstring). pSp's modules (the same ``state_dict`` keys); arguments as
    :class:`~.psp.GradualStyleEncoder` (without ``input_nc``: e4e reads RGB)."""

    def __init__(self, n_styles: int, w_dim: int = 512, input_size: int = 256,
                 stages: Sequence[int] = IRSE_STAGES[50], widths: Sequence[int] = DEFAULT_WIDTHS, stem: int = 64,
                 coarse_ind: int = 3, middle_ind: int = 7, style_channels: int | None = None) -> None:
        super().__init__(n_styles, 3, w_dim, input_size, stages, widths, stem, coarse_ind, middle_ind, style_channels)
        self.progressive_stage = INFERENCE_STAGE

    def set_progressive_stage(self, stage: int) -> None:
        """0 trains only the base code w0; k adds the offsets of layers 1..k; >= n_styles - 1 all of them."""
        self.progressive_stage = int(stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2, c3 = self.features(x)
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
                 start_from_latent_avg: bool = True, style_channels: int | None = None) -> None:
        super().__init__()
        num_layers = n_styles_for(resolution) if num_layers is None else int(num_layers)
        self._setup(dict(resolution=resolution, num_layers=num_layers, w_dim=w_dim, input_size=input_size,
                         stages=list(stages), widths=list(widths), stem=stem,
                         start_from_latent_avg=start_from_latent_avg, style_channels=style_channels),
                    resolution, num_layers, w_dim, input_size, 3)
        self.start_from_latent_avg = bool(start_from_latent_avg)
        self.encoder = Encoder4Editing(num_layers, w_dim, input_size, stages, widths, stem,
                                       style_channels=style_channels)

    def set_progressive_stage(self, stage: int) -> None:
        self.encoder.set_progressive_stage(stage)

    @property
    def progressive_stage(self) -> int:
        return self.encoder.progressive_stage

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        codes = self.encoder(self.prepare(images))
        return codes + self.latent_avg if self.start_from_latent_avg else codes


__all__ = ["E4EEncoder", "Encoder4Editing", "INFERENCE_STAGE"]
