"""StyleGAN (v1) generator, laid out as in the official In-Domain GAN Inversion release.

This is the network of genforce/idinvert_pytorch (``StyleGANGeneratorNet``), which the released IDInvert
models (``styleganinv_ffhq256`` and friends) use:

* mapping: pixel-norm of z, then ``mapping_layers`` equalised-lr dense layers (lr multiplier 0.01),
  each followed by leaky-ReLU 0.2, the last one included. With ``repeat_w=False`` (the released models)
  the last layer emits ``num_layers * w_dim`` values, i.e. a separate w for every synthesis layer, so the
  model has no single-W space (``has_w_space`` is False) and ``mapping`` returns W+;
* synthesis: a learned 4x4 constant, then two AdaIN layers per resolution. Each layer is
  ``[conv] -> + noise * noise_weight -> + bias -> lrelu 0.2 -> instance norm -> x * (s0 + 1) + s1``
  with ``s = A(w)``. The first layer of each resolution above 4x4 up-samples (nearest x2 + 3x3 conv,
  or a fused stride-2 transposed conv) and blurs with [1, 2, 1] x [1, 2, 1] / 16;
* a 1x1 toRGB at the final resolution, optionally followed by tanh.

The run-time weight scales are applied to the layer outputs, not to the weights, in the same order as the
official code: the outputs then match it bit for bit in float32.

Only the final toRGB exists here: the official model also has one per lower resolution, but with the
progressive-growing level of detail at 0 (all released models) their outputs are discarded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import NOISE_MODES, Generator, NoiseMode

#: The first resolution at which ``fused_scale="auto"`` switches to the fused transposed convolution.
AUTO_FUSED_MIN_RES = 128


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each vector to unit root-mean-square (the mapping network's input normalisation)."""
    return x / torch.sqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def adain(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """AdaIN: each feature map of ``x`` normalised to zero mean and unit variance (eps inside the square root,
    as the original), then ``* scale + shift`` (per sample and channel ``[N, C, 1, 1]``).

    Three passes over ``x``: normalisation and modulation fold into ``(x - mean) * a + shift`` with
    ``a = scale / std``. At 256 px a batch of feature maps is far larger than the CPU's cache, and every
    elementwise pass (and its backward) is a trip through memory, so this beats normalising and then
    modulating. (Folding the mean into the shift too would save a pass but lose float32 precision where the
    mean is large next to the spread.)
    """
    var, mean = torch.var_mean(x, dim=(2, 3), correction=0, keepdim=True)
    return torch.addcmul(shift, x - mean, scale * torch.rsqrt(var + eps))


class EqualLinear(nn.Module):
    """Dense layer with equalised learning rate: weights are scaled by ``gain * lr_mul / sqrt(in)`` at
    run time, biases by ``lr_mul``. Optionally followed by leaky-ReLU 0.2."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        gain: float = math.sqrt(2.0),
        lr_mul: float = 1.0,
        activate: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = gain * lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight) * self.scale + self.bias * self.lr_mul
        return F.leaky_relu(x, 0.2) if self.activate else x


class MappingNetwork(nn.Module):
    """z -> w: pixel-norm, then ``num_layers`` dense layers with leaky-ReLU after every one of them."""

    def __init__(
        self, z_dim: int, hidden_dim: int, out_dim: int, num_layers: int, lr_mul: float = 0.01
    ) -> None:
        super().__init__()
        dims = [z_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(
            EqualLinear(dims[i], dims[i + 1], lr_mul=lr_mul, activate=True) for i in range(num_layers)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(z)
        for layer in self.layers:
            x = layer(x)
        return x


class Blur(nn.Module):
    """Depthwise [1, 2, 1] x [1, 2, 1] / 16 low-pass filter (same size output)."""

    def __init__(self) -> None:
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        kernel = torch.outer(k, k) / 16
        self.register_buffer("kernel", kernel[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        kernel = self.kernel.to(x.dtype).expand(channels, 1, 3, 3)
        return F.conv2d(x, kernel, padding=1, groups=channels)


class EqualConv2d(nn.Module):
    """Bias-free 3x3 convolution (same padding) with equalised learning rate (gain sqrt(2))."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = math.sqrt(2.0) / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, padding=self.padding)  # scale the weight, not the output


class UpConv2d(nn.Module):
    """x2 up-sampling 3x3 convolution followed by the blur.

    Non-fused: nearest-neighbour x2, then the 3x3 conv. Fused (the original StyleGAN's choice at 128 px
    and above): one stride-2 transposed conv whose 4x4 kernel is the 3x3 kernel summed over its four
    one-pixel shifts. Because a transposed conv convolves where ``conv2d`` correlates, the fused layer
    equals the non-fused one with the kernel flipped spatially (exactly, borders included). ``weight`` is
    ``[out, in, 3, 3]`` either way.
    """

    def __init__(self, in_channels: int, out_channels: int, fused: bool) -> None:
        super().__init__()
        self.fused = fused
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.scale = math.sqrt(2.0) / math.sqrt(in_channels * 9)
        self.blur = Blur()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            weight = F.pad(self.weight * self.scale, (1, 1, 1, 1))
            weight = (
                weight[:, :, 1:, 1:] + weight[:, :, :-1, 1:] + weight[:, :, 1:, :-1] + weight[:, :, :-1, :-1]
            )
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2, padding=1)
        else:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = F.conv2d(x, self.weight * self.scale, padding=1)
        return self.blur(x)


