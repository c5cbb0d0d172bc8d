"""Discriminators for training the generators of this library.

Two networks, each readable top to bottom (primitives from :mod:`idinvert_plugins.models.layers`):

* :class:`StyleGAN2Discriminator`: the residual discriminator of StyleGAN2 (config F): fromRGB at full
  resolution, residual blocks that down-sample with the [1, 3, 3, 1] FIR filter, minibatch standard
  deviation, a 3x3 conv and two dense layers.
* :class:`StyleGANDiscriminator`: the discriminator StyleGAN (v1) inherited from Progressive GAN, built at
  full size (no progressive growing): fromRGB, then per resolution conv 3x3 -> blur [1, 2, 1] -> conv 3x3 +
  2x average down-sampling, minibatch standard deviation, a 3x3 conv and two dense layers.

Both use equalised learning rate (weights stored N(0, 1), scaled at run time by ``1 / sqrt(fan_in)``) and
leaky ReLU 0.2 times sqrt(2) after the bias (v1 folds the sqrt(2) into the weights instead, which is the
same function family: ``lrelu(sqrt(2) x + b) = sqrt(2) lrelu(x + b / sqrt(2))``). They return one logit
per image, are pure PyTorch (double backward works, as R1 needs) and run under bf16 autocast and with
channels_last tensors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .layers import EqualConv2d, EqualLinear, MinibatchStd, bias_act, setup_filter, upfirdn2d
from .stylegan2 import resolve_channels


def _config_channels(channels: Mapping[int | str, int] | None) -> dict[str, int] | None:
    return None if channels is None else {str(k): int(v) for k, v in channels.items()}


class DiscriminatorHead(nn.Module):
    """The 4x4 end of both discriminators: minibatch stddev, conv 3x3, dense, dense -> one logit."""

    def __init__(self, channels: int, mbstd_group_size: int, mbstd_num_channels: int) -> None:
        super().__init__()
        self.mbstd = MinibatchStd(mbstd_group_size, mbstd_num_channels)
        self.conv = EqualConv2d(channels + mbstd_num_channels, channels, 3, activation="lrelu")
        self.fc = EqualLinear(channels * 16, channels, activation="lrelu")
        self.out = EqualLinear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1))).squeeze(1)


# -- StyleGAN2 ---------------------------------------------------------------------------------------
class ResBlock(nn.Module):
    """Residual block, resolution r -> r/2: conv 3x3, conv 3x3 with FIR down-sampling, plus a 1x1
    down-sampling skip; the sum is divided by sqrt(2) to keep the variance."""

    def __init__(self, in_channels: int, out_channels: int, resample_filter: tuple[int, ...]) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = EqualConv2d(
            in_channels, out_channels, 3, activation="lrelu", down=2, resample_filter=resample_filter
        )
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False, down=2, resample_filter=resample_filter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv1(self.conv0(x)) + self.skip(x)) / math.sqrt(2.0)


class StyleGAN2Discriminator(nn.Module):
    """Residual discriminator of StyleGAN2 (config F).

    ``img [N, img_channels, resolution, resolution]`` in [-1, 1] -> logits ``[N]``. Channels per
    resolution come from ``channels`` (``{"4": 128, ..., "64": 16}``; str or int keys, stored as str)
    or from ``min(channel_base // res, channel_max)``. The batch must be divisible by
    ``min(mbstd_group_size, batch)``.
    """

    architecture: ClassVar[str] = "stylegan2-discriminator"

    def __init__(
        self,
        resolution: int,
        img_channels: int = 3,
        channels: Mapping[int | str, int] | None = None,
        channel_base: int = 32768,
        channel_max: int = 512,
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        resample_filter: list[int] | tuple[int, ...] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
        resample_filter = tuple(int(t) for t in resample_filter)
        ch = resolve_channels(resolution, channels, channel_base, channel_max)
        self.config: dict[str, Any] = dict(
            resolution=resolution, img_channels=img_channels, channels=_config_channels(channels),
            channel_base=channel_base, channel_max=channel_max, mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels, resample_filter=list(resample_filter),
        )  # fmt: skip
        self.resolution, self.img_channels = resolution, img_channels

        self.from_rgb = EqualConv2d(img_channels, ch[resolution], 1, activation="lrelu")
        self.blocks = nn.Sequential(
            *(ResBlock(ch[r], ch[r // 2], resample_filter) for r in sorted(ch, reverse=True) if r > 4)
        )
        self.head = DiscriminatorHead(ch[4], mbstd_group_size, mbstd_num_channels)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.from_rgb(img)))


# -- StyleGAN (v1) -----------------------------------------------------------------------------------
class Downscale2d(nn.Module):
    """v1's down-sampling conv: conv 3x3 then 2x2 average pooling, then bias and activation.

    ``fused`` (the official choice at 128 px and above) does it as one stride-2 conv whose 4x4 kernel is
    the 3x3 kernel averaged over its four one-pixel shifts: the same linear map, less work.
    """

    def __init__(self, in_channels: int, out_channels: int, fused: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels * 9)
        self.fused = fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.fused:
            w = F.pad(w, (1, 1, 1, 1))
            w = (w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]) * 0.25
            x = F.conv2d(x, w, stride=2, padding=1)
        else:
            x = F.avg_pool2d(F.conv2d(x, w, padding=1), 2)
        return bias_act(x, self.bias, act="lrelu")


class StyleGANBlock(nn.Module):
    """One v1 discriminator block, resolution r -> r/2: conv 3x3, blur [1, 2, 1], down-sampling conv."""

    def __init__(self, in_channels: int, out_channels: int, fused: bool) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, activation="lrelu")
        self.register_buffer("blur_filter", setup_filter((1, 2, 1)), persistent=False)
        self.conv1_down = Downscale2d(in_channels, out_channels, fused)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1_down(upfirdn2d(self.conv0(x), self.blur_filter, padding=1))


class StyleGANDiscriminator(nn.Module):
    """The discriminator of StyleGAN (v1), i.e. Progressive GAN's, at a fixed resolution.

    There is no progressive growing: the network is built at full size and trained as one, so only the
    full-resolution fromRGB exists. ``img [N, img_channels, resolution, resolution]`` -> logits ``[N]``.
    Channels per resolution are ``min(channel_base // res, channel_max)`` like the v1 generator's, or an
    explicit ``channels`` table. ``fused_scale``: ``"auto"`` fuses conv and down-sampling at resolutions
    >= 128 (as the official code), True/False force it; both compute the same function.
    """

    architecture: ClassVar[str] = "stylegan-discriminator"

    def __init__(
        self,
        resolution: int,
        img_channels: int = 3,
        channels: Mapping[int | str, int] | None = None,
        channel_base: int = 16384,
        channel_max: int = 512,
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        fused_scale: bool | str = "auto",
    ) -> None:
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
        if fused_scale not in (True, False, "auto"):
            raise ValueError(f"fused_scale must be True, False or 'auto', got {fused_scale!r}")
        ch = resolve_channels(resolution, channels, channel_base, channel_max)
        self.config: dict[str, Any] = dict(
            resolution=resolution, img_channels=img_channels, channels=_config_channels(channels),
            channel_base=channel_base, channel_max=channel_max, mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels, fused_scale=fused_scale,
        )  # fmt: skip
        self.resolution, self.img_channels = resolution, img_channels

        def fused(r: int) -> bool:
            return r >= 128 if fused_scale == "auto" else bool(fused_scale)

        self.from_rgb = EqualConv2d(img_channels, ch[resolution], 1, activation="lrelu")
        self.blocks = nn.Sequential(
            *(StyleGANBlock(ch[r], ch[r // 2], fused(r)) for r in sorted(ch, reverse=True) if r > 4)
        )
        self.head = DiscriminatorHead(ch[4], mbstd_group_size, mbstd_num_channels)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.from_rgb(img)))


__all__ = ["StyleGAN2Discriminator", "StyleGANDiscriminator"]
