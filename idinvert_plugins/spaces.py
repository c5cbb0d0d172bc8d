"""Latent spaces a code can live in. Each turns its codes into W+ for synthesis.

Built-ins: ``z`` (Gaussian input), ``w`` (one mapped code per image), ``wp`` (W+: one code per layer).
Further spaces (S, P, noise) register through the same ``register_latent_spaces`` hook.
"""

from __future__ import annotations

import torch

from .models.base import Generator


class LatentSpace:
    """A latent space: its name, the shape of one code for a generator, and the map to W+."""

    name: str = ""
    description: str = ""

    def code_shape(self, generator: Generator) -> tuple[int, ...]:
        raise NotImplementedError

    def to_wplus(self, generator: Generator, codes: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        raise NotImplementedError


class ZSpace(LatentSpace):
    name = "z"
    description = "Gaussian input of the mapping network"

    def code_shape(self, generator: Generator) -> tuple[int, ...]:
        return (generator.z_dim,)

    def to_wplus(self, generator: Generator, codes: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        return generator.to_wplus(generator.mapping(codes, truncation_psi))


class WSpace(LatentSpace):
    name = "w"
    description = "output of the mapping network, one code shared by all layers"

    def code_shape(self, generator: Generator) -> tuple[int, ...]:
        if not generator.has_w_space:
            raise ValueError(f"{generator.architecture} model maps z to one w per layer: it has no single W "
                             "space; use 'wp' (W+) or 'z'")
        return (generator.w_dim,)

    def to_wplus(self, generator: Generator, codes: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        self.code_shape(generator)
        return generator.to_wplus(generator.truncate(codes, truncation_psi))


class WPlusSpace(LatentSpace):
    name = "wp"
    description = "W+: a separate w for every synthesis layer (where inversion and editing happen)"

    def code_shape(self, generator: Generator) -> tuple[int, ...]:
        return (generator.num_layers, generator.w_dim)

    def to_wplus(self, generator: Generator, codes: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        return generator.to_wplus(codes)
