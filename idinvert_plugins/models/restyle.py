"""ReStyle: the iterative encoders of "ReStyle: A Residual-Based StyleGAN Encoder via Iterative Refinement"
(Alaluf et al., ICCV 2021).

Names as in yuval-alaluf/restyle-encoder ``models/encoders/restyle_psp_encoders.py`` and
``restyle_e4e_encoders.py``. The input has 6 channels: the image and the current reconstruction. There is no
feature pyramid: every map2style block (``GradualStyleBlock(512, 512, 16)``) reads the last, input/16 map.

================================== ========= ===========================================================
official class                     backbone  output
================================== ========= ===========================================================
``BackboneEncoder``                IR-SE50   one code per layer (``styles.i(x)``)
``ResNetBackboneEncoder``          ResNet-34 one code per layer
``ProgressiveBackboneEncoder``     IR-SE50   e4e-style: ``w0 = styles.0(x)`` repeated, plus offsets
``ResNetProgressiveBackboneEncoder`` ResNet-34 e4e-style
================================== ========= ===========================================================

The ResNet-34 stem is ``conv1`` (7x7, stride 2) -> ``bn1`` -> ``relu`` (a PReLU) with no max-pool, then torchvision's
16 BasicBlocks as ``body.0..15``.

:class:`ReStyleEncoder` is what this library loads: the official encoder plus ``latent_avg`` and the average
image. One ReStyle step: ``codes = encoder(cat([x, y])) + previous`` where ``y`` is the previous reconstruction
(resized to ``input_size`` by an average pool, the official ``face_pool``) and ``previous`` its codes; the first
step reads the average image ``G(latent_avg)`` as ``y`` and adds ``latent_avg``. The iterations, with the
generator in the loop, run in the ``restyle`` embedder (:mod:`idinvert_plugins.inverters.psp_family`);
:meth:`ReStyleEncoder.forward` alone is the first step, from the stored :attr:`~ReStyleEncoder.avg_image`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from .irse import DEFAULT_WIDTHS, IRSE_STAGES, RESNET34_STAGES, irse_body, irse_input_layer, resnet_body
from .psp import GradualStyleBlock, StyleEncoderBase, n_styles_for

INFERENCE_STAGE = 18


class _SingleMapEncoder(nn.Module):
    """All map2style blocks read the last feature map; ``progressive`` switches to e4e's base code + offsets."""

    progressive: ClassVar[bool] = False

    def _heads(self, n_styles: int, top: int, w_dim: int, input_size: int, style_channels: int | None) -> None:
        if input_size < 16 or input_size & (input_size - 1):
            raise ValueError(f"input_size must be a power of two >= 16, got {input_size}")
        self.style_count = n_styles
        self.styles = nn.ModuleList([GradualStyleBlock(top, w_dim, input_size // 16, style_channels)
                                     for _ in range(n_styles)])
        self.progressive_stage = INFERENCE_STAGE

    def set_progressive_stage(self, stage: int) -> None:
        self.progressive_stage = int(stage)

    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.backbone(x)
        if not self.progressive:
            return torch.stack([style(x) for style in self.styles], dim=1)
        w0 = self.styles[0](x)
        w = w0.repeat(self.style_count, 1, 1).permute(1, 0, 2)
        for i in range(1, min(self.progressive_stage + 1, self.style_count)):
            w[:, i] += self.styles[i](x)
        return w


class BackboneEncoder(_SingleMapEncoder):
    """ReStyle-pSp with the IR-SE50 backbone: ``input_layer`` (``input_nc`` channels), ``body``, ``styles``."""

    def __init__(self, n_styles: int, input_nc: int = 6, w_dim: int = 512, input_size: int = 256,
                 stages: Sequence[int] = IRSE_STAGES[50], widths: Sequence[int] = DEFAULT_WIDTHS,
                 stem: int = 64, style_channels: int | None = None) -> None:
        super().__init__()
        self.input_layer = irse_input_layer(input_nc, stem)
        self.body = irse_body(stages, widths, se=True, stem=stem)
        self._heads(n_styles, widths[3], w_dim, input_size, style_channels)

    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.input_layer(x))


class ProgressiveBackboneEncoder(BackboneEncoder):
    """ReStyle-e4e with the IR-SE50 backbone (base code + offsets)."""

    progressive = True


class ResNetBackboneEncoder(_SingleMapEncoder):
    """ReStyle-pSp with the ResNet-34 backbone: ``conv1``, ``bn1``, ``relu`` (PReLU), ``body``, ``styles``."""

    def __init__(self, n_styles: int, input_nc: int = 6, w_dim: int = 512, input_size: int = 256,
                 stages: Sequence[int] = RESNET34_STAGES, widths: Sequence[int] = DEFAULT_WIDTHS,
                 stem: int = 64, style_channels: int | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_nc, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.PReLU(stem)
        self.body = resnet_body(stages, widths, stem=stem)
        self._heads(n_styles, widths[3], w_dim, input_size, style_channels)

    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.relu(self.bn1(self.conv1(x))))


