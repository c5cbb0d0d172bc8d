"""Multi-scale sliced Wasserstein distance (SWD), the network-free image-distribution metric of ProGAN.

Karras et al. (ProGAN, 2018; also reported for StyleGAN) compare two image sets through the statistics of
small patches at several scales, with no pretrained network:

1. each image's Laplacian pyramid is built, from the image resolution down to 16x16 (the last level is
   the 16x16 Gaussian level itself);
2. at each level, ``descriptors_per_image`` 7x7 neighbourhoods are cut at random positions; a descriptor
   is the ``7 * 7 * C`` values of one neighbourhood;
3. descriptors are normalised per colour channel (mean and standard deviation over all descriptors of the
   level);
4. the sliced Wasserstein distance between the two descriptor sets is the 1-D Wasserstein-1 distance of
   their projections on random unit directions, averaged over ``directions`` directions and ``repeats``
   independent draws.

Each level's distance is multiplied by 1e3 (the published convention); ``mean`` averages the levels.

Differences from ProGAN's script, on purpose: the channel statistics are pooled over *both* sets (ProGAN
normalised each set by its own statistics, which hides a global colour or brightness shift); both sets use
the same neighbourhood positions per image index (so a set compared with itself scores exactly 0); sets of
different sizes are allowed (the exact 1-D distance between the two empirical distributions is used).

Images are stored as uint8 (float input in [-1, 1] is quantised as :func:`idinvert_plugins.images.to_uint8`
does, which is also what ProGAN measured), and descriptors are built one pyramid level at a time: they take
``N * 128 * 7 * 7 * C`` floats per set (750 MB for 10,000 RGB images), so 10,000 images against 5,000 peak
at about 1.5 GB whatever the resolution. Projections go ``chunk`` directions at a time into reused buffers.
Cost: about 55 s per level for 10,000 against 5,000 images on one busy CPU core (matrix products and sorts).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ImageSet = torch.Tensor | np.ndarray | Iterable[torch.Tensor | np.ndarray]

_BINOMIAL_5 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


# -- input --------------------------------------------------------------------------------------------
def _batch_to_uint8(batch: torch.Tensor | np.ndarray) -> torch.Tensor:
    """One batch as uint8 ``[N, C, H, W]``: numpy arrays are ``NHWC`` (as :func:`render_batch` and
    :func:`to_uint8` give them), tensors are ``NCHW``; floats are in [-1, 1]."""
    if isinstance(batch, np.ndarray):
        if batch.ndim != 4:
            raise ValueError(f"numpy image batches must be NHWC, got shape {batch.shape}")
        batch = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
    if not isinstance(batch, torch.Tensor) or batch.ndim != 4:
        shape = list(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
        raise ValueError(f"image batches must be tensors [N, C, H, W] or numpy arrays [N, H, W, C], got {shape}")
    if batch.dtype == torch.uint8:
        return batch.cpu().contiguous()
    if not batch.is_floating_point():
        raise TypeError(f"images must be uint8 or float in [-1, 1], got {batch.dtype}")
    return ((batch.detach().float().cpu() + 1.0) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)


def collect_uint8(images: ImageSet) -> torch.Tensor:
    """Gather an image set (one batch, or an iterable of batches) into one uint8 ``[N, C, H, W]`` tensor."""
    if isinstance(images, torch.Tensor | np.ndarray):
        batches = [_batch_to_uint8(images)]
    else:
        batches = [_batch_to_uint8(b) for b in images]
    if not batches:
        raise ValueError("the image set is empty")
    shapes = {tuple(b.shape[1:]) for b in batches}
    if len(shapes) != 1:
        raise ValueError(f"all batches must have the same image shape, got {sorted(shapes)}")
    out = torch.cat(batches) if len(batches) > 1 else batches[0]
    if out.shape[0] == 0:
        raise ValueError("the image set is empty")
    return out


# -- Laplacian pyramid ------------------------------------------------------------------------------------
def _blur(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """5x5 binomial filter, mirror padding (the edge pixel is not repeated), each channel on its own."""
    c = x.shape[1]
    k = torch.outer(_BINOMIAL_5, _BINOMIAL_5).to(x) * gain
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k.expand(c, 1, 5, 5), groups=c)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur then keep every second pixel: the next (half-size) Gaussian level."""
    return _blur(x)[:, :, ::2, ::2]


def pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-insertion x2 up-sampling followed by the blur (gain 4 restores the mean), cropped to ``size``."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _blur(up, gain=4.0)[:, :, : size[0], : size[1]]


def laplacian_pyramid(x: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """``num_levels`` band-pass images from full resolution down; the last one is the Gaussian level."""
    levels = []
    gauss = x
    for _ in range(num_levels - 1):
        smaller = pyr_down(gauss)
        levels.append(gauss - pyr_up(smaller, gauss.shape[2:]))
        gauss = smaller
    levels.append(gauss)
    return levels


def pyramid_resolutions(resolution: int, min_resolution: int = 16) -> list[int]:
    """The level sizes SWD reports for square images of ``resolution``: halving down to ``min_resolution``."""
    if resolution < min_resolution:
        raise ValueError(f"images of {resolution}x{resolution} are smaller than min_resolution={min_resolution}")
    sizes = [resolution]
    while sizes[-1] // 2 >= min_resolution:
        sizes.append(sizes[-1] // 2)
    return sizes


# -- descriptors ------------------------------------------------------------------------------------------
def _generator(seed: int, *keys: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), *keys]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)


def _descriptors(level: torch.Tensor, positions: torch.Tensor, nhood_size: int) -> torch.Tensor:
    """Cut the neighbourhoods at ``positions`` ``[B, K, 2]`` (top-left y, x) out of ``level`` ``[B, C, S, S]``:
    ``[B * K, C * nhood_size**2]``, channel-major."""
    b, c, s, _ = level.shape
    k = positions.shape[1]
    offsets = torch.arange(nhood_size)
    rows = positions[:, :, 0, None] + offsets  # [B, K, n]
    cols = positions[:, :, 1, None] + offsets
    flat = (rows[:, :, :, None] * s + cols[:, :, None, :]).reshape(b, 1, k * nhood_size**2)
    patches = level.reshape(b, c, s * s).gather(2, flat.expand(b, c, -1))  # [B, C, K * n * n]
    return patches.view(b, c, k, nhood_size**2).permute(0, 2, 1, 3).reshape(b * k, c * nhood_size**2)


def _level_descriptors(images: torch.Tensor, level_index: int, num_levels: int, positions: torch.Tensor,
                       nhood_size: int, batch: int) -> torch.Tensor:
    k = positions.shape[1]
    out = torch.empty(images.shape[0] * k, images.shape[1] * nhood_size**2)
    for i in range(0, images.shape[0], batch):
        x = images[i : i + batch].float()
        for _ in range(level_index):
            x = pyr_down(x)
        level = x if level_index == num_levels - 1 else x - pyr_up(pyr_down(x), x.shape[2:])
        out[i * k : (i + x.shape[0]) * k] = _descriptors(level, positions[i : i + batch], nhood_size)
    return out


