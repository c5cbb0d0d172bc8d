"""Image2StyleGAN++ as built-in refiners (inverters/noise.py, inverters/masked.py): noise maps optimised with W+
under the StyleGAN2 projector's regularisation; inpainting and crossover objectives that see only their pixels."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_stylegan, tiny_stylegan2

from idinvert_plugins import get_inverter
from idinvert_plugins.codes import load_latent, save_latent
from idinvert_plugins.images import save_image
from idinvert_plugins.inverters import Composition
from idinvert_plugins.inverters.masked import Crossover, Inpainting, load_mask
from idinvert_plugins.inverters.noise import (
    NoiseOptimization,
    initial_noise,
    noise_regularization,
    normalize_noise_,
)
from idinvert_plugins.inverters.refiners import WPlusOptimization
from idinvert_plugins.latent import Latent, render

pytestmark = pytest.mark.usefixtures("one_thread")


def _noisy(make, strength=0.3):
    """Tiny generators start with zero noise strength (untrained); give them some, as trained ones have."""
    G = make()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith(("noise_strength", "noise_weight")):
                p.fill_(strength)
    return G


def _targets(n=2, seed=5):
    """Images the tiny generator cannot render exactly: another generator's samples."""
    other = tiny_stylegan2(seed=1)
    with torch.no_grad():
        return other.synthesis(other.to_wplus(other.mapping(other.sample_z(n, seed=seed))))


