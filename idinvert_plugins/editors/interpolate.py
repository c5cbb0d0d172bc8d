"""Interpolation between two codes (paper Fig. 4): a strip from one inverted image to another."""

from __future__ import annotations

import torch

from ..models.base import Generator
from .base import Editor, Param


def lerp_codes(src: torch.Tensor, dst: torch.Tensor, steps: int) -> torch.Tensor:
    """``src + t (dst - src)`` for ``t`` in ``linspace(0, 1, steps)``: ``[N, ...] -> [N, steps, ...]``."""
    t = torch.linspace(0, 1, steps, device=src.device, dtype=src.dtype)
    t = t.view(1, steps, *([1] * (src.ndim - 1)))
    return src.unsqueeze(1) + t * (dst - src).unsqueeze(1)


def slerp_codes(src: torch.Tensor, dst: torch.Tensor, steps: int, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation along the last axis (for Gaussian Z codes)."""
    t = torch.linspace(0, 1, steps, device=src.device, dtype=src.dtype).view(1, steps, *([1] * (src.ndim - 1)))
    a = src / src.norm(dim=-1, keepdim=True).clamp_min(eps)
    b = dst / dst.norm(dim=-1, keepdim=True).clamp_min(eps)
    omega = torch.acos((a * b).sum(-1, keepdim=True).clamp(-1 + eps, 1 - eps)).unsqueeze(1)
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * src.unsqueeze(1) + (torch.sin(t * omega) / so) * dst.unsqueeze(1)


def single_w(codes: torch.Tensor, names: list[str] | None = None, rtol: float = 1e-4) -> torch.Tensor:
    """The one ``w`` ``[N, D]`` of each W+ code ``[N, L, D]`` whose layers are all equal (a W code broadcast to
    W+); a code whose layers differ (what inversion writes) raises ``ValueError`` saying why interpolating it
    in W would be wrong and what to use instead. ``names`` label the codes in the message."""
    if codes.ndim == 2:
        return codes
    mean = codes.mean(dim=1)
    spread = (codes - mean.unsqueeze(1)).norm(dim=-1).amax(dim=1)  # [N]
    scale = mean.norm(dim=-1).clamp_min(1e-12)
    for i in range(codes.shape[0]):
        if float(spread[i]) > rtol * float(scale[i]) + 1e-6:
            label = names[i] if names else f"code {i}"
            raise ValueError(
                f"{label} is a W+ code whose {codes.shape[1]} layers differ (the largest layer is "
                f"{float(spread[i]):.3g} from their mean, {float(spread[i] / scale[i]):.0%} of its norm): "
                "interpolating in W needs one w per code, and averaging the layers into one w renders a "
                "different face. Use --space wplus (the default), which interpolates every layer; --space w is "
                "for W codes (all layers equal, e.g. G.mapping(z) saved with save_code)")
    return mean


class Interpolate(Editor):
    name = "interpolate"
    description = "Linear interpolation in W+ from each code to a second code, endpoints included."
    params = (
        Param("target", "code", required=True, help="the code to interpolate towards (W+ or W)"),
        Param("steps", "int", default=7, min=2, max=64, step=1, help="number of frames, endpoints included"),
    )

    def edit(self, generator: Generator, codes: torch.Tensor, *, target: torch.Tensor, steps: int
             ) -> torch.Tensor:
        target = generator.to_wplus(target.to(codes))
        return lerp_codes(codes, target.expand_as(codes), steps)


class StyleMix(Editor):
    name = "style-mix"
    description = ("Style mixing / crossover: layers from `start_layer` on come from the style code, "
                   "the earlier (coarse) layers from the edited code.")
    params = (
        Param("style", "code", required=True, help="the code whose layers are copied in"),
        Param("start_layer", "int", default=None, min=0, max=64, step=1,
              help="first layer taken from `style` (default: half of the layers)"),
    )

    def edit(self, generator: Generator, codes: torch.Tensor, *, style: torch.Tensor, start_layer: int | None
             ) -> torch.Tensor:
        style = generator.to_wplus(style.to(codes)).expand_as(codes)
        start = generator.num_layers // 2 if start_layer is None else start_layer
        if not 0 <= start <= generator.num_layers:
            raise ValueError(f"start_layer {start} is outside [0, {generator.num_layers}]")
        mixed = codes.clone()
        mixed[:, start:] = style[:, start:]
        return mixed
