"""The one interface every generator backend implements.

A backend (StyleGAN, StyleGAN2, or a third party's) subclasses :class:`Generator` and registers itself
through the ``register_generators`` hook. Everything downstream (inverters, editors, the app) only uses
the attributes and methods defined here, so backends are interchangeable.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import nn

NoiseMode = Literal["const", "random", "none"]
NOISE_MODES: tuple[str, ...] = ("const", "random", "none")


class Generator(nn.Module):
    """Base class of generator backends.

    Subclasses set :attr:`architecture` (the name written to ``config.json``) and store their constructor
    arguments in :attr:`config` so that ``cls(**config)`` rebuilds the same network. They must provide:

    * ``z_dim``, ``w_dim``, ``num_layers`` (length of a W+ code), ``resolution``, ``img_channels``;
    * a ``w_avg`` buffer of shape ``[w_dim]`` (the mean of the mapping output, used for truncation and as
      the starting point of optimisation);
    * :meth:`mapping` and :meth:`synthesis` with the signatures below;
    * :meth:`styles`, the per-layer style vectors (S space) a W+ code produces.
    """

    architecture: ClassVar[str] = ""
    #: True when ``mapping(z)`` returns one w per image (``[N, w_dim]``). False for models whose mapping
    #: emits a separate w per layer (the released IDInvert StyleGAN models, ``repeat_w=False``).
    has_w_space: ClassVar[bool] = True
    #: True when :meth:`synthesis` accepts explicit noise maps (``noise={layer: [N or 1, 1, r, r]}``) and
    #: :meth:`noise_shapes` names them: needed to render latents with a ``noise`` part.
    accepts_noise: ClassVar[bool] = False

    z_dim: int
    w_dim: int
    num_layers: int
    resolution: int
    img_channels: int
    w_avg: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}

    # -- the interface -------------------------------------------------------------------------------
    def mapping(
        self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None
    ) -> torch.Tensor:
        """Map ``z`` ``[N, z_dim]`` to W (``[N, w_dim]``) or, for models without a single W space, to W+
        (``[N, num_layers, w_dim]``). ``truncation_psi < 1`` pulls the codes towards ``w_avg``; with
        ``truncation_cutoff`` only the first that many layers are truncated (this forces a W+ result)."""
        raise NotImplementedError

    def synthesis(self, ws: torch.Tensor, noise_mode: NoiseMode = "const") -> torch.Tensor:
        """Render codes to images ``[N, img_channels, resolution, resolution]``, nominally in [-1, 1].

        ``ws`` is W+ (``[N, num_layers, w_dim]``) or W (``[N, w_dim]``, used for every layer).
        ``noise_mode``: ``"const"`` uses the per-layer noise stored with the model (deterministic),
        ``"random"`` draws fresh noise, ``"none"`` adds none.
        """
        raise NotImplementedError

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-layer style vectors (the S space) that ``ws`` produces, keyed by layer name in synthesis
        order. Each value is ``[N, channels]`` (what modulates that layer)."""
        raise NotImplementedError

    # -- optional: what latents beyond W+ need (see idinvert_plugins.latent) ---------------------------
    def noise_shapes(self) -> dict[str, tuple[int, int, int, int]]:
        """Names and shapes ``[1, 1, r, r]`` of the per-layer noise inputs, in synthesis order (backends that
        support explicit noise set :attr:`accepts_noise` and accept ``synthesis(ws, noise={name: map})``)."""
        raise NotImplementedError

    def stored_noise(self) -> dict[str, torch.Tensor]:
        """The noise maps ``noise_mode="const"`` renders with, ``{name: [1, 1, r, r]}`` (names as
        :meth:`noise_shapes`): passing them as ``synthesis(ws, noise=...)`` renders exactly as ``"const"``. Where
        noise-map optimisation starts (Image2StyleGAN++ refiners, :mod:`idinvert_plugins.inverters.noise`)."""
        raise NotImplementedError

    def style_module_paths(self) -> dict[str, str]:
        """Style name (the keys of :meth:`styles`) -> path of the submodule whose output is that style (the
        affine map ``A``), so S-space offsets can be added to it."""
        raise NotImplementedError

    def style_modules(self) -> dict[str, nn.Module]:
        """Style name -> the submodule producing that style (see :meth:`style_module_paths`)."""
        return {name: self.get_submodule(path) for name, path in self.style_module_paths().items()}

    # -- shared helpers ------------------------------------------------------------------------------
    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: NoiseMode = "const",
    ) -> torch.Tensor:
        """``G(z)`` = ``synthesis(mapping(z))``."""
        return self.synthesis(self.mapping(z, truncation_psi, truncation_cutoff), noise_mode=noise_mode)

    def to_wplus(self, ws: torch.Tensor) -> torch.Tensor:
        """Broadcast a W code ``[N, w_dim]`` to W+ ``[N, num_layers, w_dim]``; W+ passes through."""
        if ws.ndim == 2:
            if ws.shape[1] != self.w_dim:
                raise ValueError(f"W code must be [N, {self.w_dim}], got {list(ws.shape)}")
            return ws.unsqueeze(1).expand(-1, self.num_layers, -1)
        if ws.ndim == 3 and ws.shape[1:] == (self.num_layers, self.w_dim):
            return ws
        raise ValueError(
            f"codes must be W [N, {self.w_dim}] or W+ [N, {self.num_layers}, {self.w_dim}], got {list(ws.shape)}"
        )

    def truncate(
        self, ws: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None
    ) -> torch.Tensor:
        """``w_avg + psi * (w - w_avg)``, on all layers or only the first ``truncation_cutoff``."""
        if truncation_psi == 1.0:
            return ws
        if truncation_cutoff is None:
            return self.w_avg.lerp(ws, truncation_psi)
        wp = self.to_wplus(ws).clone()
        wp[:, :truncation_cutoff] = self.w_avg.lerp(wp[:, :truncation_cutoff], truncation_psi)
        return wp

    @torch.no_grad()
    def sample_z(self, n: int, seed: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
        """Standard-normal latents ``[n, z_dim]``, reproducible for a given seed on any device."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.z_dim, generator=gen)
        return z.to(device or self.w_avg.device)

    @torch.no_grad()
    def compute_w_avg(self, n: int = 10_000, seed: int = 0, batch: int = 1000) -> torch.Tensor:
        """Mean of the mapping output over ``n`` random z (layer 0's w for models without a W space)."""
        total = torch.zeros(self.w_dim, device=self.w_avg.device, dtype=torch.float64)
        z_all = self.sample_z(n, seed=seed)
        for i in range(0, n, batch):
            w = self.mapping(z_all[i : i + batch])
            if w.ndim == 3:
                w = w[:, 0]
            total += w.double().sum(0)
        return (total / n).float()

    def extra_repr(self) -> str:
        return (
            f"architecture={self.architecture!r}, resolution={self.resolution}, "
            f"num_layers={self.num_layers}, w_dim={self.w_dim}"
        )
