"""The editor contract: what an editing plugin declares, what it receives and how it is called.

An editor takes inverted latents (:class:`~idinvert_plugins.latent.Latent`, or plain W+ codes
``[N, num_layers, w_dim]``) plus its parameters and returns new ones; :meth:`Editor.__call__` validates the
parameters against the declared :class:`Param` list, optionally restricts the change to a range of layers, and
renders the result with every latent part. An editor working in W+ implements :meth:`Editor.edit` and keeps the
latent's other parts (noise maps, a tuned generator's weight offsets, ...), as e4e/HFGI/PTI editing does; an
editor of other parts (S-space channels, noise) implements :meth:`Editor.edit_latent`.

Editors receive an :class:`EditContext` (the generator and what goes with it: encoder, feature network,
directions, classifier) and declare what they need (``needs``) or can use (``uses``); the CLI and the app fill
the context from the pipeline, and build the editor's controls from ``params`` alone, so a third-party editor
needs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..latent import Latent
from ..latent import render as render_latent
from ..models.base import Generator
from ..params import Param, resolve_params

#: the context components an editor may declare in ``needs`` / ``uses``
CONTEXT_COMPONENTS: tuple[str, ...] = ("encoder", "feature_net", "directions", "classifier")


@dataclass
class EditContext:
    """What an editor may use besides the codes: the generator and the networks and directions that go with
    it (normally from a :class:`~idinvert_plugins.pipeline.Pipeline`)."""

    generator: Generator
    encoder: nn.Module | None = None
    feature_net: nn.Module | None = None
    directions: dict[str, Any] = field(default_factory=dict)
    classifier: nn.Module | None = None


@dataclass
class EditResult:
    """What an edit produces: the new codes, the whole new latent (codes and parts) and, unless
    ``render=False``, their images."""

    codes: torch.Tensor
    images: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)
    latent: Latent | None = None


class Editor:
    """Base class of editing plugins.

    Subclasses set ``name``, ``description`` and ``params`` and implement :meth:`edit` (W+ codes ->
    W+ codes) or :meth:`edit_latent` (latent -> latent). Codes are W+ (``[N, num_layers, w_dim]``); an editor
    that produces several variants per input (an interpolation strip) returns ``[N, K, num_layers, w_dim]``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    #: if True, a ``layers`` parameter restricts the change to that range of W+ layers
    layerwise: ClassVar[bool] = False
    #: context components (:data:`CONTEXT_COMPONENTS`) the editor cannot work without
    needs: ClassVar[tuple[str, ...]] = ()
    #: context components the editor uses when they are there
    uses: ClassVar[tuple[str, ...]] = ()

    def edit(self, generator: Generator, codes: torch.Tensor, **params: Any) -> torch.Tensor:
        raise NotImplementedError

    def edit_latent(self, ctx: EditContext, latent: Latent, **params: Any) -> Latent:
        """Edit a whole latent. The default edits its W+ codes with :meth:`edit` and keeps the other parts."""
        return latent.with_wp(self.edit(ctx.generator, latent.wp, **params))

    def resolve_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults and validate; unknown names are an error listing the declared ones."""
        return resolve_params(self.params, params, f"editor {self.name!r}")

    def __call__(self, generator: Generator, codes: torch.Tensor | Latent, *, render: bool = True,
                 noise_mode: str = "const", context: EditContext | None = None, **params: Any) -> EditResult:
        """Edit ``codes`` (W/W+ codes or a latent) and render the result with all its parts.

        ``context``: the networks and directions the editor may use (default: only the generator); one whose
        ``needs`` are missing raises ``ValueError`` naming them.
        """
        latent = Latent.from_codes(generator, codes)
        ctx = context if context is not None else EditContext(generator)
        missing = [c for c in self.needs if not getattr(ctx, c, None)]
        if missing:
            raise ValueError(f"editor {self.name!r} needs {', '.join(missing)}: load a pipeline that has "
                             f"{'it' if len(missing) == 1 else 'them'} (or pass context=EditContext(...))")
        values = self.resolve_params(params)
        new = self.edit_latent(ctx, latent, **values)
        if self.layerwise and values.get("layers") is not None:
            new = new.with_wp(restrict_layers(latent.wp, new.wp, values["layers"]))
        images = None
        if render:
            with torch.no_grad():
                images = render_latent(generator, new, noise_mode=noise_mode)
        return EditResult(codes=new.wp, images=images, info={"editor": self.name, "params": values}, latent=new)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "needs": list(self.needs),
                "uses": list(self.uses), "params": [p.to_dict() for p in self.params]}


def generator_image_shape(generator: Generator) -> tuple[int, int, int]:
    return (generator.img_channels, generator.resolution, generator.resolution)


def restrict_layers(original: torch.Tensor, edited: torch.Tensor, layers: tuple[int, int] | list[int]
                    ) -> torch.Tensor:
    """Keep ``edited`` only on W+ layers ``[start, stop)``; the others come from ``original``."""
    start, stop = int(layers[0]), int(layers[1])
    num_layers = original.shape[-2]
    if not 0 <= start < stop <= num_layers:
        raise ValueError(f"layer range [{start}, {stop}) is not within [0, {num_layers})")
    mask = torch.zeros(num_layers, 1, dtype=torch.bool, device=original.device)
    mask[start:stop] = True
    if edited.ndim == original.ndim + 1:  # several variants per input: [N, K, L, D]
        original = original.unsqueeze(1)
    return torch.where(mask, edited, original)
