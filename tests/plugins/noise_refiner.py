"""A refiner that optimises the noise maps together with the W+ codes (Image2StyleGAN++'s noise space).

Loss: pixel MSE of render(G, latent) plus a small penalty keeping each noise map near unit variance; the
latent carries the maps as its ``noise`` part, so editors keep them and code files store them.
"""

import torch

import idinvert_plugins
from idinvert_plugins.inverters import Composition, Refiner, RefineResult
from idinvert_plugins.latent import render
from idinvert_plugins.params import Param


class NoiseAndWPlus(Refiner):
    name = "noise-wplus"
    description = "Adam on W+ and the per-layer noise maps (pixel loss + noise variance penalty)"
    params = (Param("steps", "int", default=20, min=0, max=10_000),
              Param("lr", "float", default=0.05, min=0.0, max=10.0),
              Param("noise_reg", "float", default=1e-3, min=0.0, max=100.0))

    def refine(self, ctx, latent, *, steps, lr, noise_reg):
        G, x = ctx.generator, ctx.images
        gen = torch.Generator().manual_seed(0)
        maps = {k: torch.randn(len(x), *s[1:], generator=gen).requires_grad_(True)
                for k, s in G.noise_shapes().items()}
        wp = latent.wp.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([wp, *maps.values()], lr=lr)
        losses = []
        G.requires_grad_(False)
        for _ in range(steps):
            current = _with_noise(latent, wp, maps)
            pix = (render(G, current) - x).pow(2).flatten(1).mean(1)
            reg = sum((m.pow(2).mean((1, 2, 3)) - 1).pow(2) for m in maps.values())
            opt.zero_grad()
            (pix + noise_reg * reg).sum().backward()
            opt.step()
            losses.append({"total": (pix + noise_reg * reg).tolist(), "pix": pix.tolist()})
        return RefineResult(_with_noise(latent, wp, maps).detach(), losses)


def _with_noise(latent, wp, maps):
    """The latent with new codes and noise maps (differentiable: no rounding for plain float32 parts)."""
    out = latent.with_wp(wp)
    out.parts["noise"] = dict(maps)
    return out


@idinvert_plugins.hookimpl
def register_refiners(register):
    register(NoiseAndWPlus())


@idinvert_plugins.hookimpl
def register_inverters(register):
    register(Composition("encoder+noise", "encoder", ("noise-wplus",),
                         description="encoder start, then W+ and noise maps optimised together"))
