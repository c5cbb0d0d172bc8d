"""The built-in embedders (first stage of inversion): ``encoder``, ``mean`` and ``w``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..latent import Latent
from ..models.base import Generator
from ..params import Param
from .base import ADD_W_AVG, CHUNK_SIZE, L_FEAT, L_PIX, NOISE_MODE, lr_param, steps_param
from .optimize import (
    ReconstructionObjective,
    batch_chunks,
    cpu_chunk_size,
    encode_images,
    frozen,
    resolve_feature_weight,
)
from .stages import Embedder, InversionContext


class EncoderEmbedder(Embedder):
    name = "encoder"
    description = ("E(x): the encoder's W+ code in one forward pass (plus G.w_avg for offset encoders); a "
                   "noise-space encoder's predicted noise maps go into the latent's noise part")
    params = (ADD_W_AVG, CHUNK_SIZE)
    requires_encoder = True

    def embed(self, ctx: InversionContext, *, add_w_avg: bool | None, chunk_size: int | None,
              **_: Any) -> Latent:
        assert ctx.encoder is not None
        # the contract of a noise-space encoder (models.noise_encoder, or a plugin's): ``noise_blocks`` > 0 and
        # ``forward_with_noise(images) -> (wp, {noise name: map})``
        if getattr(ctx.encoder, "noise_blocks", 0) and callable(getattr(ctx.encoder, "forward_with_noise", None)):
            return encode_noise_latent(ctx.encoder, ctx.generator, ctx.images, chunk_size)
        return Latent(encode_images(ctx.encoder, ctx.generator, ctx.images, add_w_avg, chunk_size))


def encode_noise_latent(encoder: nn.Module, generator: Generator, images: torch.Tensor,
                        chunk_size: int | None = None) -> Latent:
    """A noise-space encoder's latent of ``images``: its W+ codes and its noise maps as the ``noise`` part (the
    paper's Sec. VI-C encoder; see :mod:`idinvert_plugins.models.noise_encoder`), checked against ``generator``."""
    from ..latent import get_part_type

    n, L, D = images.shape[0], generator.num_layers, generator.w_dim
    codes, maps = [], []
    with frozen(encoder), torch.no_grad():
        for c in batch_chunks(n, chunk_size):
            wp, noise = encoder.forward_with_noise(images[c])
            codes.append(wp.float())
            maps.append(noise)
    wp = torch.cat(codes)
    if tuple(wp.shape) != (n, L, D):
        raise ValueError(f"encoder output {list(wp.shape)} does not fit the generator's W+ code [{n}, {L}, {D}]: "
                         "the encoder belongs to another generator")
    noise = {k: torch.cat([m[k] for m in maps]).float().contiguous() for k in maps[0]}
    get_part_type("noise").check(generator, noise)
    return Latent(wp, {"noise": noise}, {"noise_blocks": int(encoder.noise_blocks)})


class MeanEmbedder(Embedder):
    name = "mean"
    description = "the average code w_avg on every layer (Image2StyleGAN's start)"

    def embed(self, ctx: InversionContext, **_: Any) -> Latent:
        G, n = ctx.generator, ctx.images.shape[0]
        return Latent(G.w_avg.detach().to(ctx.images).expand(n, G.num_layers, -1).clone())


class WEmbedder(Embedder):
    name = "w"
    description = ("W-space optimisation: one w per image (shared by all layers) from w_avg, pixel + perceptual "
                   "loss (PTI's pivot; in-domain but a looser fit than W+)")
    params = (steps_param(200), lr_param(0.01), L_PIX, L_FEAT, NOISE_MODE, CHUNK_SIZE,
              Param("w_noise", "float", default=0.0, min=0.0, max=10.0, step=0.01,
                    help="std of noise added to w during the first 3/4 of the steps, ramped down (the StyleGAN2 "
                         "projector's trick against local minima; 0 = off)"))
    uses_feature_net = True

    def embed(self, ctx: InversionContext, *, steps: int, lr: float, l_pix: float, l_feat: float | None,
              noise_mode: str, chunk_size: int | None, w_noise: float, **_: Any) -> Latent:
        G, images = ctx.generator, ctx.images
        if not G.has_w_space:
            raise ValueError(f"embedder 'w' needs a generator with a single W space; this {G.architecture!r} "
                             "model maps z to one w per layer: use --embed mean or encoder")
        if chunk_size is None and images.device.type == "cpu":
            chunk_size = cpu_chunk_size(images.shape[-2] * images.shape[-1])
        n = images.shape[0]
        w = G.w_avg.detach().to(images).expand(n, -1).clone().requires_grad_(True)
        optimizer = torch.optim.Adam([w], lr=lr)
        gen = torch.Generator(device="cpu").manual_seed(0)
        bar = None
        if ctx.progress and steps:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, desc=self.name, leave=False)
        with frozen(G, ctx.feature_net):
            objective = ReconstructionObjective(
                G, images, mask=ctx.mask, feature_net=ctx.feature_net, l_pix=l_pix,
                l_feat=resolve_feature_weight(l_feat, ctx.feature_net), noise_mode=noise_mode,
                chunk_size=chunk_size)  # fmt: skip
            for step in range(steps):
                optimizer.zero_grad(set_to_none=True)
                ramp = max(0.0, 1.0 - step / max(1.0, 0.75 * steps))
                jitter = torch.randn(w.shape, generator=gen).to(w) * (w_noise * ramp ** 2) if w_noise else 0.0
                for chunk in batch_chunks(n, chunk_size):
                    codes = G.to_wplus(w[chunk] + (jitter[chunk] if w_noise else 0.0))
                    _, terms = objective(codes, chunk)
                    terms["total"].sum().backward()
                optimizer.step()
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        return Latent(G.to_wplus(w.detach()).clone())


__all__ = ["EncoderEmbedder", "MeanEmbedder", "WEmbedder"]
