"""Reading, checking, converting and writing images (the library's only image I/O).

Tensors are float ``[N, 3, H, W]`` in ``[-1, 1]``; files are RGB 8-bit. Bad input (not an image,
animated, huge, tiny, 16-bit, CMYK, ...) is either converted as a person would expect or rejected with a
message saying what is wrong and what to do.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # a 6300x6300 image; beyond this decoding alone can exhaust memory
MIN_SIDE = 8


class ImageError(ValueError):
    """An input image that cannot be used, with the reason and the way out in the message."""


def open_image(source: str | Path | bytes | Image.Image | np.ndarray) -> Image.Image:
    """Open and check an image from a path, bytes, a PIL image or an ``HxWx3`` uint8 array (RGB result)."""
    name = "image"
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3):
            raise ImageError(f"array images must be uint8 HxW or HxWxC, got {source.dtype} {source.shape}")
        img = Image.fromarray(source)
    elif isinstance(source, Image.Image):
        img = source
    else:
        name = str(source)[:200] if not isinstance(source, bytes) else "uploaded data"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
                w, h = img.size  # from the header: refuse huge images before decoding them
                if w * h > MAX_PIXELS:
                    raise ImageError(f"{name} is too large ({w}x{h}): downscale it below {MAX_PIXELS:,} pixels")
                img.load()
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file") from None
        except Image.DecompressionBombError:
            raise ImageError(f"{name} is too large (over {MAX_PIXELS:,} pixels): downscale it first") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"{name} is not an image file that can be read ({exc}); use PNG or JPEG") from None
    if getattr(img, "n_frames", 1) > 1:
        raise ImageError(f"{name} is animated ({img.n_frames} frames): save the frame you want as PNG or JPEG")
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{name} is too large ({w}x{h}): downscale it below {MAX_PIXELS:,} pixels")
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{name} is {w}x{h}: too small to invert (at least {MIN_SIDE}x{MIN_SIDE})")
    return _to_rgb(img)


def _to_rgb(img: Image.Image) -> Image.Image:
    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / float greyscale: rescale, don't clip
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I") and arr.max() > 255 else max(arr.max(), 1.0)
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def load_image(source: Any, resolution: int | None = None, *, crop: bool = False) -> torch.Tensor:
    """An image as ``[3, R, R]`` float in ``[-1, 1]``, resized to ``resolution`` if given.

    Square images of another size are resized (as the official IDInvert inverter does). Non-square ones
    raise unless ``crop=True``, which takes the centred square first.
    """
    img = open_image(source)
    w, h = img.size
    if w != h:
        if not crop:
            raise ImageError(f"image is {w}x{h}, not square: crop it to a square around the face (or pass "
                             "crop=True / --crop to take the centred square)")
        side = min(w, h)
        img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    if resolution is not None and img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return from_uint8(np.asarray(img))


def from_uint8(array: np.ndarray) -> torch.Tensor:
    """``HxWx3`` or ``NxHxWx3`` uint8 -> float ``[-1, 1]``, channels first."""
    t = torch.tensor(np.asarray(array), dtype=torch.float32) / 127.5 - 1.0
    return t.permute(2, 0, 1) if t.ndim == 3 else t.permute(0, 3, 1, 2)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float images in ``[-1, 1]`` (``[N,C,H,W]`` or ``[C,H,W]``) -> uint8 ``[N,H,W,C]`` / ``[H,W,C]``,
    rounded the way the official code does it: ``clip((x + 1) * 127.5 + 0.5)`` then truncation."""
    x = images.detach().float().cpu()
    x = ((x + 1.0) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)
    return (x.permute(1, 2, 0) if x.ndim == 3 else x.permute(0, 2, 3, 1)).numpy()


def make_grid(images: torch.Tensor | np.ndarray, nrow: int | None = None, padding: int = 2,
              pad_value: int = 255) -> np.ndarray:
    """Tile a batch into one uint8 image, ``nrow`` images per row (default: a near-square grid)."""
    arr = to_uint8(images) if isinstance(images, torch.Tensor) else np.asarray(images)
    n, h, w, c = arr.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / nrow))
    grid = np.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), pad_value, np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = arr[i]
    return grid


def save_image(image: torch.Tensor | np.ndarray, path: str | Path) -> Path:
    """Write one image (float ``[C,H,W]`` in [-1,1], or uint8 ``HxWxC``) or a uint8 grid as PNG/JPEG."""
    arr = to_uint8(image) if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            arr = make_grid(arr)
        else:
            arr = arr[0]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def save_strip(frames: Sequence[np.ndarray] | torch.Tensor, path: str | Path) -> Path:
    """Frames side by side in one row (interpolation strips, manipulation steps)."""
    arr = to_uint8(frames) if isinstance(frames, torch.Tensor) else np.stack(list(frames))
    return save_image(make_grid(arr, nrow=len(arr)), path)
