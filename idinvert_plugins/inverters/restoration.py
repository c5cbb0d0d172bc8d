"""Restoration by inversion (the GAN-inversion survey's Sec. 5.3): find the code whose render, *degraded*, matches
the degraded input; the render itself is the restoration.

A degradation operator ``D`` sits in the loss (:class:`~idinvert_plugins.inverters.noise.Term`), so the
optimiser only ever compares ``D(G(w))`` with the input ``y = D(x)``; the generator supplies what ``D`` threw
away. The operators, each a :class:`~idinvert_plugins.inverters.noise.Degradation`:

* :class:`Downsample` (``superres``, x4 by default): ``D(x)`` is the mean of every ``f x f`` block (area
  downsampling); baseline: bicubic upsampling of ``y``;
* :class:`Grayscale` (``colorize``): ``D(x) = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601 luma), one channel;
  baseline: ``y`` itself on all three channels;
* :class:`~idinvert_plugins.inverters.noise.Masking` (``inpaint``, :mod:`.masked`): ``D(x) = x * m`` with
  ``m`` = 1 on known pixels; baseline: the hole filled with the mean colour of the known pixels.

The refiners ``superres`` and ``colorize`` (here) and ``inpaint`` (:mod:`.masked`) take their input at the
generator's resolution: for super-resolution the low-resolution image upsampled by nearest neighbour
(:func:`prepare_input`), whose ``D`` is the low-resolution image exactly; a grayscale image as RGB; a holed image
and its hole. ``idinvert restore GEN IMAGES --task superres|colorize|inpaint`` (:mod:`idinvert_plugins.cli_restore`)
reads inputs at their own size and does this; ``idinvert invert GEN IMG --refine superres`` works too (the input
is then resized with Lanczos first, so ``D`` of it is close to, not exactly, the low-resolution image).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..params import Param
from .masked import _NOISE_OPTION, known_pixels, load_mask
from .noise import Degradation, Masking, NoiseOptimization, Term, loop_params
from .stages import InversionContext

#: restoration tasks and the refiner of each
TASKS = {"superres": "superres", "colorize": "colorize", "inpaint": "inpaint"}
#: ITU-R BT.601 luma weights (R, G, B)
LUMA = (0.299, 0.587, 0.114)
FACTORS = (2, 4, 8)


class Downsample(Degradation):
    """``D(x)``: the mean of every ``factor x factor`` block (area downsampling), ``[N, C, R/f, R/f]``; its view
    for the perceptual network is that image upsampled back by nearest neighbour."""

    name = "downsample"

    def __init__(self, factor: int = 4) -> None:
        if int(factor) < 1:
            raise ValueError(f"factor must be a positive integer, got {factor}")
        self.factor = int(factor)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] % self.factor or images.shape[-2] % self.factor:
            raise ValueError(f"images of {images.shape[-2]}x{images.shape[-1]} do not split into {self.factor}x"
                             f"{self.factor} blocks")
        return F.avg_pool2d(images, self.factor)

    def view(self, images: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self(images), scale_factor=self.factor, mode="nearest")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "factor": self.factor}


class Grayscale(Degradation):
    """``D(x) = 0.299 R + 0.587 G + 0.114 B`` (BT.601 luma), ``[N, 1, R, R]``; single-channel images pass
    through. Its view is the luma on three channels."""

    name = "grayscale"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            return images
        if images.shape[1] != 3:
            raise ValueError(f"grayscale needs RGB (3 channels) or 1 channel, got {images.shape[1]}")
        weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images * weights).sum(1, keepdim=True)

    def view(self, images: torch.Tensor) -> torch.Tensor:
        return self(images).expand(-1, 3, -1, -1)


def _restoration_params(*extra: Param) -> tuple[Param, ...]:
    return (*extra, _NOISE_OPTION, *loop_params(300))


class SuperResolution(NoiseOptimization):
    name = "superres"
    description = ("Super-resolution by inversion: W+ fitted so that the render, area-downsampled by `factor`, "
                   "matches the input's downsampling (the low-resolution image)")
    params = _restoration_params(Param("factor", "choice", default=4, choices=FACTORS,
                                       help="downsampling factor of the low-resolution input (x4: 16 px for 64 px)"))
    optimize_noise = False

    def terms(self, ctx: InversionContext, *, factor: int = 4, **_: Any) -> list[Term]:
        return [Term(ctx.images, Downsample(int(factor)))]


class Colorization(NoiseOptimization):
    name = "colorize"
    description = "Colorization by inversion: W+ fitted so that the render's grayscale matches the input's"
    params = _restoration_params()
    optimize_noise = False

    def terms(self, ctx: InversionContext, **_: Any) -> list[Term]:
        return [Term(ctx.images, Grayscale())]


# -- inputs and baselines ------------------------------------------------------------------------------------
def degrade(task: str, images: torch.Tensor, *, factor: int = 4, known: torch.Tensor | None = None
            ) -> torch.Tensor:
    """The degraded observation of ``images`` ``[N, C, R, R]`` for ``task``: the low-resolution image
    ``[N, C, R/f, R/f]``, the grayscale image on three channels, or the image with the hole (where ``known`` is
    0) set to 0 (mid-gray in [-1, 1])."""
    if task == "superres":
        return Downsample(factor)(images)
    if task == "colorize":
        return Grayscale().view(images)
    if task == "inpaint":
        if known is None:
            raise ValueError("degrade('inpaint', ...) needs known= (1 = known pixels)")
        return Masking(known)(images)
    raise ValueError(f"unknown restoration task {task!r}; tasks: {', '.join(TASKS)}")


def prepare_input(task: str, observed: torch.Tensor, resolution: int, *, factor: int = 4) -> torch.Tensor:
    """The refiner's input at the generator's ``resolution`` from a degraded observation ``[N, C, r, r]``: for
    ``superres`` the low-resolution image upsampled by nearest neighbour (``Downsample`` of it gives the
    observation back exactly; ``r * factor`` must be ``resolution``), otherwise the observation itself."""
    if task == "superres":
        if observed.shape[-1] * factor != resolution or observed.shape[-2] * factor != resolution:
            raise ValueError(f"a x{factor} super-resolution input for a {resolution}px generator must be "
                             f"{resolution // factor}x{resolution // factor}, got {observed.shape[-2]}x"
                             f"{observed.shape[-1]}")
        return F.interpolate(observed, scale_factor=factor, mode="nearest")
    if observed.shape[-1] != resolution:
        raise ValueError(f"a {task} input for a {resolution}px generator must be {resolution}x{resolution}, got "
                         f"{observed.shape[-2]}x{observed.shape[-1]}")
    return observed


def baseline(task: str, observed: torch.Tensor, *, factor: int = 4, known: torch.Tensor | None = None
             ) -> torch.Tensor:
    """The simple restoration a method should beat, at full resolution: bicubic upsampling of the
    low-resolution image (clamped to [-1, 1]); the grayscale input itself; the hole (``known`` 0) filled with
    the mean colour of the known pixels of each image."""
    if task == "superres":
        return F.interpolate(observed, scale_factor=factor, mode="bicubic", align_corners=False).clamp(-1, 1)
    if task == "colorize":
        return Grayscale().view(observed) if observed.shape[1] in (1, 3) else observed
    if task == "inpaint":
        if known is None:
            raise ValueError("baseline('inpaint', ...) needs known= (1 = known pixels)")
        m = known.to(observed).expand_as(observed)
        mean = (observed * m).sum((2, 3), keepdim=True) / m.sum((2, 3), keepdim=True).clamp_min(1)
        return observed * m + mean * (1 - m)
    raise ValueError(f"unknown restoration task {task!r}; tasks: {', '.join(TASKS)}")


def consistent(task: str, restored: torch.Tensor, observed: torch.Tensor, *, factor: int = 4,
               known: torch.Tensor | None = None) -> torch.Tensor:
    """``restored`` corrected so that its degradation equals the observation exactly (data consistency): for
    ``superres`` the low-resolution residual ``y - D(G)`` added back by nearest neighbour (each block's mean
    becomes the observed pixel); for ``colorize`` the luma difference added to every channel (the colours of
    the render, the brightness of the input); for ``inpaint`` the known pixels pasted over the render."""
    if task == "superres":
        return restored + F.interpolate(observed - Downsample(factor)(restored), scale_factor=factor, mode="nearest")
    if task == "colorize":
        gray = Grayscale()
        return restored + (gray(observed) - gray(restored))
    if task == "inpaint":
        if known is None:
            raise ValueError("consistent('inpaint', ...) needs known= (1 = known pixels)")
        m = known.to(restored)
        return observed * m + restored * (1 - m)
    raise ValueError(f"unknown restoration task {task!r}; tasks: {', '.join(TASKS)}")


def centre_hole(resolution: int, fraction: float = 0.25) -> torch.Tensor:
    """A ``[1, 1, R, R]`` mask with 1 on known pixels and a centred square hole of about ``fraction`` of the
    area (0.25: a hole of half the side)."""
    side = max(1, round(resolution * fraction ** 0.5))
    start = (resolution - side) // 2
    mask = torch.ones(1, 1, resolution, resolution)
    mask[..., start:start + side, start:start + side] = 0
    return mask


__all__ = ["Colorization", "Downsample", "FACTORS", "Grayscale", "LUMA", "SuperResolution", "TASKS", "baseline",
           "centre_hole", "consistent", "degrade", "known_pixels", "load_mask", "prepare_input"]
