"""The editor contract: what an editing plugin declares and how it is called.

An editor takes inverted codes (W+, ``[N, num_layers, w_dim]``) plus its parameters and returns new
codes; :meth:`Editor.__call__` validates the parameters against the declared :class:`Param` list,
optionally restricts the change to a range of layers, and renders the result. The Gradio app and the
CLI build their controls from ``params`` alone, so a third-party editor needs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..models.base import Generator
from ..params import Param, resolve_params


@dataclass
class EditResult:
    """What an edit produces: the new codes and (unless ``render=False``) their images."""

    codes: torch.Tensor
    images: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Editor:
    """Base class of editing plugins.

    Subclasses set ``name``, ``description`` and ``params`` and implement :meth:`edit`. Codes are W+
    (``[N, num_layers, w_dim]``); an editor that produces several variants per input (an interpolation
    strip) returns ``[N, K, num_layers, w_dim]``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    #: if True, a ``layers`` parameter restricts the change to that range of W+ layers
    layerwise: ClassVar[bool] = False

    def edit(self, generator: Generator, codes: torch.Tensor, **params: Any) -> torch.Tensor:
        raise NotImplementedError

    def resolve_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults and validate; unknown names are an error listing the declared ones."""
        return resolve_params(self.params, params, f"editor {self.name!r}")

    def __call__(self, generator: Generator, codes: torch.Tensor, *, render: bool = True,
                 noise_mode: str = "const", **params: Any) -> EditResult:
        codes = generator.to_wplus(codes)
        values = self.resolve_params(params)
        new = self.edit(generator, codes, **values)
        if self.layerwise and values.get("layers") is not None:
            new = restrict_layers(codes, new, values["layers"])
        images = None
        if render:
            with torch.no_grad():
                flat = new.reshape(-1, *new.shape[-2:])
                images = generator.synthesis(flat, noise_mode=noise_mode).reshape(
                    *new.shape[:-2], *generator_image_shape(generator))
        return EditResult(codes=new, images=images, info={"editor": self.name, "params": values})

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "params": [p.to_dict() for p in self.params]}


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
