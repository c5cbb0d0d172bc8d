"""StyleGAN2 generator (config F, "skip" architecture), pure PyTorch.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020). The whole network is in
this file; the primitives (equalised-lr layers, FIR resampling, modulated convolution) are in
:mod:`idinvert_plugins.models.layers`.

* Mapping: z -> normalise its second moment -> ``mapping_layers`` equalised-lr dense layers (lr x 0.01,
  leaky ReLU after every layer) -> w.
* Synthesis, one block per resolution 4, 8, ..., R:
  ``b4``: learned constant -> ``conv1`` -> ``torgb``; ``b{r}``: ``conv0`` (x2 up) -> ``conv1`` -> ``torgb``.
  Each conv is a modulated + demodulated 3x3 conv whose style is an affine map ``A`` of its w, followed by
  noise x a learned strength ``B``, bias, leaky ReLU x sqrt(2) (and an optional clamp).
  ``torgb`` is a modulated 1x1 conv without demodulation; the running RGB image is FIR-up-sampled and
  summed across resolutions (skip generator). ``torgb`` of block r uses the same w index as the first
  conv of block 2r, so a W+ code has ``2 * log2(R) - 2`` entries.

State-dict layout (shared by everything converted from rosinality or NVlabs checkpoints)::

    w_avg                                     [w_dim]
    mapping_network.fc{i}.weight / .bias
    synthesis_network.const                       [C4, 4, 4]
    synthesis_network.b{r}.conv{0,1}.weight       [out, in, 3, 3]
    synthesis_network.b{r}.conv{0,1}.bias         [out]
    synthesis_network.b{r}.conv{0,1}.affine.weight / .bias      [in, w_dim] / [in]
    synthesis_network.b{r}.conv{0,1}.noise_strength             []
    synthesis_network.b{r}.conv{0,1}.noise_const                [r, r]
    synthesis_network.b{r}.torgb.weight           [img_channels, in, 1, 1]
    synthesis_network.b{r}.torgb.bias / .affine.weight / .affine.bias
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .base import NOISE_MODES, Generator, NoiseMode
from .layers import EqualLinear, bias_act, modulated_conv2d, normalize_2nd_moment, setup_filter, upsample2d

RESAMPLE_FILTER = (1, 3, 3, 1)


def channel_table(resolution: int, channel_base: int = 32768, channel_max: int = 512) -> dict[int, int]:
    """The NVlabs channel rule ``min(channel_base // res, channel_max)`` for every resolution 4..R."""
    return {4 * 2**i: min(channel_base // (4 * 2**i), channel_max) for i in range(int(math.log2(resolution)) - 1)}


class MappingNetwork(nn.Module):
    """z -> w: second-moment normalisation, then ``num_layers`` lrelu dense layers with lr multiplier."""

    def __init__(
        self, z_dim: int, w_dim: int, num_layers: int = 8, hidden_dim: int | None = None, lr_mul: float = 0.01
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        hidden_dim = hidden_dim or w_dim
        features = [z_dim] + [hidden_dim] * (num_layers - 1) + [w_dim]
        for i in range(num_layers):
            layer = EqualLinear(features[i], features[i + 1], lr_mul=lr_mul, activation="lrelu")
            setattr(self, f"fc{i}", layer)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # Always float32 (as StyleGAN2-ADA): w feeds truncation and the w_avg statistics, and costs little.
        with torch.autocast(device_type=z.device.type, enabled=False):
            x = normalize_2nd_moment(z.float())
            for i in range(self.num_layers):
                x = getattr(self, f"fc{i}")(x)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally x2 up-sampling) + noise + bias + lrelu; the style comes from ``affine``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        up: int = 1,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.resolution, self.up = in_channels, out_channels, resolution, up
        self.conv_clamp = conv_clamp
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_FILTER), persistent=False)

    def noise(self, x: torch.Tensor, noise_mode: NoiseMode, noise: torch.Tensor | None) -> torch.Tensor | None:
        """The noise image (already scaled by the learned strength) added to this layer's output."""
        if noise is not None:
            return noise * self.noise_strength
        if noise_mode == "const":
            return self.noise_const * self.noise_strength
        if noise_mode == "random":
            n = x.shape[0]
            return torch.randn(n, 1, self.resolution, self.resolution, device=x.device) * self.noise_strength
        return None

    def forward(
        self,
        x: torch.Tensor,
        style: torch.Tensor,
        noise_mode: NoiseMode = "const",
        noise: torch.Tensor | None = None,
        fused_modconv: bool = True,
    ) -> torch.Tensor:
        x = modulated_conv2d(
            x,
            self.weight,
            style,
            noise=self.noise(x, noise_mode, noise),
            up=self.up,
            padding=1,
            resample_filter=self.resample_filter,
            demodulate=True,
            fused=fused_modconv,
        )
        return bias_act(x, self.bias, act="lrelu", clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, resolution={self.resolution}, up={self.up}"


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to image channels, without demodulation."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)  # equalised lr; no demodulation to undo it

    def forward(self, x: torch.Tensor, style: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        x = modulated_conv2d(x, self.weight, style * self.weight_gain, demodulate=False, fused=fused_modconv)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: (``conv0``, x2 up) -> ``conv1`` -> ``torgb``, plus the up-sampled skip image."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        if resolution > 4:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_FILTER), persistent=False)

    def layer_names(self) -> list[str]:
        return (["conv0"] if self.resolution > 4 else []) + ["conv1", "torgb"]

    def forward(
        self,
        x: torch.Tensor,
        img: torch.Tensor | None,
        styles: Mapping[str, torch.Tensor],
        noise_mode: NoiseMode = "const",
        noise: Mapping[str, torch.Tensor] | None = None,
        fused_modconv: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and running image of the previous block -> this block's (``styles``/``noise`` keyed by
        ``conv0``, ``conv1``, ``torgb``)."""
        noise = noise or {}
        if self.resolution > 4:
            x = self.conv0(x, styles["conv0"], noise_mode, noise.get("conv0"), fused_modconv)
        x = self.conv1(x, styles["conv1"], noise_mode, noise.get("conv1"), fused_modconv)
        y = self.torgb(x, styles["torgb"], fused_modconv)
        img = y if img is None else upsample2d(img, self.resample_filter).add(y)
        return x, img


class SynthesisNetwork(nn.Module):
    """Per-layer styles -> image. Holds the constant input and one :class:`SynthesisBlock` per resolution."""

    def __init__(
        self,
        resolution: int,
        w_dim: int,
        img_channels: int,
        channels: Mapping[int, int],
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.resolutions = [4 * 2**i for i in range(int(math.log2(resolution)) - 1)]
        self.const = nn.Parameter(torch.randn(channels[4], 4, 4))
        for res in self.resolutions:
            in_channels = channels[res // 2] if res > 4 else channels[4]
            block = SynthesisBlock(in_channels, channels[res], w_dim, res, img_channels, conv_clamp=conv_clamp)
            setattr(self, f"b{res}", block)

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.resolutions]

    def layers(self) -> list[tuple[str, nn.Module, int]]:
        """``(name, layer, w index)`` of every modulated layer, in synthesis order."""
        out, w_idx = [], 0
        for block in self.blocks():
            for name in block.layer_names():
                out.append((f"b{block.resolution}.{name}", getattr(block, name), w_idx))
                if name != "torgb":
                    w_idx += 1
        return out

    def noise_layers(self) -> list[tuple[str, SynthesisLayer]]:
        return [(name, layer) for name, layer, _ in self.layers() if isinstance(layer, SynthesisLayer)]

    def forward(
        self,
        styles: Mapping[str, torch.Tensor],
        noise_mode: NoiseMode = "const",
        noise: Mapping[str, torch.Tensor] | None = None,
        fused_modconv: bool = True,
    ) -> torch.Tensor:
        n = next(iter(styles.values())).shape[0]
        x = self.const.unsqueeze(0).expand(n, -1, -1, -1)
        img = None
        for block in self.blocks():
            prefix = f"b{block.resolution}."
            block_styles = {name: styles[prefix + name] for name in block.layer_names()}
            block_noise = {k[len(prefix) :]: v for k, v in (noise or {}).items() if k.startswith(prefix)}
            x, img = block(x, img, block_styles, noise_mode, block_noise, fused_modconv)
        return img


class StyleGAN2Generator(Generator):
    """StyleGAN2 config-F generator with the skip architecture.

    Args:
        resolution: output size (a power of two >= 4).
        z_dim, w_dim: latent sizes.
        img_channels: output channels (3 for RGB).
        mapping_layers: depth of the mapping network (8 in the paper).
        mapping_hidden: width of its hidden layers (None = ``w_dim``).
        mapping_lr_mul: learning-rate multiplier of the mapping network (0.01).
        channels: explicit feature maps per resolution, ``{res: channels}`` (int or str keys; stored with
            str keys in :attr:`config`). When None the NVlabs rule ``min(channel_base // res, channel_max)``
            fills the table.
        channel_base, channel_max: the NVlabs rule (only used when ``channels`` is None).
        conv_clamp: clamp every conv output to +-conv_clamp (StyleGAN2-ADA; None = off).
    """

    architecture = "stylegan2"
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
        channels: Mapping[int | str, int] | Sequence[Sequence[int]] | None = None,
        channel_base: int = 32768,
        channel_max: int = 512,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
        table = resolve_channels(resolution, channels, channel_base, channel_max)
        self.z_dim, self.w_dim, self.img_channels, self.resolution = z_dim, w_dim, img_channels, resolution
        self.num_layers = 2 * int(math.log2(resolution)) - 2
        self.config: dict[str, Any] = dict(
            resolution=resolution,
            z_dim=z_dim,
            w_dim=w_dim,
            img_channels=img_channels,
            mapping_layers=mapping_layers,
            mapping_hidden=mapping_hidden,
            mapping_lr_mul=mapping_lr_mul,
            channels={str(r): c for r, c in table.items()},
            conv_clamp=conv_clamp,
        )
        self.channels = table
        self.mapping_network = MappingNetwork(z_dim, w_dim, mapping_layers, mapping_hidden, mapping_lr_mul)
        self.synthesis_network = SynthesisNetwork(resolution, w_dim, img_channels, table, conv_clamp)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    # -- Generator interface ----------------------------------------------------------------------------
    def mapping(
        self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None
    ) -> torch.Tensor:
        """z ``[N, z_dim]`` -> w ``[N, w_dim]`` (``[N, num_layers, w_dim]`` when ``truncation_cutoff`` is set)."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        return self.truncate(self.mapping_network(z), truncation_psi, truncation_cutoff)

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """The affine output (style vector, S space) of every modulated layer: ``{"b4.conv1": [N, C], ...}``.
        ``torgb`` styles are the raw affine outputs (the 1/sqrt(fan_in) gain is applied inside the layer)."""
        wp = self.to_wplus(ws)
        return {name: layer.affine(wp[:, idx]) for name, layer, idx in self.synthesis_network.layers()}

    def synthesis(
        self,
        ws: torch.Tensor,
        noise_mode: NoiseMode = "const",
        *,
        noise: Mapping[str, torch.Tensor] | None = None,
        fused_modconv: bool | None = None,
    ) -> torch.Tensor:
        """W ``[N, w_dim]`` or W+ ``[N, num_layers, w_dim]`` -> images ``[N, img_channels, R, R]``.

        ``noise`` optionally gives explicit noise images per conv layer (``{"b8.conv0": [N or 1, 1, 8, 8]}``,
        names from :meth:`noise_shapes`), scaled by each layer's strength; other layers follow ``noise_mode``.
        ``fused_modconv``: grouped per-sample conv (True) or activation scaling (False), equal up to float
        rounding. None picks the faster path: on CPU always False (oneDNN grouped convs are 1.3-1.7x slower
        for every batch size measured), on CUDA True in eval mode and False in training, as StyleGAN2-ADA.
        """
        return self.synthesis_from_styles(self.styles(ws), noise_mode, noise=noise, fused_modconv=fused_modconv)

    def synthesis_from_styles(
        self,
        styles: Mapping[str, torch.Tensor],
        noise_mode: NoiseMode = "const",
        *,
        noise: Mapping[str, torch.Tensor] | None = None,
        fused_modconv: bool | None = None,
    ) -> torch.Tensor:
        """Render from per-layer styles (as returned by :meth:`styles`, possibly edited)."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if noise is not None:
            unknown = sorted(set(noise) - set(self.noise_shapes()))
            if unknown:
                raise ValueError(f"unknown noise layers {unknown}; valid names: {list(self.noise_shapes())}")
        if fused_modconv is None:
            fused_modconv = self.w_avg.is_cuda and not self.training
        return self.synthesis_network(styles, noise_mode, noise, fused_modconv)

    def noise_shapes(self) -> dict[str, tuple[int, int, int, int]]:
        """Names and shapes ``[1, 1, r, r]`` of the per-layer noise inputs, in synthesis order."""
        layers = self.synthesis_network.noise_layers()
        return {name: (1, 1, layer.resolution, layer.resolution) for name, layer in layers}

    def stored_noise(self) -> dict[str, torch.Tensor]:
        """The ``noise_const`` map of every noise layer as ``[1, 1, r, r]`` (what ``noise_mode="const"`` uses)."""
        return {name: layer.noise_const[None, None] for name, layer in self.synthesis_network.noise_layers()}

    def style_module_paths(self) -> dict[str, str]:
        """``{"b4.conv1": "synthesis_network.b4.conv1.affine", ...}``: the affine map of every modulated layer."""
        return {name: f"synthesis_network.{name}.affine" for name, _, _ in self.synthesis_network.layers()}


def resolve_channels(
    resolution: int,
    channels: Mapping[int | str, int] | Sequence[Sequence[int]] | None,
    channel_base: int = 32768,
    channel_max: int = 512,
) -> dict[int, int]:
    """``{res: channels}`` for every resolution 4..R: an explicit table (keys int or str, or ``[[res, ch], ...]``
    pairs; it must name exactly those resolutions) or, when ``channels`` is None, the NVlabs rule."""
    needed = [4 * 2**i for i in range(int(math.log2(resolution)) - 1)]
    if channels is None:
        return channel_table(resolution, channel_base, channel_max)
    items = channels.items() if isinstance(channels, Mapping) else channels
    table = {int(r): int(c) for r, c in items}
    missing = [r for r in needed if r not in table]
    extra = sorted(set(table) - set(needed))
    if missing or extra:
        raise ValueError(
            f"channels must give exactly the resolutions {needed} for resolution {resolution}; "
            f"missing {missing}, unexpected {extra}"
        )
    return {r: table[r] for r in needed}


