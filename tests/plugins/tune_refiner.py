"""A refiner that fine-tunes the generator for the image (pivotal tuning, PTI-style).

The latent's W+ code is the pivot and stays fixed; a copy of the generator is tuned with Adam on the pixel
loss; the latent keeps the offsets of the tuned layers only (its ``weights`` part), so edits move the pivot
and render with the tuned weights.
"""

import copy

import torch

import idinvert_plugins
from idinvert_plugins.inverters import Composition, Refiner, RefineResult
from idinvert_plugins.params import Param


class TuneGenerator(Refiner):
    name = "tune-generator"
    description = "fine-tune the synthesis weights on the image around the pivot code (pixel loss)"
    params = (Param("steps", "int", default=20, min=0, max=10_000),
              Param("lr", "float", default=3e-3, min=0.0, max=1.0))

    def refine(self, ctx, latent, *, steps, lr):
        G = ctx.generator
        tuned = copy.deepcopy(G).train(False)
        names = [n for n, p in tuned.named_parameters() if n.startswith("synthesis_network.") and p.ndim >= 1]
        params = dict(tuned.named_parameters())
        tuned.requires_grad_(False)
        for n in names:
            params[n].requires_grad_(True)
        opt = torch.optim.Adam([params[n] for n in names], lr=lr)
        losses = []
        for _ in range(steps):
            pix = (tuned.synthesis(latent.wp) - ctx.images).pow(2).flatten(1).mean(1)
            opt.zero_grad()
            pix.sum().backward()
            opt.step()
            losses.append({"total": pix.tolist(), "pix": pix.tolist()})
        original = dict(G.named_parameters())
        offsets = {n: (params[n].detach() - original[n].detach())[None] for n in names
                   if not torch.equal(params[n], original[n])}
        return RefineResult(latent.with_part("weights", offsets), losses)


@idinvert_plugins.hookimpl
def register_refiners(register):
    register(TuneGenerator())


@idinvert_plugins.hookimpl
def register_inverters(register):
    register(Composition("encoder+tune", "encoder", ("tune-generator",),
                         description="encoder pivot, then the generator tuned on the image"))
