"""Pixel-space reconstruction metrics: MSE, PSNR and SSIM.

All three take float image batches ``[N, C, H, W]`` (a single ``[C, H, W]`` image is treated as a batch of
one) in the library's range [-1, 1], score each image separately and return a ``[N]`` tensor, or its mean
with ``reduction="mean"``. ``data_range`` is the span of the pixel values (2 for [-1, 1], 255 for uint8
values given as floats); it sets the PSNR peak and the SSIM stabilising constants.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Reduction = Literal["none", "mean"]


def _as_batches(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {list(a.shape)} and {list(b.shape)}")
    if a.ndim == 3:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    if a.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W] or [C, H, W], got {list(a.shape)}")
    if not (a.is_floating_point() and b.is_floating_point()):
        raise TypeError(f"images must be float tensors (got {a.dtype} and {b.dtype}); convert uint8 with "
                        "idinvert_plugins.images.from_uint8")
    # float64 keeps the sums exact enough that identical images give exactly 0 / inf / 1
    return a.double(), b.double()


def _reduce(per_image: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "none":
        return per_image
    if reduction == "mean":
        return per_image.mean()
    raise ValueError(f"reduction must be 'none' or 'mean', got {reduction!r}")


def mse(a: torch.Tensor, b: torch.Tensor, reduction: Reduction = "none") -> torch.Tensor:
    """Mean squared error per image (over channels and pixels)."""
    a, b = _as_batches(a, b)
    return _reduce((a - b).square().mean(dim=(1, 2, 3)).float(), reduction)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0, reduction: Reduction = "none") -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB, ``10 log10(data_range^2 / MSE)`` (``inf`` for identical
    images). ``reduction="mean"`` averages the per-image dB values."""
    a, b = _as_batches(a, b)
    err = (a - b).square().mean(dim=(1, 2, 3))
    return _reduce((10.0 * torch.log10(data_range**2 / err)).float(), reduction)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The normalised 1-D Gaussian weights SSIM averages with (``size`` taps, float64)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"the SSIM window must be an odd number of pixels, got {size}")
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    data_range: float = 2.0,
    window: int = 11,
    sigma: float = 1.5,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """Structural similarity (Wang, Bovik, Sheikh and Simoncelli 2004) per image.

    Local means, variances and the covariance are Gaussian-weighted averages over a ``window`` x ``window``
    neighbourhood (sigma 1.5 px), computed only where the window fits inside the image (the paper's
    "valid" filtering); ``K1 = 0.01``, ``K2 = 0.03``, ``C_i = (K_i * data_range)^2``. The SSIM map is
    averaged over positions and channels, giving one value per image (1 for identical images).
    """
    a, b = _as_batches(a, b)
    n, c, h, w = a.shape
    if h < window or w < window:
        raise ValueError(f"images of {h}x{w} are smaller than the {window}x{window} SSIM window; pass a smaller "
                         "odd window=")
    g = gaussian_window(window, sigma).to(a.device)
    # separable Gaussian filter applied to each channel of each image on its own
    kernel_h = g.view(1, 1, 1, window).expand(c, 1, 1, window)
    kernel_v = g.view(1, 1, window, 1).expand(c, 1, window, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, kernel_h, groups=c), kernel_v, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a.square()
    var_b = blur(b * b) - mu_b.square()
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    luminance = (2 * mu_a * mu_b + c1) / (mu_a.square() + mu_b.square() + c1)
    contrast_structure = (2 * cov + c2) / (var_a + var_b + c2)
    return _reduce((luminance * contrast_structure).mean(dim=(1, 2, 3)).float(), reduction)
