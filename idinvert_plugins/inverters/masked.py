"""Image2StyleGAN++'s masked objectives: inpainting and crossover, as refiners.

* ``inpaint``: the loss sees only the known pixels, ``mean(((G(w) - x) * m)^2)`` (and the perceptual loss
  compares ``F(G(w) * m)`` with ``F(x * m)``), so the generator fills the hole with what its domain puts there.
  Pixels outside ``m`` do not reach the objective at all: changing them leaves the result unchanged
  (``tests/test_beyond_wplus.py``).
* ``crossover``: one image inside a region, another outside. The objective has two masked terms, the inverted
  image on the region ``m`` and ``other`` on ``1 - m``, so the code renders a blend the generator can draw
  (Image2StyleGAN++ Sec. 5.2; for binary masks the pixel part equals reconstructing the pasted composite, the
  perceptual part compares each region on its own).

Both run :func:`~idinvert_plugins.inverters.noise.fit_latent` on W+, and with ``noise=true`` on the noise maps too
(Image2StyleGAN++ optimises both; off by default, since free noise in an unconstrained hole only adds texture).

Masks are given as an image file (white = marked; any mode, resized with nearest neighbour to the generator's
resolution), a tensor or an array (``[R, R]``, ``[1 or C, R, R]`` or ``[N, 1 or C, R, R]``; > 0.5 = marked), or
through ``Inverter.invert(mask=...)`` (1 = known). ``inpaint`` takes the missing pixels as ``hole`` (paint or
whiten what is missing); ``crossover`` takes the ``region`` where the inverted image is kept and the ``other``
image for the rest. Command line::

    idinvert invert toyfaces-stylegan2-64 face.png --method inpaint --set hole=hole.png -o out/
    idinvert invert toyfaces-stylegan2-64 a.png --method crossover --set other=b.png --set region=top.png -o out/
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..params import Param
from .noise import Masking, NoiseOptimization, Term, loop_params
from .stages import InversionContext


def load_mask(spec: Any, images: torch.Tensor, what: str = "mask") -> torch.Tensor:
    """A 0/1 mask ``[N or 1, 1, R, R]`` on ``images``' device from an image file (white = 1), a tensor or an
    array (values > 0.5 = 1; channels averaged first), resized to ``images``' resolution with nearest
    neighbour. Raises ``ValueError`` naming the problem."""
    n, _, h, w = images.shape
    if isinstance(spec, (str, Path)):
        from ..images import open_image

        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"{what}: no file {str(path)!r} (give an image file whose white pixels mark the region)")
        img = open_image(path).convert("L")
        if img.size != (w, h):
            from PIL import Image

            img = img.resize((w, h), Image.Resampling.NEAREST)
        m = torch.tensor(np.asarray(img) > 127, dtype=torch.float32)[None, None]
    else:
        try:
            m = torch.as_tensor(np.asarray(spec) if not isinstance(spec, torch.Tensor) else spec).float()
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be an image file, a tensor or an array, got {type(spec).__name__}") \
                from None
        if m.ndim == 2:
            m = m[None, None]
        elif m.ndim == 3:
            m = m[None]
        if m.ndim != 4 or m.shape[0] not in (1, n):
            raise ValueError(f"{what} must be [R, R], [C, R, R] or [N, C, R, R] with N = 1 or {n}, got "
                             f"{list(m.shape)}")
        m = m.mean(1, keepdim=True)
        if tuple(m.shape[-2:]) != (h, w):
            m = F.interpolate(m, size=(h, w), mode="nearest")
        m = (m > 0.5).float()
    return m.to(images)


def load_other(spec: Any, images: torch.Tensor, what: str = "other") -> torch.Tensor:
    """A second image set ``[N or 1, C, R, R]`` in [-1, 1] from a file (cropped to its centred square and
    resized to the generator's resolution, as inputs are) or a tensor ``[C, R, R]`` / ``[N, C, R, R]``."""
    n, c, h, w = images.shape
    if isinstance(spec, (str, Path)):
        from ..images import load_image

        if not Path(spec).is_file():
            raise ValueError(f"{what}: no file {str(spec)!r}")
        t = load_image(spec, h, crop=True)[None]
    elif isinstance(spec, torch.Tensor):
        t = spec[None] if spec.ndim == 3 else spec
    else:
        raise ValueError(f"{what} must be an image file or a tensor [C, R, R], got {type(spec).__name__}")
    if t.ndim != 4 or t.shape[0] not in (1, n) or tuple(t.shape[1:]) != (c, h, w):
        raise ValueError(f"{what} must be [{c}, {h}, {w}] or [N, {c}, {h}, {w}] (the generator's images), got "
                         f"{list(t.shape)}")
    return t.detach().to(images)


def known_pixels(ctx: InversionContext, hole: Any) -> torch.Tensor:
    """The known pixels of an inpainting problem, ``[N or 1, 1, R, R]``: everything but ``hole`` (its marked
    pixels are missing), else the inversion's own mask (``Inverter.invert(mask=)``, 1 = known)."""
    if hole is None:
        if ctx.mask is None:
            raise ValueError("inpaint needs the hole: --set hole=FILE (white = missing pixels), or "
                             "Inverter.invert(..., mask=) with 1 = known pixels")
        known = (ctx.mask.mean(1, keepdim=True) > 0.5).float()
    else:
        known = 1.0 - load_mask(hole, ctx.images, "hole")
    if not bool(known.flatten(1).amax(1).gt(0).all()):
        raise ValueError("the hole covers a whole image: no known pixel is left to fit")
    return known


_NOISE_OPTION = Param("noise", "bool", default=False,
                      help="also optimise the noise maps, alternating with W+ (Image2StyleGAN++)")


class Inpainting(NoiseOptimization):
    name = "inpaint"
    description = ("Inpainting (Image2StyleGAN++): W+ (and with noise=true the noise maps) fitted to the known pixels "
                   "only; the generator fills the hole")
    params = (
        Param("hole", "mask", default=None,
              help="the missing pixels: an image file (white = missing) or a tensor (1 = missing); default: the "
                   "inversion's mask, 1 = known"),
        _NOISE_OPTION,
        *loop_params(300),
    )
    optimize_noise = False

    def terms(self, ctx: InversionContext, *, hole: Any = None, **_: Any) -> list[Term]:
        return [Term(ctx.images, Masking(known_pixels(ctx, hole)))]


class Crossover(NoiseOptimization):
    name = "crossover"
    description = ("Crossover (Image2StyleGAN++): one code that renders the inverted image inside the region "
                   "and `other` outside it (a masked term for each)")
    params = (
        Param("other", "image", default=None, required=True,
              help="the image outside the region: an image file or a tensor [C, R, R]"),
        Param("region", "mask", default=None, required=True,
              help="where the inverted image is kept: an image file (white) or a tensor (1); `other` elsewhere"),
        _NOISE_OPTION,
        *loop_params(300),
    )
    optimize_noise = False

    def terms(self, ctx: InversionContext, *, other: Any = None, region: Any = None, **_: Any) -> list[Term]:
        if other is None or region is None:
            raise ValueError("crossover needs other (the image outside the region) and region (where the inverted "
                             "image is kept): --set other=FILE --set region=FILE")
        m = load_mask(region, ctx.images, "region")
        return [Term(ctx.images, Masking(m)), Term(load_other(other, ctx.images), Masking(1.0 - m))]


__all__ = ["Crossover", "Inpainting", "Masking", "known_pixels", "load_mask", "load_other"]