class SynthesisLayer(nn.Module):
    """One AdaIN layer: ``[conv] -> noise -> bias -> lrelu -> instance norm -> style modulation``.

    ``conv`` is None for the first layer (it starts from the learned constant).
    """

    def __init__(self, conv: nn.Module | None, channels: int, resolution: int, w_dim: int) -> None:
        super().__init__()
        self.conv = conv
        self.resolution = resolution
        self.register_buffer("noise", torch.randn(1, 1, resolution, resolution))
        self.noise_weight = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        # A(w) -> (scale, shift) per channel; the scale is applied as (s0 + 1) so zero means identity.
        self.style = EqualLinear(w_dim, 2 * channels, gain=1.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: NoiseMode = "const",
                noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        if noise is not None:  # an explicit map [N or 1, 1, r, r], scaled by the learned per-channel weight
            x = x + (noise.to(x.dtype) * self.noise_weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1))
        elif noise_mode != "none":
            if noise_mode == "random":
                noise = torch.randn(
                    x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype
                )
            else:
                noise = self.noise
            x = x + (noise * self.noise_weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1))
        else:
            x = x + self.bias.view(1, -1, 1, 1)
        x = F.leaky_relu(x, 0.2)
        style = self.style(w).view(-1, 2, x.shape[1], 1, 1)
        return adain(x, style[:, 0] + 1, style[:, 1])


class ToRGB(nn.Module):
    """1x1 convolution to image channels, scaled by 1/sqrt(in), plus bias."""

    def __init__(self, in_channels: int, img_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.scale = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias)


