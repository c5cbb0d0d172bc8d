"""The command line end to end: convert every official fixture, load it by path, generate a grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import reference_dir
from PIL import Image

from idinvert_plugins import load_generator
from idinvert_plugins.cli import main, parse_seeds

CASES = [
    # family, checkpoint, io file, (z key, W+ key, image-from-W+ key)
    ("idinvert", "idinvert_stylegan64_generator.pth", "idinvert_stylegan64_io.npz", ("wp", "image_from_wp")),
    ("idinvert", "idinvert_stylegan128_fused_generator.pth", "idinvert_stylegan128_fused_io.npz",
     ("wp", "image_from_wp")),
    ("rosinality", "rosinality_stylegan2_64.pt", "rosinality_stylegan2_64_io.npz", ("wplus", "image_from_wplus")),
    ("nvlabs", "nvlabs_stylegan2ada_64_G_ema_state_dict.pt", "nvlabs_stylegan2ada_64_io.npz",
     ("ws_plus", "image_from_ws_plus_const")),
]


@pytest.mark.parametrize("family,ckpt,io_file,keys", CASES, ids=[c[1].split(".")[0] for c in CASES])
def test_convert_load_and_match_reference(tmp_path, capsys, family, ckpt, io_file, keys):
    folder = reference_dir(family)
    out = tmp_path / "model"
    assert main(["convert", str(folder / ckpt), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "README.md"}
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: idinvert-plugins" in card
    G = load_generator(out)
    io = np.load(folder / io_file)
    with torch.no_grad():
        img = G.synthesis(torch.from_numpy(io[keys[0]]), noise_mode="const")
    assert float((img - torch.from_numpy(io[keys[1]])).abs().max()) < 1e-4
    # generate a grid from the converted model
    grid = tmp_path / "grid.png"
    assert main(["generate", str(out), "--seeds", "0-5", "--truncation", "0.7", "--nrow", "3", "-o", str(grid)]) == 0
    png = Image.open(grid)
    r = G.resolution
    assert png.size == (3 * (r + 2) + 2, 2 * (r + 2) + 2) and png.mode == "RGB"
    assert np.asarray(png).std() > 5  # real content, not a blank canvas


def test_convert_errors(tmp_path, capsys):
    bogus = tmp_path / "bogus.pt"
    torch.save({"something": torch.zeros(2)}, bogus)
    assert main(["convert", str(bogus), "-o", str(tmp_path / "o")]) == 2
    assert "no converter recognises this checkpoint" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "o")]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
    ref = reference_dir("rosinality") / "rosinality_stylegan2_64.pt"
    assert main(["convert", str(ref), "-o", str(tmp_path / "o"), "--format", "nosuch"]) == 2
    assert ("unknown converter 'nosuch'. Known: e4e, genforce, nvlabs, psp, restyle, rosinality"
            in capsys.readouterr().err)


def test_info_and_models(tmp_path, capsys):
    ref = reference_dir("rosinality") / "rosinality_stylegan2_64.pt"
    main(["convert", str(ref), "-o", str(tmp_path / "m")])
    capsys.readouterr()
    assert main(["info", str(tmp_path / "m")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"] == "stylegan2" and info["num_layers"] == 10 and info["resolution"] == 64
    assert main(["info", "no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


def test_parse_seeds():
    assert parse_seeds("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="bad seed list"):
        parse_seeds("a-b")


def test_invert_command_writes_reconstructions_and_codes(tmp_path, capsys):
    from safetensors.torch import load_file

    from idinvert_plugins.hub import load_encoder
    from idinvert_plugins.images import load_image, save_image

    folder = reference_dir("idinvert")
    gen, enc = tmp_path / "gen", tmp_path / "enc"
    assert main(["convert", str(folder / "idinvert_stylegan64_generator.pth"), "-o", str(gen)]) == 0
    assert main(["convert", str(folder / "idinvert_stylegan64_encoder.pth"), "-o", str(enc)]) == 0
    io = np.load(folder / "idinvert_stylegan64_io.npz")
    paths = [save_image(torch.from_numpy(io["image_from_wp"][i]), tmp_path / f"face{i}.png") for i in range(2)]
    capsys.readouterr()
    out = tmp_path / "inv"
    assert main(["invert", str(gen), *map(str, paths), "--encoder", str(enc), "--steps", "3", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "face0.png: mse " in printed and "2 image(s) inverted with idinvert" in printed
    for p in paths:
        assert Image.open(out / f"{p.stem}.png").size == (64, 64)
        assert load_file(out / f"{p.stem}.safetensors")["code"].shape == (10, 512)
    # encoder-only codes are exactly E(x) of the decoded PNG
    assert main(["invert", str(gen), str(paths[0]), "--method", "encoder", "--encoder", str(enc), "-o",
                 str(tmp_path / "enc_only")]) == 0
    E = load_encoder(enc)
    with torch.no_grad():
        expected = E(load_image(paths[0], 64)[None])[0]
    assert torch.allclose(load_file(tmp_path / "enc_only" / "face0.safetensors")["code"], expected, atol=1e-6)
    capsys.readouterr()
    assert main(["invert", str(gen), str(paths[0]), "-o", str(tmp_path / "x")]) == 2
    assert "--method idinvert needs a domain-guided encoder" in capsys.readouterr().err
    # --bf16: the optimisation in bfloat16 autocast lands close to the float32 codes; the encoder has no such option
    assert main(["invert", str(gen), str(paths[0]), "--encoder", str(enc), "--steps", "3", "--bf16", "-o",
                 str(tmp_path / "bf16")]) == 0
    fast, exact, init = (load_file(tmp_path / d / "face0.safetensors")["code"] for d in ("bf16", "inv", "enc_only"))
    assert not torch.equal(fast, exact) and (fast - exact).abs().mean() < 0.1 * (exact - init).abs().mean()
    capsys.readouterr()
    assert main(["invert", str(gen), str(paths[0]), "--method", "encoder", "--encoder", str(enc), "--bf16", "-o",
                 str(tmp_path / "y")]) == 2
    assert "--bf16 applies to optimising inverters" in capsys.readouterr().err
