"""The domain-guided encoder of In-Domain GAN Inversion (official PyTorch release layout).

Same network as genforce/idinvert_pytorch ``StyleGANEncoderNet``: an image ``[N, 3, R, R]`` in [-1, 1]
goes through log2(R) blocks and comes out as a W+ code ``[N, num_layers, w_dim]`` of the paired
StyleGAN generator.

* block 0: 3x3 conv (no bias) -> BatchNorm -> lrelu 0.2;
* blocks 1 .. n-2: 2x2 average pool, then a residual block. Residual branch: two 3x3 convs (hidden width
  ``min(in, out)``), each conv -> bias -> BatchNorm -> lrelu. Shortcut: 1x1 conv -> BatchNorm -> lrelu when
  the width changes, identity otherwise. Channels start at ``channel_base`` and double up to ``channel_max``;
* head: flatten (``C * 4 * 4``) -> dense (no bias, scaled by 1/sqrt(fan_in)) -> BatchNorm.

BatchNorm uses momentum 0.1 and eps 1e-5 and, as in the reference, its scale (gamma) is frozen
(``requires_grad=False``) while its shift (beta) trains. Note that the official PyTorch encoder is not a
conversion of the TF one (different kernels, layer order and widths).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm as in the reference: momentum 0.1 (decay 0.9), eps 1e-5, gamma stored but frozen."""
    bn = nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)
    bn.weight.requires_grad_(False)
    return bn


class ConvLayer(nn.Module):
    """``conv (+ bias) -> [BatchNorm] -> lrelu 0.2``.

    With ``use_wscale`` the raw weights are scaled by ``sqrt(2) / sqrt(fan_in)`` at run time (equalised
    learning rate); without it (the released models) they are used as they are.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool,
        use_wscale: bool,
        use_bn: bool,
    ) -> None:
        super().__init__()
        fan_in = in_channels * kernel_size**2
        he_std = math.sqrt(2.0 / fan_in)
        self.scale = he_std if use_wscale else 1.0
        self.weight = nn.Parameter(
            torch.randn(out_channels, in_channels, kernel_size, kernel_size) * he_std / self.scale
        )
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.bn = batch_norm(out_channels) if use_bn else None
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.scale if self.scale != 1.0 else self.weight
        x = F.conv2d(x, weight, self.bias, padding=self.padding)
        if self.bn is not None:
            x = self.bn(x)
        return F.leaky_relu(x, 0.2)


class ResBlock(nn.Module):
    """2x2 average pool, then ``conv1 -> conv2`` plus a shortcut (1x1 conv when the width changes)."""

    def __init__(self, in_channels: int, out_channels: int, use_wscale: bool, use_bn: bool) -> None:
        super().__init__()
        hidden = min(in_channels, out_channels)
        self.shortcut = (
            ConvLayer(in_channels, out_channels, 1, bias=False, use_wscale=use_wscale, use_bn=use_bn)
            if in_channels != out_channels
            else None
        )
        self.conv1 = ConvLayer(in_channels, hidden, 3, bias=True, use_wscale=use_wscale, use_bn=use_bn)
        self.conv2 = ConvLayer(hidden, out_channels, 3, bias=True, use_wscale=use_wscale, use_bn=use_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 2)
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.conv2(self.conv1(x)) + skip


class DenseHead(nn.Module):
    """Flatten -> dense to ``num_layers * w_dim`` (no bias, scaled by 1/sqrt(fan_in)) -> [BatchNorm]."""

    def __init__(self, in_features: int, out_features: int, use_bn: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.scale = 1.0 / math.sqrt(in_features)
        self.bn = batch_norm(out_features) if use_bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x.flatten(1), self.weight) * self.scale
        if self.bn is not None:
            x = self.bn(x[:, :, None, None])[:, :, 0, 0]
        return x


class IDInvertEncoder(nn.Module):
    """Domain-guided encoder E: image ``[N, img_channels, R, R]`` in [-1, 1] -> W+ ``[N, num_layers, w_dim]``.

    ``self.config`` holds the constructor arguments, so ``IDInvertEncoder(**config)`` rebuilds it.
    """

    architecture: ClassVar[str] = "idinvert-encoder"

    def __init__(
        self,
        resolution: int,
        num_layers: int | None = None,
        w_dim: int = 512,
        img_channels: int = 3,
        channel_base: int = 64,
        channel_max: int = 1024,
        use_bn: bool = True,
        use_wscale: bool = False,
    ) -> None:
        """
        Args:
            resolution: input size, a power of two >= 8.
            num_layers: length of the W+ code of the paired generator; None means the StyleGAN value
                ``2 * log2(resolution / 2)``.
            channel_base, channel_max: width of the first block, doubled per block up to ``channel_max``.
            use_bn: BatchNorm after every conv and after the dense head (True in the released models).
            use_wscale: equalised-lr scaling of the conv weights (False in the released models).
        """
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
        if num_layers is None:
            num_layers = 2 * int(math.log2(resolution // 2))
        self.config: dict[str, Any] = dict(
            resolution=resolution, num_layers=num_layers, w_dim=w_dim, img_channels=img_channels,
            channel_base=channel_base, channel_max=channel_max, use_bn=use_bn, use_wscale=use_wscale,
        )  # fmt: skip
        self.resolution = resolution
        self.num_layers = num_layers
        self.w_dim = w_dim
        self.img_channels = img_channels

        num_blocks = int(math.log2(resolution))
        blocks: list[nn.Module] = [
            ConvLayer(img_channels, channel_base, 3, bias=False, use_wscale=use_wscale, use_bn=use_bn)
        ]
        channels = channel_base
        for _ in range(1, num_blocks - 1):
            out = min(channels * 2, channel_max)
            blocks.append(ResBlock(channels, out, use_wscale=use_wscale, use_bn=use_bn))
            channels = out
        self.blocks = nn.ModuleList(blocks)
        self.head = DenseHead(channels * 4 * 4, num_layers * w_dim, use_bn=use_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.img_channels, self.resolution, self.resolution)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"encoder input must be [N, {', '.join(map(str, expected))}], got {list(x.shape)}"
            )
        for block in self.blocks:
            x = block(x)
        # The head is one large matrix (16384 x 7168 at 256 px). Under autocast its weight would be cast to
        # bfloat16 on every call, which costs more than the product itself, so it always runs in float32.
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.head(x.float()).view(-1, self.num_layers, self.w_dim)