def _normalise_channels(sets: list[torch.Tensor], channels: int, block: int = 16384) -> None:
    """In place: subtract each colour channel's mean and divide by its standard deviation, both taken over
    every descriptor of every set (float64 sums in blocks: there are millions of descriptors)."""
    blocks = [d[i : i + block].view(-1, channels, d.shape[1] // channels) for d in sets
              for i in range(0, d.shape[0], block)]
    count = sum(x.shape[0] * x.shape[2] for x in blocks)
    mean = sum(x.double().sum(dim=(0, 2)) for x in blocks) / count
    var = sum((x.double() - mean[:, None]).square().sum(dim=(0, 2)) for x in blocks) / count
    mean32, std32 = mean[:, None].float(), var.sqrt().clamp_min(1e-8)[:, None].float()
    for x in blocks:
        x.sub_(mean32).div_(std32)


# -- 1-D Wasserstein distances --------------------------------------------------------------------------------
def _sort_rows_(x: torch.Tensor) -> np.ndarray:
    """The rows of ``x`` sorted, as a numpy array (in place in ``x`` on CPU)."""
    if x.device.type != "cpu":
        return x.sort(dim=1).values.cpu().numpy()
    arr = x.numpy()
    arr.sort(axis=1)  # numpy's SIMD sort is several times faster than torch.sort on CPU
    return arr


def _quantile_pairs(n_a: int, n_b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments of [0, 1] on which both empirical quantile functions are constant: their widths and the
    sorted-sample index of each set on them (so ``W1 = sum(width * |a[ia] - b[ib]|)`` exactly)."""
    edges = np.unique(np.concatenate([np.arange(1, n_a + 1) / n_a, np.arange(1, n_b + 1) / n_b]))
    widths = np.diff(edges, prepend=0.0)
    mids = edges - widths / 2
    ia = np.minimum((mids * n_a).astype(np.int64), n_a - 1)
    ib = np.minimum((mids * n_b).astype(np.int64), n_b - 1)
    return widths, ia, ib


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact Wasserstein-1 distance between the empirical distributions of each row of ``a`` and the same
    row of ``b`` (both sorted along the rows; the row lengths may differ)."""
    distance = _RowDistance(a.shape[1], b.shape[1])
    return np.array([distance.total(a[i : i + 1].copy(), b[i : i + 1].copy()) for i in range(len(a))])


class _RowDistance:
    """Sums of 1-D Wasserstein-1 distances between sorted rows, reusing its scratch memory (the rows hold
    millions of projections; fresh temporaries for each would mostly cost page faults)."""

    def __init__(self, n_a: int, n_b: int) -> None:
        self.n_a, self.n_b = n_a, n_b
        self.ratio = max(n_a, n_b) // min(n_a, n_b) if max(n_a, n_b) % min(n_a, n_b) == 0 else 0
        if not self.ratio:
            self.widths, self.ia, self.ib = _quantile_pairs(n_a, n_b)
            self.scratch_a = np.empty(len(self.widths), np.float32)
            self.scratch_b = np.empty(len(self.widths), np.float32)

    def total(self, a: np.ndarray, b: np.ndarray) -> float:
        """Sum over rows of W1(a[r], b[r]); overwrites the longer of the two."""
        a = np.ascontiguousarray(a, dtype=np.float32)
        b = np.ascontiguousarray(b, dtype=np.float32)
        if self.ratio:
            # one set r times larger: its sorted samples r*i .. r*i + r - 1 face sample i of the other
            if a.shape[1] < b.shape[1]:
                a, b = b, a
            long = a.reshape(a.shape[0], b.shape[1], self.ratio)
            np.subtract(long, b[:, :, None], out=long)
            np.abs(long, out=long)
            return float(long.sum(dtype=np.float64)) / a.shape[1]
        total = 0.0
        for row_a, row_b in zip(a, b):
            np.take(row_a, self.ia, out=self.scratch_a)
            np.take(row_b, self.ib, out=self.scratch_b)
            np.subtract(self.scratch_a, self.scratch_b, out=self.scratch_a)
            np.abs(self.scratch_a, out=self.scratch_a)
            total += float(np.dot(self.scratch_a, self.widths))
        return total


def sliced_wasserstein(desc_a: torch.Tensor, desc_b: torch.Tensor, directions: int = 512, repeats: int = 4,
                       generator: torch.Generator | None = None, chunk: int = 32) -> float:
    """Mean over ``repeats`` x ``directions`` random unit directions of the 1-D Wasserstein-1 distance between
    the projections of two descriptor sets ``[N_a, D]`` and ``[N_b, D]`` (``chunk`` directions at a time)."""
    dim = desc_a.shape[1]
    distance = _RowDistance(desc_a.shape[0], desc_b.shape[0])
    proj_a = desc_a.new_empty(chunk, desc_a.shape[0])
    proj_b = desc_b.new_empty(chunk, desc_b.shape[0])
    total = 0.0
    for _ in range(repeats):
        dirs = torch.randn(dim, directions, generator=generator)
        dirs = (dirs / dirs.norm(dim=0, keepdim=True)).to(desc_a)
        for j in range(0, directions, chunk):
            d = dirs[:, j : j + chunk].T
            pa, pb = proj_a[: d.shape[0]], proj_b[: d.shape[0]]
            torch.matmul(d, desc_a.T, out=pa)
            torch.matmul(d, desc_b.T, out=pb)
            total += distance.total(_sort_rows_(pa), _sort_rows_(pb))
    return total / (repeats * directions)


# -- the metric ------------------------------------------------------------------------------------------------
@torch.no_grad()
def swd(
    images_a: ImageSet,
    images_b: ImageSet,
    seed: int = 0,
    *,
    descriptors_per_image: int = 128,
    nhood_size: int = 7,
    min_resolution: int = 16,
    directions: int = 512,
    repeats: int = 4,
    batch: int = 256,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Multi-scale sliced Wasserstein distance between two image sets (x 1e3 per level, see the module doc).

    Args:
        images_a, images_b: uint8 or float ([-1, 1]) images: tensors ``[N, C, H, W]``, numpy arrays
            ``[N, H, W, C]``, or iterables of such batches. Both sets need the same image shape.
        seed: fixes the neighbourhood positions and the projection directions (same seed, same result).
        descriptors_per_image: 7x7 neighbourhoods cut per image and level.
        min_resolution: the coarsest level (16 as published).
        directions, repeats: random directions per repeat and number of repeats.
        batch: images per pyramid batch (memory only).
        device: where projections are computed (default CPU).

    Returns:
        ``{"levels": {resolution: distance}, "mean": average over levels, "num_images": (N_a, N_b),
        "descriptors": (N_a * K, N_b * K)}``.
    """
    a = collect_uint8(images_a)
    b = collect_uint8(images_b)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"both sets need the same image shape, got {list(a.shape[1:])} and {list(b.shape[1:])}")
    channels, height, width = a.shape[1:]
    if height != width:
        raise ValueError(f"SWD needs square images, got {height}x{width}")
    if min_resolution < nhood_size:
        raise ValueError(f"min_resolution ({min_resolution}) must be at least the neighbourhood size ({nhood_size})")
    resolutions = pyramid_resolutions(height, min_resolution)
    device = torch.device(device) if device is not None else torch.device("cpu")

    levels: dict[int, float] = {}
    for index, size in enumerate(resolutions):
        # same positions for image i of either set: a set against itself gives exactly 0
        n_max = max(a.shape[0], b.shape[0])
        positions = torch.randint(0, size - nhood_size + 1, (n_max, descriptors_per_image, 2),
                                  generator=_generator(seed, 0, index))
        desc_a = _level_descriptors(a, index, len(resolutions), positions[: a.shape[0]], nhood_size, batch)
        desc_b = _level_descriptors(b, index, len(resolutions), positions[: b.shape[0]], nhood_size, batch)
        _normalise_channels([desc_a, desc_b], channels)
        levels[size] = 1e3 * sliced_wasserstein(desc_a.to(device), desc_b.to(device), directions, repeats,
                                                generator=_generator(seed, 1, index))
        del desc_a, desc_b
    return {
        "levels": levels,
        "mean": float(np.mean(list(levels.values()))),
        "num_images": (int(a.shape[0]), int(b.shape[0])),
        "descriptors": (int(a.shape[0]) * descriptors_per_image, int(b.shape[0]) * descriptors_per_image),
    }
