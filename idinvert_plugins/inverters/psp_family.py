"""The embedders of the pSp family: ``psp``, ``e4e`` (one forward pass) and ``restyle`` (iterations with the
generator in the loop), and the named methods of the same names.

Each reads the encoder the pipeline hands it: the pipeline's ``encoders`` entry of its name when there is one
(``"encoders": {"e4e": "my-e4e-encoder"}`` beside an IDInvert encoder), else its ``encoder`` (a converted
official checkpoint's, see :mod:`..convert.psp`, or one trained here). An encoder of another kind is refused,
naming the method that fits it.

ReStyle (Alaluf et al. 2021, ``utils/inference_utils.run_on_batch``): iteration 0 feeds ``cat([x, avg])`` where
``avg = G(latent_avg)`` (constant noise), pooled to the encoder's input size, and adds ``latent_avg``; iteration
k >= 1 feeds ``cat([x, y_k])`` with ``y_k`` the previous reconstruction (pooled the same way, the official
``face_pool``) and adds the previous codes. ``n_iters`` iterations (the checkpoint's ``n_iters_per_batch``, 5 by
default). The reconstruction error after every iteration is kept in ``latent.info["restyle_mse"]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ..latent import Latent
from ..models.psp import resize_to
from ..params import Param
from .base import CHUNK_SIZE
from .optimize import batch_chunks, frozen
from .stages import Composition, Embedder, InversionContext

N_ITERS = Param("n_iters", "int", default=None, min=1, max=20, step=1,
                help="ReStyle iterations (default: the encoder's, 5 for the official checkpoints)")


def encoder_key_hint(role: str, option: str | None = "--encoder FOLDER") -> str:
    """How to give method ``role`` (``psp``, ``e4e``, ``restyle``) its encoder: the ``pipeline.json`` key that maps
    the method to an encoder folder, or the command-line ``option`` (None: not offered, e.g. in the app)."""
    text = (f"name it in the generator's pipeline.json under the key 'encoders.{role}' (\"encoders\": "
            f"{{\"{role}\": \"FOLDER\"}}, a folder relative to the pipeline folder or a named model)")
    return text + (f", or pass {option}" if option else "")


def _encoder_of(ctx: InversionContext, method: str, architecture: str) -> nn.Module:
    encoder = ctx.encoder
    found = getattr(encoder, "architecture", type(encoder).__name__)
    if encoder is None or found != architecture:
        fits = {"psp-encoder": "psp", "e4e-encoder": "e4e", "restyle-encoder": "restyle"}.get(str(found))
        hint = f"; this {found} encoder fits --method {fits}" if fits else (
            f"; convert an official {method} checkpoint with `idinvert convert FILE.pt -o DIR` and invert with "
            f"`idinvert invert DIR IMAGE --method {method}`")
        raise ValueError(f"--method {method} needs a {architecture} (the pipeline's encoder is "
                         f"{'none' if encoder is None else found}){hint}; to use one beside the pipeline's encoder, "
                         f"{encoder_key_hint(method)}")
    return encoder


class _OnePassEmbedder(Embedder):
    architecture: ClassVar[str] = ""
    params = (CHUNK_SIZE,)
    requires_encoder = True

    def embed(self, ctx: InversionContext, *, chunk_size: int | None = None, **_: Any) -> Latent:
        encoder = _encoder_of(ctx, self.name, self.architecture)
        with frozen(encoder), torch.no_grad():
            codes = torch.cat([encoder(ctx.images[c]) for c in batch_chunks(ctx.images.shape[0], chunk_size)])
        return Latent(codes.float())


class PSPEmbedder(_OnePassEmbedder):
    name = "psp"
    encoder_role = "psp"
    description = "pSp (Richardson et al. 2021): one pass of the GradualStyleEncoder, codes = E(x) + latent_avg"
    architecture = "psp-encoder"


class E4EEmbedder(_OnePassEmbedder):
    name = "e4e"
    encoder_role = "e4e"
    description = "e4e (Tov et al. 2021): one pass of Encoder4Editing, a base code plus per-layer offsets"
    architecture = "e4e-encoder"


def average_image(generator: nn.Module, latent_avg: torch.Tensor, size: int) -> torch.Tensor:
    """``G(latent_avg)`` with constant noise, pooled to ``size``: ReStyle's first reconstruction ``[3, size, size]``."""
    with torch.no_grad():
        image = generator.synthesis(latent_avg[None].to(generator.w_avg), noise_mode="const")
    return resize_to(image.float(), size)[0]


@torch.no_grad()
def restyle_iterations(encoder: nn.Module, generator: nn.Module, images: torch.Tensor, n_iters: int,
                       avg_image: torch.Tensor | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Run ReStyle: the codes and the reconstructions after each of ``n_iters`` iterations. ``avg_image``: the
    first step's reconstruction (default: ``G(latent_avg)`` as the official code computes it)."""
    if avg_image is None:
        avg_image = average_image(generator, encoder.latent_avg, encoder.input_size)
    reconstruction: torch.Tensor = avg_image.to(images).expand(images.shape[0], -1, -1, -1)
    previous = None
    codes_seen, images_seen = [], []
    for _ in range(n_iters):
        codes = encoder.step(images, reconstruction, previous)
        reconstruction = generator.synthesis(codes, noise_mode="const").float()
        previous = codes
        codes_seen.append(codes)
        images_seen.append(reconstruction)
    return codes_seen, images_seen


class ReStyleEmbedder(Embedder):
    name = "restyle"
    description = ("ReStyle (Alaluf et al. 2021): N residual iterations, each reading the image and the current "
                   "reconstruction, starting from the average image G(latent_avg)")
    params = (N_ITERS, CHUNK_SIZE)
    requires_encoder = True
    encoder_role = "restyle"

    def embed(self, ctx: InversionContext, *, n_iters: int | None = None, chunk_size: int | None = None,
              **_: Any) -> Latent:
        encoder = _encoder_of(ctx, self.name, "restyle-encoder")
        n_iters = int(n_iters or getattr(encoder, "n_iters", 5))
        G = ctx.generator
        codes_out, mse = [], torch.zeros(n_iters)
        with frozen(encoder, G):
            avg = average_image(G, encoder.latent_avg, encoder.input_size)
            for c in batch_chunks(ctx.images.shape[0], chunk_size):
                codes, recons = restyle_iterations(encoder, G, ctx.images[c], n_iters, avg)
                codes_out.append(codes[-1])
                mse += torch.stack([(ctx.images[c] - r).pow(2).flatten(1).mean(1).sum().cpu() for r in recons])
        info = {"restyle_iters": n_iters, "restyle_mse": (mse / ctx.images.shape[0]).tolist()}
        return Latent(torch.cat(codes_out).float(), info=info)


def compositions() -> list[Composition]:
    """The named methods ``psp``, ``e4e`` and ``restyle``: each embedder alone."""
    return [Composition("psp", PSPEmbedder(), description=PSPEmbedder.description),
            Composition("e4e", E4EEmbedder(), description=E4EEmbedder.description),
            Composition("restyle", ReStyleEmbedder(), description=ReStyleEmbedder.description)]


__all__ = ["E4EEmbedder", "PSPEmbedder", "ReStyleEmbedder", "average_image", "compositions", "encoder_key_hint",
           "restyle_iterations"]