class ResNetProgressiveBackboneEncoder(ResNetBackboneEncoder):
    """ReStyle-e4e with the ResNet-34 backbone (base code + offsets)."""

    progressive = True


#: ``encoder_type`` of the official options -> class
ENCODER_TYPES: dict[str, type[_SingleMapEncoder]] = {
    "BackboneEncoder": BackboneEncoder,
    "ResNetBackboneEncoder": ResNetBackboneEncoder,
    "ProgressiveBackboneEncoder": ProgressiveBackboneEncoder,
    "ResNetProgressiveBackboneEncoder": ResNetProgressiveBackboneEncoder,
}


class ReStyleEncoder(StyleEncoderBase):
    """A ReStyle encoder with its ``latent_avg`` and average image.

    :meth:`step` is one ReStyle iteration; :meth:`forward` (images only) is the first one, from the stored
    average image, so the encoder also serves where one forward pass is expected (``--method encoder``, the
    domain regulariser of IDInvert).

    Args:
        resolution, num_layers, w_dim, input_size: as :class:`~.psp.PSPEncoder`.
        encoder_type: the official class (:data:`ENCODER_TYPES`).
        input_nc: 6 (image + reconstruction).
        stages, widths, stem: the backbone (IR-SE50 or ResNet-34 tables by default, from ``encoder_type``).
        n_iters: iterations the ``restyle`` embedder runs by default (the official ``n_iters_per_batch``, 5).
        style_channels: the width of the map2style convs (None: ``w_dim``, the official layout).
    """

    architecture: ClassVar[str] = "restyle-encoder"

    def __init__(self, resolution: int, num_layers: int | None = None, w_dim: int = 512,
                 encoder_type: str = "BackboneEncoder", input_nc: int = 6, input_size: int = 256,
                 stages: Sequence[int] | None = None, widths: Sequence[int] = DEFAULT_WIDTHS, stem: int = 64,
                 n_iters: int = 5, start_from_latent_avg: bool = True, style_channels: int | None = None) -> None:
        super().__init__()
        if encoder_type not in ENCODER_TYPES:
            raise ValueError(f"unknown ReStyle encoder_type {encoder_type!r}; known: {', '.join(ENCODER_TYPES)}")
        if input_nc != 6:
            raise ValueError(f"ReStyle encoders read the image and the reconstruction (input_nc=6), got {input_nc}")
        cls = ENCODER_TYPES[encoder_type]
        if stages is None:
            stages = RESNET34_STAGES if issubclass(cls, ResNetBackboneEncoder) else IRSE_STAGES[50]
        num_layers = n_styles_for(resolution) if num_layers is None else int(num_layers)
        self._setup(dict(resolution=resolution, num_layers=num_layers, w_dim=w_dim, encoder_type=encoder_type,
                         input_nc=input_nc, input_size=input_size, stages=list(stages), widths=list(widths),
                         stem=stem, n_iters=n_iters, start_from_latent_avg=start_from_latent_avg,
                         style_channels=style_channels),
                    resolution, num_layers, w_dim, input_size, 3)
        self.official_class = encoder_type  # type: ignore[misc]
        self.encoder_type = encoder_type
        self.n_iters = int(n_iters)
        self.start_from_latent_avg = bool(start_from_latent_avg)
        self.encoder = cls(num_layers, input_nc, w_dim, input_size, stages, widths, stem, style_channels)
        #: ``G(latent_avg)`` at ``input_size``, the first step's reconstruction (filled when converted or trained)
        self.register_buffer("avg_image", torch.zeros(3, input_size, input_size))

    @property
    def progressive(self) -> bool:
        return self.encoder.progressive

    def set_progressive_stage(self, stage: int) -> None:
        self.encoder.set_progressive_stage(stage)

    def start_codes(self, n: int) -> torch.Tensor:
        """The codes the first step adds its output to: ``latent_avg`` (zeros without ``start_from_latent_avg``)."""
        start = self.latent_avg if self.start_from_latent_avg else torch.zeros_like(self.latent_avg)
        return start.expand(n, -1, -1)

    def step(self, images: torch.Tensor, reconstruction: torch.Tensor | None = None,
             previous: torch.Tensor | None = None) -> torch.Tensor:
        """One iteration: ``encoder(cat([x, y])) + previous``. ``reconstruction`` None: the average image
        (:attr:`avg_image`); ``previous`` None: :meth:`start_codes` (the official first step)."""
        x = self.prepare(images)
        y = self.avg_image.expand(x.shape[0], -1, -1, -1) if reconstruction is None \
            else self.prepare(reconstruction)
        out = self.encoder(torch.cat([x, y.to(x)], dim=1))
        return out + (self.start_codes(x.shape[0]) if previous is None else previous)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.step(images)


__all__ = ["BackboneEncoder", "ENCODER_TYPES", "ProgressiveBackboneEncoder", "ReStyleEncoder",
           "ResNetBackboneEncoder", "ResNetProgressiveBackboneEncoder"]
