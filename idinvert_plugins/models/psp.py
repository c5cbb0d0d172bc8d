"""pSp: the ``GradualStyleEncoder`` of "Encoding in Style" (Richardson et al., CVPR 2021), pure PyTorch.

Layout and names as in eladrich/pixel2style2pixel ``models/encoders/psp_encoders.py`` so that the ``encoder.*``
entries of an official checkpoint load strictly into :attr:`PSPEncoder.encoder`:

* an IR-SE50 backbone (``input_layer``, ``body.0..23``, :mod:`.irse`); feature maps are tapped at the end of
  stages 2, 3 and 4 (c1 after ``body.6``: 128 channels at input/4; c2 after ``body.20``: 256 at input/8; c3
  after ``body.23``: 512 at input/16);
* a feature pyramid: p2 = bilinear(c3 -> c2's size, ``align_corners=True``) + ``latlayer1(c2)``, p1 = bilinear(p2)
  + ``latlayer2(c1)`` (1x1 convs with bias);
* ``styles.i``: one :class:`GradualStyleBlock` ("map2style") per W+ layer: styles 0-2 read c3, 3-6 read p2, the
  rest p1. ``n_styles = 2 * log2(output_size) - 2``.

:class:`PSPEncoder` is what this library loads and registers: the official encoder plus the checkpoint's
``latent_avg`` (codes = encoder output + ``latent_avg`` with ``start_from_latent_avg``, as the official ``pSp``
wrapper), and the input handling (images at the generator's resolution are resized to the encoder's
``input_size``, 256 for the official models). The e4e and ReStyle encoders (:mod:`.e4e`, :mod:`.restyle`) reuse
the blocks and the wrapper base defined here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .irse import DEFAULT_WIDTHS, IRSE_STAGES, irse_body, irse_input_layer, stage_ends
from .layers import EqualLinear


def n_styles_for(output_size: int) -> int:
    """W+ length of a rosinality StyleGAN2 generator of ``output_size`` px: ``2 * log2(output_size) - 2``."""
    return 2 * int(math.log2(output_size)) - 2


class GradualStyleBlock(nn.Module):
    """map2style: ``log2(spatial)`` 3x3 convs with stride 2 (bias, LeakyReLU slope 0.01 after each; the first
    ``in_c -> out_c``, the rest ``out_c -> out_c``) shrink a ``spatial`` x ``spatial`` map to 1x1, then an
    ``EqualLinear(out_c, out_c)``: ``x @ (W / sqrt(out_c)).T + b``. Keys ``convs.{0,2,4,...}``, ``linear``.

    ``hidden`` (default ``out_c``, the official layout) narrows the convs for small domains: the convs are then
    ``in_c -> hidden -> hidden ...`` and the linear ``hidden -> out_c``. The ten to eighteen blocks hold most of
    an encoder's weights and, at 64 px, most of its computation, so this is the knob that makes a small encoder
    small."""

    def __init__(self, in_c: int, out_c: int, spatial: int, hidden: int | None = None) -> None:
        super().__init__()
        if spatial < 1 or spatial & (spatial - 1):
            raise ValueError(f"GradualStyleBlock needs a power-of-two spatial size, got {spatial}")
        hidden = out_c if hidden is None else int(hidden)
        self.out_c, self.hidden = out_c, hidden
        self.spatial = spatial
        num_pools = int(math.log2(spatial))
        modules: list[nn.Module] = [nn.Conv2d(in_c, hidden, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        for _ in range(num_pools - 1):
            modules += [nn.Conv2d(hidden, hidden, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*modules)
        self.linear = EqualLinear(hidden, out_c, lr_mul=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.spatial:
            raise ValueError(f"map2style block for {self.spatial}x{self.spatial} maps got {list(x.shape[-2:])}")
        x = self.convs(x)
        return self.linear(x.reshape(-1, self.hidden))


def upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The FPN step: ``x`` resized (bilinear, ``align_corners=True``) to ``y``'s size, plus ``y``."""
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


