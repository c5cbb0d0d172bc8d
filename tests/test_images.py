"""Image input checks: what a person uploads either converts sensibly or fails with a clear message."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from idinvert_plugins.images import ImageError, load_image, make_grid, open_image, save_image, to_uint8


def png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_round_trip_uint8_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    x = load_image(arr)
    assert x.shape == (3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(to_uint8(x), arr)
    path = save_image(x, tmp_path / "a.png")
    assert np.array_equal(np.asarray(Image.open(path)), arr)


def test_to_uint8_matches_official_postprocess():
    x = torch.tensor([-1.5, -1.0, -0.0039, 0.0, 0.5, 1.0, 2.0]).view(1, 1, 7).expand(3, 1, 7)
    expected = np.clip((x.numpy() + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    assert np.array_equal(to_uint8(x), expected)


def test_modes_are_converted():
    rgba = Image.new("RGBA", (12, 12), (255, 0, 0, 0))  # fully transparent -> white background
    assert np.all(to_uint8(load_image(png_bytes(rgba))) == 255)
    grey16 = Image.fromarray(np.full((12, 12), 65535, dtype=np.uint16))
    assert np.all(to_uint8(load_image(png_bytes(grey16))) == 255)
    cmyk = Image.new("CMYK", (12, 12), (0, 0, 0, 0))
    assert np.all(to_uint8(load_image(png_bytes(cmyk, "JPEG", quality=100))) >= 250)


def test_bad_inputs_have_clear_messages(tmp_path):
    with pytest.raises(ImageError, match="not an image file"):
        open_image(b"definitely not an image")
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="animated .2 frames."):
        open_image(buf.getvalue())
    with pytest.raises(ImageError, match="1x1: too small"):
        open_image(png_bytes(Image.new("RGB", (1, 1))))
    with pytest.raises(ImageError, match="not square.*crop"):
        load_image(png_bytes(Image.new("RGB", (20, 12))), 16)
    assert load_image(png_bytes(Image.new("RGB", (20, 12))), 16, crop=True).shape == (3, 16, 16)
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "missing.png")


def test_huge_images_are_refused_before_decoding():
    big = Image.new("L", (8000, 6000))
    data = png_bytes(big)
    with pytest.raises(ImageError, match="too large"):
        open_image(data)


def test_grid_layout():
    imgs = np.zeros((5, 4, 4, 3), np.uint8)
    imgs[4] = 200
    grid = make_grid(imgs, nrow=3, padding=1)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1, 3)
    assert grid[6, 6, 0] == 200 and grid[1, 1, 0] == 0 and grid[0, 0, 0] == 255
