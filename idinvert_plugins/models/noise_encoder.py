"""The noise-space encoder of In-Domain GAN Inversion (Zhu et al., Sec. VI-C): the domain-guided encoder that
also predicts the noise maps of the first k synthesis blocks.

The IDInvert paper's Sec. VI-C asks what happens when the inversion space grows beyond W+: its encoder also
predicts the per-layer noise inputs of the first k synthesis blocks (B-1 ... B-k, in synthesis order: the 4 px
block, then 8 px, ...). Reconstruction improves as k grows, while interpolations between inverted images look
less real (its Table VI: MSE and SSIM against the FID and SWD of interpolations; Fig. 14a: the training loss per
k).

:class:`NoiseEncoder` is :class:`~idinvert_plugins.models.idinvert_encoder.IDInvertEncoder` (same body, same W+
head, same state-dict keys, so a trained domain-guided encoder warm-starts it) plus one *noise head* per
predicted block, reading the encoder's own feature map at that block's resolution (the output of the residual
block that pooled the image down to it)::

    noise maps of block r = base_r + conv3x3(lrelu(conv3x3(features_r)))     [N, n_r, r, r]

``n_r`` is the number of noise layers of that block (1 for the 4 px block, 2 above: ``conv0`` and ``conv1`` of a
StyleGAN2 block; the v1 generator's two AdaIN layers). ``base_r`` is the generator's stored noise of those
layers (a buffer, set by :meth:`NoiseEncoder.for_generator`) and the last convolution starts at zero, so a fresh
head renders exactly as the plain encoder with the generator's constant noise: a fine-tune from a domain-guided
encoder starts at that encoder's reconstruction and the heads learn residuals (the head design is ours: the
project's notes on the paper describe none).

``forward`` returns the W+ code alone, so the encoder works wherever an IDInvert encoder does (the domain
regulariser of ``idinvert`` reads W+ only); :meth:`NoiseEncoder.forward_with_noise` returns the code and the
maps ``{layer name: [N, 1, r, r]}`` (names as ``G.noise_shapes()``), which the ``encoder`` embedder puts into
the latent's ``noise`` part, so every render of the latent uses them. ``noise_blocks=0`` has no heads: it is the
plain encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .idinvert_encoder import IDInvertEncoder


def noise_blocks_of(generator: nn.Module) -> list[tuple[int, list[str]]]:
    """The generator's synthesis blocks that take noise, in synthesis order: ``[(resolution, [layer names])]``
    (its noise layers grouped by resolution, e.g. ``[(4, ["b4.conv1"]), (8, ["b8.conv0", "b8.conv1"]), ...]``)."""
    if not getattr(generator, "accepts_noise", False):
        raise ValueError(f"the {getattr(generator, 'architecture', type(generator).__name__)!r} generator takes no "
                         "explicit noise maps (accepts_noise is False): a noise-space encoder cannot be built for it")
    blocks: dict[int, list[str]] = {}
    for name, shape in generator.noise_shapes().items():
        blocks.setdefault(int(shape[-1]), []).append(name)
    return sorted(blocks.items())


def noise_layers_for(generator: nn.Module, noise_blocks: int) -> list[list[Any]]:
    """``[[layer name, resolution], ...]`` of the noise layers of the generator's first ``noise_blocks``
    synthesis blocks (B-1 ... B-k); raises ``ValueError`` naming the limit when the generator has fewer."""
    blocks = noise_blocks_of(generator)
    if isinstance(noise_blocks, bool) or not isinstance(noise_blocks, int) or noise_blocks < 0:
        raise ValueError(f"noise_blocks must be an integer >= 0, got {noise_blocks!r}")
    if noise_blocks > len(blocks):
        sizes = ", ".join(f"{r} px" for r, _ in blocks)
        raise ValueError(f"noise_blocks={noise_blocks} is more than the {len(blocks)} synthesis blocks of this "
                         f"generator ({sizes}): use 0 .. {len(blocks)}")
    return [[name, res] for res, names in blocks[:noise_blocks] for name in names]


class NoiseHead(nn.Module):
    """Feature map ``[N, C, r, r]`` -> the ``n_maps`` noise maps of one synthesis block, ``[N, n_maps, r, r]``:
    ``base + conv3x3(lrelu(conv3x3(features)))``; the last conv starts at zero."""

    def __init__(self, in_channels: int, n_maps: int, resolution: int, hidden: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.conv = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.out = nn.Conv2d(hidden, n_maps, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.register_buffer("base", torch.zeros(n_maps, resolution, resolution))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.base + self.out(F.leaky_relu(self.conv(features), 0.2))


class NoiseEncoder(IDInvertEncoder):
    """Domain-guided encoder that also predicts noise maps: image -> W+ ``[N, num_layers, w_dim]`` (``forward``)
    and, with :meth:`forward_with_noise`, the maps of ``noise_layers`` too.

    ``self.config`` holds the constructor arguments, so ``NoiseEncoder(**config)`` rebuilds it; build one for a
    generator with :meth:`for_generator`.
    """

    architecture: ClassVar[str] = "idinvert-noise-encoder"

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
        noise_layers: Sequence[Sequence[Any]] = (),
        noise_hidden: int = 32,
    ) -> None:
        """
        Args:
            resolution ... use_wscale: as :class:`IDInvertEncoder`.
            noise_layers: ``[[layer name, resolution], ...]`` of the generator noise inputs to predict, in
                synthesis order (:func:`noise_layers_for`); empty: the plain encoder.
            noise_hidden: width of each noise head's hidden layer.
        """
        super().__init__(resolution, num_layers, w_dim, img_channels, channel_base, channel_max, use_bn, use_wscale)
        layers = [[str(name), int(res)] for name, res in noise_layers]
        if noise_hidden < 1:
            raise ValueError(f"noise_hidden must be >= 1, got {noise_hidden}")
        by_res: dict[int, list[str]] = {}
        for name, res in layers:
            if res < 4 or res > resolution or res & (res - 1):
                raise ValueError(f"noise layer {name!r} has resolution {res}: the encoder has feature maps of "
                                 f"4 .. {resolution} px (powers of two)")
            by_res.setdefault(res, []).append(name)
        self.config.update(noise_layers=layers, noise_hidden=noise_hidden)
        self.noise_layers = layers
        # the width of the encoder's feature map at each resolution: block 0 at R, block j at R / 2**j
        widths = {resolution: channel_base}
        channels = channel_base
        for j in range(1, len(self.blocks)):
            channels = min(channels * 2, channel_max)
            widths[resolution >> j] = channels
        self.head_layers = [names for _, names in sorted(by_res.items())]
        self.noise_heads = nn.ModuleList(
            NoiseHead(widths[res], len(names), res, noise_hidden) for res, names in sorted(by_res.items()))

    @classmethod
    def for_generator(cls, generator: nn.Module, noise_blocks: int, **kwargs: Any) -> NoiseEncoder:
        """An encoder shaped for ``generator`` (resolution, W+ shape, channels) predicting the noise of its first
        ``noise_blocks`` synthesis blocks; the heads' base maps are the generator's stored noise. ``kwargs``: the
        other constructor arguments (``channel_base``, ``noise_hidden``, ...)."""
        layers = noise_layers_for(generator, noise_blocks)
        encoder = cls(resolution=generator.resolution, num_layers=generator.num_layers, w_dim=generator.w_dim,
                      img_channels=generator.img_channels, noise_layers=layers, **kwargs)
        encoder.set_base_noise(generator.stored_noise())
        return encoder

    @property
    def noise_blocks(self) -> int:
        """How many synthesis blocks (B-1 ... B-k) it predicts noise for."""
        return len(self.noise_heads)

    @torch.no_grad()
    def set_base_noise(self, stored: dict[str, torch.Tensor]) -> None:
        """Set every head's base maps to ``stored`` (``{layer: [1, 1, r, r]}``, e.g. ``G.stored_noise()``)."""
        for head, names in zip(self.noise_heads, self.head_layers, strict=True):
            missing = [n for n in names if n not in stored]
            if missing:
                raise ValueError(f"no stored noise for layers {missing}: the generator does not fit this encoder")
            head.base.copy_(torch.stack([stored[n].reshape(head.resolution, head.resolution) for n in names]))

    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.img_channels, self.resolution, self.resolution)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"encoder input must be [N, {', '.join(map(str, expected))}], got {list(x.shape)}"
            )

    def forward_with_noise(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """W+ ``[N, num_layers, w_dim]`` and the predicted noise maps ``{layer: [N, 1, r, r]}`` (float32) of
        images ``[N, C, R, R]`` in [-1, 1]."""
        self._check_input(x)
        wanted = {head.resolution for head in self.noise_heads}
        features: dict[int, torch.Tensor] = {}
        for block in self.blocks:
            x = block(x)
            if x.shape[-1] in wanted:
                features[x.shape[-1]] = x
        noise: dict[str, torch.Tensor] = {}
        for head, names in zip(self.noise_heads, self.head_layers, strict=True):
            maps = head(features[head.resolution]).float()
            noise.update({name: maps[:, i : i + 1] for i, name in enumerate(names)})
        with torch.autocast(device_type=x.device.type, enabled=False):  # see IDInvertEncoder.forward
            wp = self.head(x.float()).view(-1, self.num_layers, self.w_dim)
        return wp, noise


def encode_with_noise(encoder: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(W+, noise maps)`` of any encoder: a :class:`NoiseEncoder`'s prediction, or ``(encoder(images), {})``."""
    if isinstance(encoder, NoiseEncoder):
        return encoder.forward_with_noise(images)
    return encoder(images), {}


__all__ = ["NoiseEncoder", "NoiseHead", "encode_with_noise", "noise_blocks_of", "noise_layers_for"]