class SynthesisNetwork(nn.Module):
    """W+ -> image: 4x4 constant, two AdaIN layers per resolution, toRGB at the last resolution."""

    def __init__(
        self,
        resolution: int,
        w_dim: int,
        img_channels: int,
        channels: dict[int, int],
        fused: dict[int, bool],
        final_tanh: bool,
    ) -> None:
        super().__init__()
        self.final_tanh = final_tanh
        self.const = nn.Parameter(torch.ones(1, channels[4], 4, 4))
        layers: list[SynthesisLayer] = []
        res = 4
        while res <= resolution:
            c = channels[res]
            if res == 4:
                layers.append(SynthesisLayer(None, c, res, w_dim))
            else:
                up = UpConv2d(channels[res // 2], c, fused=fused[res])
                layers.append(SynthesisLayer(up, c, res, w_dim))
            layers.append(SynthesisLayer(EqualConv2d(c, c), c, res, w_dim))
            res *= 2
        self.layers = nn.ModuleList(layers)
        self.to_rgb = ToRGB(channels[resolution], img_channels)

    def forward(self, wp: torch.Tensor, noise_mode: NoiseMode = "const",
                noise: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        x = self.const.expand(wp.shape[0], -1, -1, -1)
        noise = noise or {}
        for i, layer in enumerate(self.layers):
            x = layer(x, wp[:, i], noise_mode, noise.get(f"layer{i}"))
        x = self.to_rgb(x)
        return torch.tanh(x) if self.final_tanh else x


class StyleGANGenerator(Generator):
    """StyleGAN v1 generator (genforce / official IDInvert layout and semantics).

    ``repeat_w=False`` (as in every released IDInvert model) makes the mapping emit one w per synthesis
    layer: ``mapping`` then returns W+ and ``has_w_space`` is False. ``truncation_psi`` /
    ``truncation_layers`` are only the model's *recommended* sampling truncation (the official
    ``StyleGANGenerator`` samples with psi 0.7 on the first 8 layers); ``mapping`` and ``forward`` truncate
    only when asked, and ``synthesis`` never does.
    """

    architecture = "stylegan"
    accepts_noise = True

    def __init__(
        self,
        resolution: int,
        z_dim: int = 512,
        w_dim: int = 512,
        img_channels: int = 3,
        mapping_layers: int = 8,
        mapping_hidden: int | None = None,
        mapping_lr_mul: float = 0.01,
        channel_base: int = 16384,
        channel_max: int = 512,
        repeat_w: bool = True,
        final_tanh: bool = False,
        fused_scale: bool | str = "auto",
        truncation_psi: float = 0.7,
        truncation_layers: int = 8,
    ) -> None:
        """
        Args:
            resolution: output size, a power of two >= 4.
            mapping_hidden: width of the hidden mapping layers; None means ``w_dim`` (the paper's choice;
                genforce ties it to ``channel_max``, the converter always sets it explicitly).
            channel_base, channel_max: resolution r has ``min(channel_base // r, channel_max)`` channels.
            repeat_w: True: one w for all layers (a W space exists). False: the mapping emits
                ``num_layers * w_dim`` values.
            final_tanh: squash the output with tanh (True in the released IDInvert models).
            fused_scale: ``"auto"`` (fused transposed up-conv at resolutions >= 128), True or False.
            truncation_psi, truncation_layers: recommended sampling truncation, stored for callers.
        """
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
        if fused_scale not in (True, False, "auto"):
            raise ValueError(f"fused_scale must be True, False or 'auto', got {fused_scale!r}")
        if mapping_layers < 1:
            raise ValueError(f"mapping_layers must be >= 1, got {mapping_layers}")
        mapping_hidden = w_dim if mapping_hidden is None else mapping_hidden
        self.config: dict[str, Any] = dict(
            resolution=resolution, z_dim=z_dim, w_dim=w_dim, img_channels=img_channels,
            mapping_layers=mapping_layers, mapping_hidden=mapping_hidden, mapping_lr_mul=mapping_lr_mul,
            channel_base=channel_base, channel_max=channel_max, repeat_w=repeat_w, final_tanh=final_tanh,
            fused_scale=fused_scale, truncation_psi=truncation_psi, truncation_layers=truncation_layers,
        )  # fmt: skip
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.img_channels = img_channels
        self.resolution = resolution
        self.num_layers = 2 * int(math.log2(resolution // 2))
        self.repeat_w = repeat_w
        self.has_w_space = repeat_w  # instance value overrides the base class default
        self.truncation_psi = truncation_psi
        self.truncation_layers = truncation_layers

        resolutions = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
        self.channels = {r: min(channel_base // r, channel_max) for r in resolutions}
        self.fused = {
            r: (r >= AUTO_FUSED_MIN_RES if fused_scale == "auto" else bool(fused_scale)) for r in resolutions
        }

        mapping_out = w_dim if repeat_w else w_dim * self.num_layers
        self.mapping_network = MappingNetwork(
            z_dim, mapping_hidden, mapping_out, mapping_layers, mapping_lr_mul
        )
        self.synthesis_network = SynthesisNetwork(
            resolution, w_dim, img_channels, self.channels, self.fused, final_tanh
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def mapping(
        self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None
    ) -> torch.Tensor:
        """z ``[N, z_dim]`` -> W ``[N, w_dim]`` (repeat_w=True) or W+ ``[N, num_layers, w_dim]``
        (repeat_w=False), optionally truncated towards ``w_avg`` (see :meth:`Generator.truncate`).
        The model's recommended truncation is ``mapping(z, self.truncation_psi, self.truncation_layers)``."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        w = self.mapping_network(z)
        if not self.repeat_w:
            w = w.view(-1, self.num_layers, self.w_dim)
        return self.truncate(w, truncation_psi, truncation_cutoff)

    def synthesis(self, ws: torch.Tensor, noise_mode: NoiseMode = "const", *,
                  noise: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """W or W+ -> images ``[N, img_channels, resolution, resolution]``. No truncation here.

        ``noise`` optionally gives explicit noise maps per layer (``{"layer3": [N or 1, 1, 8, 8]}``, names from
        :meth:`noise_shapes`); other layers follow ``noise_mode``."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if noise is not None:
            unknown = sorted(set(noise) - set(self.noise_shapes()))
            if unknown:
                raise ValueError(f"unknown noise layers {unknown}; valid names: {list(self.noise_shapes())}")
        return self.synthesis_network(self.to_wplus(ws), noise_mode, noise)

    def noise_shapes(self) -> dict[str, tuple[int, int, int, int]]:
        """``{"layer0": (1, 1, 4, 4), ...}``: the noise input of every AdaIN layer, in synthesis order."""
        return {f"layer{i}": (1, 1, layer.resolution, layer.resolution)
                for i, layer in enumerate(self.synthesis_network.layers)}

    def stored_noise(self) -> dict[str, torch.Tensor]:
        """The stored ``noise`` buffer of every AdaIN layer, ``[1, 1, r, r]`` (what ``noise_mode="const"`` uses)."""
        return {f"layer{i}": layer.noise for i, layer in enumerate(self.synthesis_network.layers)}

    def style_module_paths(self) -> dict[str, str]:
        """``{"layer0": "synthesis_network.layers.0.style", ...}``: each AdaIN layer's style map ``A``."""
        return {f"layer{i}": f"synthesis_network.layers.{i}.style" for i in range(len(self.synthesis_network.layers))}

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each layer's AdaIN style ``A(w)`` = ``[N, 2 * channels]`` (scale part first, then shift),
        keyed ``layer0`` ... ``layer{num_layers - 1}``."""
        wp = self.to_wplus(ws)
        return {f"layer{i}": layer.style(wp[:, i]) for i, layer in enumerate(self.synthesis_network.layers)}


def postprocess_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Images in [-1, 1] ``[N, C, H, W]`` -> uint8 ``[N, H, W, C]`` exactly as the official IDInvert code
    does it: ``clip((x + 1) * 127.5 + 0.5, 0, 255)`` then truncation to uint8 (not rounding)."""
    if isinstance(images, torch.Tensor):
        images = images.detach().float().cpu().numpy()
    if images.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {list(images.shape)}")
    images = np.clip((images + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    return images.transpose(0, 2, 3, 1)
