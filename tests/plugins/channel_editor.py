"""An editor that scales chosen S-space channels of one layer (StyleSpace-style channel edits).

The change is stored as the latent's ``styles`` part (an offset to that layer's style vector), so it composes
with W+ edits and survives a code file.
"""

import torch

import idinvert_plugins
from idinvert_plugins.editors import Editor
from idinvert_plugins.params import Param


class ScaleChannels(Editor):
    name = "scale-channels"
    description = "multiply channels [first, first + count) of one layer's style vector by `scale`"
    params = (Param("layer", "int", default=1, min=0, max=100, help="index of the style layer (synthesis order)"),
              Param("first", "int", default=0, min=0, max=4096),
              Param("count", "int", default=4, min=1, max=4096),
              Param("scale", "float", default=2.0, min=-10.0, max=10.0))

    def edit_latent(self, ctx, latent, *, layer, first, count, scale):
        G = ctx.generator
        names = list(G.style_modules())
        if layer >= len(names):
            raise ValueError(f"layer {layer} is out of range: this generator has {len(names)} style layers")
        name = names[layer]
        with torch.no_grad():
            s = G.styles(latent.wp if latent.wp.ndim == 3 else latent.wp[:, 0])[name]
        offsets = dict(latent.parts.get("styles", {}))
        delta = torch.zeros_like(s)
        delta[:, first:first + count] = (scale - 1.0) * s[:, first:first + count]
        offsets[name] = offsets.get(name, torch.zeros_like(s)) + delta
        return latent.with_part("styles", offsets)


@idinvert_plugins.hookimpl
def register_editors(register):
    register(ScaleChannels())
