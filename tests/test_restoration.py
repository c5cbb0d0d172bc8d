"""Restoration by inversion (inverters/restoration.py, cli_restore.py): each degradation operator matches its
definition, the refiners fit the degraded observation, the consistent output reproduces it exactly, and
``idinvert restore`` runs end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_stylegan2
from PIL import Image

from idinvert_plugins import get_inverter
from idinvert_plugins.images import save_image
from idinvert_plugins.inverters import Composition
from idinvert_plugins.inverters.noise import Masking
from idinvert_plugins.inverters.restoration import (
    Colorization,
    Downsample,
    Grayscale,
    SuperResolution,
    baseline,
    centre_hole,
    consistent,
    degrade,
    prepare_input,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _images(n=2, seed=0, size=16):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_downsample_is_the_mean_of_each_block():
    x = _images(size=16)
    low = Downsample(4)(x)
    assert low.shape == (2, 3, 4, 4)
    for i, j in ((0, 0), (1, 3), (3, 2)):
        torch.testing.assert_close(low[:, :, i, j], x[:, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4].mean((2, 3)))
    view = Downsample(4).view(x)
    assert view.shape == x.shape and torch.equal(view[:, :, 4:8, 12:16], low[:, :, 1:2, 3:4].expand(-1, -1, 4, 4))
    # the refiner's input made from a low-resolution image gives that image back exactly
    torch.testing.assert_close(Downsample(4)(prepare_input("superres", low, 16)), low, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="do not split"):
        Downsample(3)(x)
    with pytest.raises(ValueError, match="must be 4x4"):
        prepare_input("superres", _images(size=8), 16)


def test_grayscale_is_the_bt601_luma():
    x = _images()
    gray = Grayscale()(x)
    assert gray.shape == (2, 1, 16, 16)
    torch.testing.assert_close(gray[:, 0], 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    assert torch.equal(Grayscale()(gray), gray)  # one channel passes through
    view = Grayscale().view(x)
    assert view.shape == x.shape and torch.equal(view[:, 1], gray[:, 0])
    white = torch.ones(1, 3, 4, 4)
    torch.testing.assert_close(Grayscale()(white), torch.ones(1, 1, 4, 4))  # the weights sum to 1


def test_masking_keeps_only_the_known_pixels():
    x = _images()
    known = centre_hole(16)
    assert float(1 - known.mean()) == pytest.approx(0.25)  # a centred hole of a quarter of the area
    masked = Masking(known)(x)
    assert torch.equal(masked[..., 6:10, 6:10], torch.zeros(2, 3, 4, 4))
    assert torch.equal(masked * known, x * known)
    torch.testing.assert_close(degrade("inpaint", x, known=known), masked)


def test_baselines_and_consistent_outputs():
    x = _images()
    low = degrade("superres", x)
    up = baseline("superres", low)
    expected = torch.nn.functional.interpolate(low, scale_factor=4, mode="bicubic", align_corners=False)
    torch.testing.assert_close(up, expected.clamp(-1, 1))
    gray = degrade("colorize", x)
    torch.testing.assert_close(baseline("colorize", gray), gray)
    known = centre_hole(16)
    filled = baseline("inpaint", degrade("inpaint", x, known=known), known=known)
    mean = (x * known).sum((2, 3)) / known.sum()
    torch.testing.assert_close(filled[:, :, 7, 7], mean)
    assert torch.equal(filled * known, x * known)
    # consistent(): any render corrected to reproduce the observation exactly
    render = _images(seed=3)
    torch.testing.assert_close(Downsample(4)(consistent("superres", render, low)), low, atol=1e-6, rtol=0)
    torch.testing.assert_close(Grayscale()(consistent("colorize", render, gray)), Grayscale()(gray), atol=1e-6,
                               rtol=0)
    fixed = consistent("inpaint", render, degrade("inpaint", x, known=known), known=known)
    assert torch.equal(fixed * known, x * known) and torch.equal(fixed * (1 - known), render * (1 - known))


def _targets(n=2):
    other = tiny_stylegan2(seed=1)
    with torch.no_grad():
        return other.synthesis(other.to_wplus(other.mapping(other.sample_z(n, seed=5))))


@pytest.mark.parametrize("refiner,task", [(SuperResolution(), "superres"), (Colorization(), "colorize")])
def test_refiners_fit_the_degraded_observation_only(refiner, task):
    G = tiny_stylegan2()
    x = _targets()
    observed = degrade(task, x)
    inputs = prepare_input(task, observed, 16)
    result = Composition(task, "mean", (refiner,)).invert(G, inputs, steps=25, lr=0.05)
    D = Downsample(4) if task == "superres" else Grayscale()
    with torch.no_grad():
        err = (D(result.images) - D(x)).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(err, torch.tensor(result.final_losses["pix"]), rtol=1e-4, atol=1e-7)
    assert all(result.final_losses["pix"][i] < 0.7 * result.losses[0]["pix"][i] for i in range(2))
    # what D throws away does not reach the objective: another image with the same observation, same result
    if task == "superres":
        same = inputs + (torch.rand_like(inputs) - 0.5) * 0.2
        same = same - prepare_input(task, Downsample(4)(same) - observed, 16)  # keep every block's mean
    else:
        shift = (torch.rand(2, 1, 16, 16) - 0.5) * 0.2
        same = inputs + shift * torch.tensor([1.0, -0.299 / 0.587, 0.0]).view(1, 3, 1, 1)  # luma unchanged
    torch.testing.assert_close(D(same), D(inputs), atol=1e-6, rtol=0)
    again = Composition(task, "mean", (refiner,)).invert(G, same, steps=25, lr=0.05)
    torch.testing.assert_close(again.latent.wp, result.latent.wp, atol=1e-4, rtol=0)


def test_restoration_methods_are_registered():
    for name, refiner in (("superres", "superres"), ("colorize", "colorize"), ("inpaint", "inpaint")):
        method = get_inverter(name)
        assert method.embedder.name == "mean" and [r.name for r in method.refiners] == [refiner]
    assert {p.name for p in get_inverter("superres").params} >= {"factor", "steps", "noise"}


def test_restore_command(tmp_path, capsys):
    from app_fixtures import make_tiny_model

    from idinvert_plugins.cli import main
    from idinvert_plugins.codes import load_latent
    from idinvert_plugins.images import load_image

    folder = make_tiny_model(tmp_path / "models")
    x = _targets(n=1)
    save_image(x[0], tmp_path / "face.png")
    save_image(Downsample(2)(x)[0], tmp_path / "low.png")  # x2: 8x8 (the smallest image that loads)
    out = tmp_path / "sr"
    assert main(["restore", str(folder), str(tmp_path / "low.png"), "--task", "superres", "--factor", "2",
                 "--steps", "3", "-o", str(out)]) == 0
    assert "superres" in capsys.readouterr().out
    G = tiny_stylegan2()
    latent = load_latent(out / "low.safetensors", G)
    assert latent.info["method"] == "encoder+superres"
    fixed = load_image(out / "low_consistent.png", 16)
    low = load_image(tmp_path / "low.png")
    restored = load_image(out / "low.png", 16)
    # the consistent picture's blocks average to the input (up to 8-bit rounding and the [-1, 1] clip)
    off = float((Downsample(2)(fixed[None])[0] - low).abs().mean())
    assert off < 0.02 and off < 0.2 * float((Downsample(2)(restored[None])[0] - low).abs().mean())
    strip = Image.open(out / "low_strip.png")
    assert strip.size[0] > 3.5 * strip.size[1]  # observation | baseline | restored | consistent (padded)
    capsys.readouterr()
    assert main(["restore", str(folder), str(tmp_path / "low.png"), "--task", "superres", "--factor", "2", "-o",
                 str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["restore", str(folder), str(tmp_path / "face.png"), "--task", "superres", "-o",
                 str(tmp_path / "b")]) == 2
    assert "must be 4x4" in capsys.readouterr().err
    # clean inputs degraded first: PSNRs printed; inpainting with a hole file
    hole = np.zeros((16, 16), np.uint8)
    hole[4:12, 4:12] = 255
    Image.fromarray(hole).save(tmp_path / "hole.png")
    assert main(["restore", str(folder), str(tmp_path / "face.png"), "--task", "inpaint", "--hole",
                 str(tmp_path / "hole.png"), "--degrade", "--embed", "mean", "--steps", "3",
                 "-o", str(tmp_path / "inp")]) == 0
    printed = capsys.readouterr().out
    assert "PSNR baseline" in printed and "consistent" in printed
    filled = load_image(tmp_path / "inp" / "face_consistent.png", 16)
    face = load_image(tmp_path / "face.png", 16)
    assert float((filled[:, :4] - face[:, :4]).abs().max()) < 2 / 127.5  # known rows are the input's
    assert main(["restore", str(folder), str(tmp_path / "face.png"), "--task", "inpaint", "-o",
                 str(tmp_path / "c")]) == 2
    assert "needs --hole" in capsys.readouterr().err
