"""Semantic manipulation (InterFaceGAN, as used by IDInvert's ``manipulate.py``): move codes along a direction.

``w' = w + a * n`` on the direction's layers (per-layer directions add their own vector to each layer, as
the released IDInvert boundaries do). Principal components imported from GANSpace or e4e
(:mod:`.imported`) keep their official semantics: ``a`` is the coordinate the codes are *set* to, in standard
deviations from the PCA mean. With ``condition_on`` the direction is first made orthogonal to other
attribute directions (conditional manipulation), so those attributes stay put.

Directions may be given by name (``direction="smile"``) when the generator was loaded by name or folder
(``load_generator`` records where it came from): the name is looked up in the model's ``directions/`` folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..models.base import Generator
from .base import Editor, Param
from .directions import Direction, as_direction, orthogonalize
from .imported import is_set_coordinate, set_coordinate


def manipulate_codes(codes: torch.Tensor, offsets: torch.Tensor, strengths: torch.Tensor) -> torch.Tensor:
    """``codes`` ``[N, L, D]`` + ``strengths[k] * offsets`` ``[L, D]`` -> ``[N, K, L, D]``."""
    strengths = strengths.to(codes).view(1, -1, 1, 1)
    return codes.unsqueeze(1) + strengths * offsets.to(codes)


class Manipulate(Editor):
    name = "manipulate"
    description = ("Move codes along a semantic direction: w + strength * n on the direction's layers "
                   "(InterFaceGAN / IDInvert manipulation); optionally conditioned on other directions.")
    params = (
        Param("direction", "direction", required=True,
              help="a Direction, the path of a saved one, or the name of one of the generator's directions"),
        Param("strength", "float", default=0.0, min=-10.0, max=10.0, step=0.1,
              help="distance to move along the unit direction"),
        Param("steps", "int", default=1, min=1, max=64, step=1,
              help="1: one edit; more: a strip of edits with strengths linspace(-strength, strength, steps)"),
        Param("condition_on", "direction", default=None,
              help="directions (list) whose attributes must not change: n is made orthogonal to them"),
        Param("layers", "layers", default=None, help="restrict the edit to W+ layers [start, stop)"),
    )
    layerwise = True

    def edit(self, generator: Generator, codes: torch.Tensor, *, direction: Direction | str | Path,
             strength: float, steps: int, condition_on: Sequence[Direction | str | Path] | None = None,
             layers: tuple[int, int] | None = None) -> torch.Tensor:
        model = generator if getattr(generator, "resolved", None) is not None else None
        n = as_direction(direction, model)
        if is_set_coordinate(n):  # GANSpace / e4e PCA components: strength is the target coordinate (official)
            if condition_on:
                raise ValueError(f"direction {n.name!r} sets a principal-component coordinate (GANSpace / e4e); "
                                 "condition_on applies to directions that shift codes")
            targets = torch.tensor([strength]) if steps == 1 else torch.linspace(-strength, strength, steps)
            out = set_coordinate(codes, n, targets, layers)
            return out[:, 0] if steps == 1 else out
        if condition_on:
            conditions = [condition_on] if isinstance(condition_on, (Direction, str, Path)) else condition_on
            n = orthogonalize(n, [as_direction(c, model) for c in conditions])
        offsets = n.offsets(generator.num_layers, generator.w_dim)
        if steps == 1:
            return manipulate_codes(codes, offsets, torch.tensor([strength]))[:, 0]
        return manipulate_codes(codes, offsets, torch.linspace(-strength, strength, steps))