class GradualStyleEncoder(nn.Module):
    """pSp's encoder: IR-SE body + feature pyramid + one map2style block per W+ layer -> ``[N, n_styles, w_dim]``.

    Args:
        n_styles: W+ length (18 for 1024 px generators, 14 for 256 px).
        input_nc: input channels (3 for images; pSp's sketch / segmentation models use others).
        w_dim: style width (512 officially; also the FPN width).
        input_size: the side of the images the encoder reads (256 officially); the map2style blocks read
            input/16, input/8 and input/4 maps.
        stages, widths, stem: the IR-SE body (:func:`~.irse.irse_body`): IR-SE50 is (3, 4, 14, 3) units of
            widths (64, 128, 256, 512) after a 64-channel input layer.
        coarse_ind, middle_ind: the first styles that read p2 and p1 (3 and 7).
        style_channels: the width of the map2style convs (None: ``w_dim``, the official layout).
    """

    def __init__(self, n_styles: int, input_nc: int = 3, w_dim: int = 512, input_size: int = 256,
                 stages: Sequence[int] = IRSE_STAGES[50], widths: Sequence[int] = DEFAULT_WIDTHS, stem: int = 64,
                 coarse_ind: int = 3, middle_ind: int = 7, style_channels: int | None = None) -> None:
        super().__init__()
        if input_size < 16 or input_size & (input_size - 1):
            raise ValueError(f"input_size must be a power of two >= 16, got {input_size}")
        self.input_layer = irse_input_layer(input_nc, stem)
        self.body = irse_body(stages, widths, se=True, stem=stem)
        self.taps = stage_ends(stages)[1:]
        self.style_count = n_styles
        self.coarse_ind, self.middle_ind = coarse_ind, middle_ind
        top = widths[3]
        self.styles = nn.ModuleList()
        for i in range(n_styles):
            spatial = input_size // 16 if i < coarse_ind else input_size // 8 if i < middle_ind else input_size // 4
            self.styles.append(GradualStyleBlock(top, w_dim, spatial, style_channels))
        self.latlayer1 = nn.Conv2d(widths[2], top, kernel_size=1, stride=1, padding=0)
        self.latlayer2 = nn.Conv2d(widths[1], top, kernel_size=1, stride=1, padding=0)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """c1, c2, c3: the outputs of the last units of body stages 2, 3 and 4."""
        x = self.input_layer(x)
        feats = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self.taps:
                feats.append(x)
        c1, c2, c3 = feats
        return c1, c2, c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2, c3 = self.features(x)
        latents = [self.styles[j](c3) for j in range(min(self.coarse_ind, self.style_count))]
        if self.style_count > self.coarse_ind:
            p2 = upsample_add(c3, self.latlayer1(c2))
            latents += [self.styles[j](p2) for j in range(self.coarse_ind, min(self.middle_ind, self.style_count))]
            if self.style_count > self.middle_ind:
                p1 = upsample_add(p2, self.latlayer2(c1))
                latents += [self.styles[j](p1) for j in range(self.middle_ind, self.style_count)]
        return torch.stack(latents, dim=1)


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bring images to ``size`` x ``size``: unchanged when they are; an exact integer shrink is an average pool
    (ReStyle's ``face_pool``, ``AdaptiveAvgPool2d``); anything else an antialiased bilinear resize."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if h >= size and w >= size and h % size == 0 and w % size == 0:
        return F.adaptive_avg_pool2d(x, (size, size))
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=min(h, w) > size)


class StyleEncoderBase(nn.Module):
    """What the pSp-family encoders of this library share: the official encoder as :attr:`encoder` (its
    ``state_dict`` keys are the checkpoint's ``encoder.*`` keys), the checkpoint's ``latent_avg`` as a buffer
    ``[num_layers, w_dim]``, and the contract of this library's encoders: ``resolution`` (the side of the images
    it is given: the generator's), ``num_layers``, ``w_dim``, ``config`` (``cls(**config)`` rebuilds it).
    Images of another size are resized to ``input_size`` (:func:`resize_to`) before the encoder reads them."""

    architecture: ClassVar[str] = ""
    #: what the ``encoder`` module is in the official code (for messages and model cards)
    official_class: ClassVar[str] = ""
    encoder: nn.Module

    def _setup(self, config: dict[str, Any], resolution: int, num_layers: int, w_dim: int, input_size: int,
               img_channels: int) -> None:
        self.config = config
        self.resolution, self.num_layers, self.w_dim = int(resolution), int(num_layers), int(w_dim)
        self.input_size, self.img_channels = int(input_size), int(img_channels)
        self.register_buffer("latent_avg", torch.zeros(self.num_layers, self.w_dim))

    def prepare(self, images: torch.Tensor, channels: int | None = None) -> torch.Tensor:
        """Check ``images`` ``[N, C, H, W]`` and resize them to ``input_size``."""
        channels = self.img_channels if channels is None else channels
        if images.ndim != 4 or images.shape[1] != channels:
            raise ValueError(f"{type(self).__name__} takes images [N, {channels}, H, W], got {list(images.shape)}")
        return resize_to(images, self.input_size)


class PSPEncoder(StyleEncoderBase):
    """pSp (``GradualStyleEncoder``) with its ``latent_avg``: images ``[N, 3, R, R]`` in [-1, 1] -> W+ codes
    ``[N, num_layers, w_dim]`` = ``encoder(x) + latent_avg`` (``start_from_latent_avg``, the official default).

    Args:
        resolution: the generator's output size (the images handed to :meth:`forward`); the official
            ``output_size``. ``num_layers`` defaults to ``2 * log2(resolution) - 2``.
        input_size: the size the encoder reads (256 for every official checkpoint).
        stages, widths, stem: the IR-SE body; smaller ones for small domains.
        style_channels: the width of the map2style convs (None: ``w_dim``, as every official checkpoint).
    """

    architecture: ClassVar[str] = "psp-encoder"
    official_class: ClassVar[str] = "GradualStyleEncoder"

    def __init__(self, resolution: int, num_layers: int | None = None, w_dim: int = 512, input_nc: int = 3,
                 input_size: int = 256, stages: Sequence[int] = IRSE_STAGES[50],
                 widths: Sequence[int] = DEFAULT_WIDTHS, stem: int = 64, start_from_latent_avg: bool = True,
                 style_channels: int | None = None) -> None:
        super().__init__()
        num_layers = n_styles_for(resolution) if num_layers is None else int(num_layers)
        self._setup(dict(resolution=resolution, num_layers=num_layers, w_dim=w_dim, input_nc=input_nc,
                         input_size=input_size, stages=list(stages), widths=list(widths), stem=stem,
                         start_from_latent_avg=start_from_latent_avg, style_channels=style_channels),
                    resolution, num_layers, w_dim, input_size, input_nc)
        self.start_from_latent_avg = bool(start_from_latent_avg)
        self.encoder = GradualStyleEncoder(num_layers, input_nc, w_dim, input_size, stages, widths, stem,
                                           style_channels=style_channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        codes = self.encoder(self.prepare(images))
        return codes + self.latent_avg if self.start_from_latent_avg else codes


__all__ = ["GradualStyleBlock", "GradualStyleEncoder", "PSPEncoder", "StyleEncoderBase", "n_styles_for", "resize_to",
           "upsample_add"]