def test_noise_regularization_is_the_projectors_autocorrelation_penalty():
    g = torch.Generator().manual_seed(0)
    white = torch.randn(2, 1, 8, 8, generator=g)
    expected = ((white * torch.roll(white, 1, dims=3)).mean((1, 2, 3)) ** 2
                + (white * torch.roll(white, 1, dims=2)).mean((1, 2, 3)) ** 2)
    torch.testing.assert_close(noise_regularization({"a": white}), expected)
    # 16x16: the full scale plus the 2x2-averaged 8x8 scale
    big = torch.randn(1, 1, 16, 16, generator=g)
    half = torch.nn.functional.avg_pool2d(big, 2)
    two_scales = sum((m * torch.roll(m, 1, dims=d)).mean() ** 2 for m in (big, half) for d in (2, 3))
    torch.testing.assert_close(noise_regularization([big]), two_scales.reshape(1))
    smooth = torch.nn.functional.interpolate(torch.randn(1, 1, 4, 4, generator=g), size=16, mode="bilinear")
    normalize_noise_([smooth])
    assert float(noise_regularization([smooth])) > 50 * float(noise_regularization([big]))
    torch.testing.assert_close(smooth.mean(), torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(smooth.pow(2).mean(), torch.tensor(1.0))


@pytest.mark.parametrize("make", [tiny_stylegan2, tiny_stylegan], ids=["stylegan2", "stylegan"])
def test_stored_noise_maps_render_exactly_as_const(make):
    G = _noisy(make)
    wp = G.to_wplus(G.mapping(G.sample_z(2, seed=3))).detach()
    maps = initial_noise(G, 2, "stored")
    assert set(maps) == set(G.noise_shapes()) and all(m.shape[0] == 2 for m in maps.values())
    with torch.no_grad():
        assert torch.equal(render(G, Latent(wp, {"noise": maps})), G.synthesis(wp, noise_mode="const"))
        assert not torch.equal(render(G, Latent(wp, {"noise": initial_noise(G, 2, "random")})), G.synthesis(wp))


def test_noise_optimisation_lowers_the_error_below_wplus_alone_for_the_same_steps(tmp_path):
    G = _noisy(tiny_stylegan2)
    x = _targets(n=2)
    steps = 40
    wplus = Composition("w+", "mean", (WPlusOptimization(),)).invert(G, x, steps=steps, lr=0.05)
    noise = Composition("w+n", "mean", (NoiseOptimization(),)).invert(G, x, steps=steps, lr=0.05)
    assert len(noise.losses) == steps and noise.info["noise_steps"] == steps
    assert set(noise.latent.parts) == {"noise"}
    mse_wplus = torch.tensor(wplus.final_losses["pix"])
    mse_noise = torch.tensor(noise.final_losses["pix"])
    assert torch.all(mse_noise < 0.8 * mse_wplus), (mse_noise, mse_wplus)
    # renormalised after every noise step: zero mean, unit variance per map and image
    for m in noise.latent.parts["noise"].values():
        torch.testing.assert_close(m.mean((1, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
        torch.testing.assert_close(m.pow(2).mean((1, 2, 3)), torch.ones(2), atol=1e-4, rtol=0)
    # the latent is what was measured, and survives a code file
    with torch.no_grad():
        torch.testing.assert_close(render(G, noise.latent), noise.images)
    path = save_latent(noise.latent[1], tmp_path / "n.safetensors", generator="tiny", method="image2stylegan++")
    assert torch.equal(render(G, load_latent(path, G)), render(G, noise.latent[1]))


def test_alternation_freezes_the_codes_during_noise_phases():
    G = _noisy(tiny_stylegan2)
    x = _targets(n=1)
    codes = []
    result = Composition("alt", "mean", (NoiseOptimization(),)).invert(
        G, x, steps=12, lr=0.05, switch_every=3, callback=lambda step, wp, terms: codes.append(wp))
    assert result.info["noise_steps"] == 6
    moved = [not torch.equal(codes[i], codes[i - 1]) for i in range(1, 12)]
    # steps 1-3 W+, 4-6 noise, 7-9 W+, 10-12 noise (codes[i] is after step i + 1)
    assert moved == [True, True, False, False, False, True, True, True, False, False, False]


def test_noise_regularisation_keeps_the_maps_white():
    G = _noisy(tiny_stylegan2)
    x = _targets(n=1)
    kw = dict(steps=20, lr=0.05, switch_every=0, normalize_noise=False)
    free = Composition("a", "mean", (NoiseOptimization(),)).invert(G, x, l_noise_reg=0.0, **kw)
    held = Composition("b", "mean", (NoiseOptimization(),)).invert(G, x, l_noise_reg=1e3, **kw)
    assert held.final_losses["noise_reg"][0] < 0.2 * free.final_losses["noise_reg"][0]


def test_image2stylegan_pp_is_a_registered_method():
    method = get_inverter("image2stylegan++")
    assert method.embedder.name == "mean" and [r.name for r in method.refiners] == ["noise"]
    G = _noisy(tiny_stylegan2)
    result = method.invert(G, _targets(n=1), steps=4)
    assert set(result.latent.parts) == {"noise"} and result.info["refine"] == ["noise"]


def _hole(resolution=16):
    hole = torch.zeros(1, 1, resolution, resolution)
    hole[..., 4:12, 4:12] = 1
    return hole


def test_inpainting_ignores_the_pixels_in_the_hole():
    G = _noisy(tiny_stylegan2)
    x = _targets(n=2)
    hole = _hole()
    scribbled = x.clone()
    scribbled[:, :, 4:12, 4:12] = torch.rand(2, 3, 8, 8) * 2 - 1
    method = Composition("inpaint", "mean", (Inpainting(),))
    a = method.invert(G, x, steps=10, lr=0.05, hole=hole, noise=True, switch_every=3)
    b = method.invert(G, scribbled, steps=10, lr=0.05, hole=hole, noise=True, switch_every=3)
    assert torch.equal(a.latent.wp, b.latent.wp)
    assert all(torch.equal(a.latent.parts["noise"][k], b.latent.parts["noise"][k]) for k in a.latent.parts["noise"])
    # what it minimised is the error on the known pixels only
    known = 1 - hole
    with torch.no_grad():
        err = ((render(G, a.latent) - x) * known).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(err, torch.tensor(a.final_losses["pix"]), rtol=1e-4, atol=1e-7)
    assert all(a.final_losses["pix"][i] < a.losses[0]["pix"][i] for i in range(2))
    # the same problem through Inverter.invert(mask=) (1 = known) gives the same result
    c = method.invert(G, x, steps=10, lr=0.05, mask=known, noise=True, switch_every=3)
    torch.testing.assert_close(c.latent.wp, a.latent.wp)


def test_crossover_fits_each_image_in_its_region_and_ignores_the_rest():
    G = _noisy(tiny_stylegan2)
    a, b = _targets(n=1, seed=5), _targets(n=1, seed=9)
    region = torch.zeros(16, 16)
    region[:8] = 1  # top half from a, bottom half from b
    method = Composition("x", "mean", (Crossover(),))
    result = method.invert(G, a, steps=25, lr=0.05, other=b[0], region=region)
    top, bottom = (slice(None), slice(None), slice(0, 8)), (slice(None), slice(None), slice(8, 16))
    out = result.images
    assert float((out[top] - a[top]).pow(2).mean()) < float((out[top] - b[top]).pow(2).mean())
    assert float((out[bottom] - b[bottom]).pow(2).mean()) < float((out[bottom] - a[bottom]).pow(2).mean())
    # a's bottom and b's top never reach the objective
    a2, b2 = a.clone(), b.clone()
    a2[bottom], b2[top] = 0.7, -0.3
    again = method.invert(G, a2, steps=25, lr=0.05, other=b2, region=region)
    assert torch.equal(again.latent.wp, result.latent.wp)
    with pytest.raises(ValueError, match="parameter 'other' is required"):
        method.invert(G, a, steps=1, region=region)


def test_masks_load_from_files_tensors_and_arrays(tmp_path):
    import numpy as np
    from PIL import Image

    images = torch.zeros(2, 3, 16, 16)
    picture = np.zeros((32, 32), np.uint8)
    picture[:16] = 255  # top half white, at twice the resolution
    Image.fromarray(picture).save(tmp_path / "m.png")
    m = load_mask(tmp_path / "m.png", images)
    assert m.shape == (1, 1, 16, 16) and float(m[..., :8, :].min()) == 1 and float(m[..., 8:, :].max()) == 0
    assert torch.equal(load_mask(str(tmp_path / "m.png"), images), m)
    assert torch.equal(load_mask(np.asarray(m[0, 0]), images), m)
    assert torch.equal(load_mask(m[0].expand(3, -1, -1), images), m)
    with pytest.raises(ValueError, match="no file"):
        load_mask(tmp_path / "missing.png", images)
    with pytest.raises(ValueError, match="must be"):
        load_mask(torch.zeros(5, 1, 16, 16), images)
    G = tiny_stylegan2()
    with pytest.raises(ValueError, match="needs the hole"):
        Composition("i", "mean", (Inpainting(),)).invert(G, _targets(n=1), steps=1)
    with pytest.raises(ValueError, match="covers a whole image"):
        Composition("i", "mean", (Inpainting(),)).invert(G, _targets(n=1), steps=1, hole=torch.ones(16, 16))


def test_inpaint_and_image2stylegan_pp_from_the_command_line(tmp_path, capsys):
    from app_fixtures import make_tiny_model
    from PIL import Image

    from idinvert_plugins.cli import main

    folder = make_tiny_model(tmp_path / "models")
    G = tiny_stylegan2()
    save_image(_targets(n=1)[0], tmp_path / "a.png")
    Image.fromarray((_hole()[0, 0].numpy() * 255).astype("uint8")).save(tmp_path / "hole.png")
    out = tmp_path / "inp"
    assert main(["invert", str(folder), str(tmp_path / "a.png"), "--method", "inpaint", "--set",
                 f"hole={tmp_path / 'hole.png'}", "--set", "steps=3", "-o", str(out)]) == 0
    assert load_latent(out / "a.safetensors", G).info["method"] == "inpaint"
    out2 = tmp_path / "i2s"
    assert main(["invert", str(folder), str(tmp_path / "a.png"), "--embed", "mean", "--refine", "noise",
                 "--set", "noise.steps=4", "--set", "switch_every=2", "-o", str(out2)]) == 0
    assert "noise" in capsys.readouterr().out
    assert set(load_latent(out2 / "a.safetensors", G).parts) == {"noise"}
