"""The editing commands end to end on tiny random models: edit, interpolate, mix, diffuse, directions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_stylegan2
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from idinvert_plugins.cli import main
from idinvert_plugins.editors.directions import Direction, save_directions
from idinvert_plugins.hub import save_pretrained
from idinvert_plugins.images import save_image, to_uint8
from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder

R = 16


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny generator folder with two saved directions, a tiny encoder, two codes and two images."""
    tmp = tmp_path_factory.mktemp("edit")
    G = tiny_stylegan2(R)
    model = save_pretrained(G, tmp / "gen", kind="generator")
    g = torch.Generator().manual_seed(0)
    dirs = {"smile": Direction(torch.randn(G.w_dim, generator=g), name="smile", accuracy=0.9, source="test"),
            "glasses": Direction(torch.randn(G.w_dim, generator=g), name="glasses", layers=[0, 1, 2])}
    save_directions(list(dirs.values()), model / "directions")
    torch.manual_seed(1)
    E = IDInvertEncoder(resolution=R, num_layers=G.num_layers, w_dim=G.w_dim, channel_base=8, channel_max=16)
    encoder = save_pretrained(E.eval(), tmp / "enc", kind="encoder")
    with torch.no_grad():
        codes = G.to_wplus(G.mapping(G.sample_z(2, seed=4)))
        images = G.synthesis(codes, noise_mode="const")
    paths = {}
    for i, name in enumerate("ab"):
        save_file({"code": codes[i].contiguous()}, str(tmp / f"{name}.safetensors"))
        paths[name] = str(tmp / f"{name}.safetensors")
        paths[f"{name}.png"] = str(save_image(images[i], tmp / f"{name}.png"))
    return {"tmp": tmp, "G": G, "model": str(model), "encoder": str(encoder), "codes": codes, "dirs": dirs,
            **paths}


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _render(G, code: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return to_uint8(G.synthesis(code[None], noise_mode="const")[0]).astype(int)


def _tiles(strip: np.ndarray, n: int, size: int = R, pad: int = 2) -> list[np.ndarray]:
    assert strip.shape[:2] == (size + 2 * pad, n * (size + pad) + pad), strip.shape
    return [strip[pad : pad + size, pad + i * (size + pad) : pad + i * (size + pad) + size] for i in range(n)]


def test_edit_a_code_by_direction_name(setup, capsys):
    s, out = setup, setup["tmp"] / "smile.png"
    assert main(["edit", "--model", s["model"], "--code", s["a"], "--edit", "smile=+2.5", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "smile: strength +2.5 along test, held-out accuracy 0.900; moved layers 0..5" in printed
    img = _png(out)
    assert img.shape == (R, R, 3)
    expected = _render(s["G"], s["codes"][0] + 2.5 * s["dirs"]["smile"].vector)
    assert np.abs(img - expected).max() <= 1
    assert np.abs(img - _render(s["G"], s["codes"][0])).max() > 5  # the edit changed the image


def test_two_edits_add_up_and_the_strip_shows_each(setup, capsys):
    s, out, code_out = setup, setup["tmp"] / "two.png", setup["tmp"] / "two.safetensors"
    assert main(["edit", "--model", s["model"], "--code", s["a"], "--edit", "smile=1", "--edit", "glasses=-2",
                 "--strip", "--save-code", str(code_out), "-o", str(out)]) == 0
    n_smile, n_glasses = s["dirs"]["smile"].vector, s["dirs"]["glasses"].vector
    offset = torch.zeros(s["G"].num_layers, s["G"].w_dim)
    offset += n_smile
    offset[:3] -= 2 * n_glasses  # the glasses direction edits layers 0-2 only
    expected = s["codes"][0] + offset
    with safe_open(str(code_out), framework="pt") as f:
        torch.testing.assert_close(f.get_tensor("code"), expected, atol=1e-5, rtol=0)
    assert np.abs(_png(out) - _render(s["G"], expected)).max() <= 1
    tiles = _tiles(_png(setup["tmp"] / "two_strip.png"), 4)  # reconstruction, smile, glasses, both
    assert np.abs(tiles[0] - _render(s["G"], s["codes"][0])).max() <= 1
    assert np.abs(tiles[2] - _render(s["G"], s["codes"][0] - 2 * torch.cat([n_glasses.expand(3, -1),
                                                                            torch.zeros(3, 32)]))).max() <= 1
    assert np.abs(tiles[3] - _png(out)).max() == 0
    assert "moved layers 0..2" in capsys.readouterr().out


def test_edit_conditioned_on_another_direction(setup, capsys):
    s, out, code_out = setup, setup["tmp"] / "cond.png", setup["tmp"] / "cond.safetensors"
    assert main(["edit", "--model", s["model"], "--code", s["a"], "--edit", "smile=2", "--condition-on", "glasses",
                 "--save-code", str(code_out), "-o", str(out)]) == 0
    assert "conditioned on glasses" in capsys.readouterr().out
    with safe_open(str(code_out), framework="pt") as f:
        offset = f.get_tensor("code") - s["codes"][0]
    n_smile, n_glasses = s["dirs"]["smile"].vector, s["dirs"]["glasses"].vector
    assert torch.allclose(offset.norm(dim=-1), torch.full((6,), 2.0), atol=1e-4)  # every layer moved by 2
    assert float((offset @ n_glasses).abs().max()) < 1e-4  # nothing along the condition
    assert float(offset[0] @ n_smile) > 0.5  # but still along smile


def test_edit_inverts_an_image_and_respects_layers(setup, capsys):
    s, out = setup, setup["tmp"] / "inv.png"
    assert main(["edit", s["a.png"], "--model", s["model"], "--encoder", s["encoder"], "--steps", "2", "--edit",
                 "smile=1", "--layers", "2:4", "--strip", str(setup["tmp"] / "inv_strip.png"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "a.png: inverted with idinvert, mse " in printed and "moved layers 2..3" in printed
    tiles = _tiles(_png(setup["tmp"] / "inv_strip.png"), 3)  # input, reconstruction, edit
    assert np.abs(tiles[0] - _png(s["a.png"])).max() <= 1


def test_edit_errors(setup, capsys):
    s, out = setup, str(setup["tmp"] / "x.png")
    with pytest.raises(SystemExit):
        main(["edit", "--model", s["model"], "--code", s["a"], "--edit", "smile", "-o", out])
    assert "bad edit 'smile': expected NAME=STRENGTH, e.g. smile=+2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["edit", "--model", s["model"], "--code", s["a"], "--edit", "smile=lots", "-o", out])
    assert "bad edit 'smile=lots'" in capsys.readouterr().err
    assert main(["edit", "--model", s["model"], "--code", s["a"], "--edit", "smiel=1", "-o", out]) == 2
    assert "no direction 'smiel' in" in (err := capsys.readouterr().err) and "Available: glasses, smile" in err
    assert main(["edit", "--model", s["model"], "--code", s["a"], "-o", out]) == 2
    assert "no --edit given" in (err := capsys.readouterr().err) and "glasses, smile" in err
    assert main(["edit", "--model", s["model"], "--edit", "smile=1", "-o", out]) == 2
    assert "give an IMAGE to invert, or --code" in capsys.readouterr().err
    assert main(["edit", s["a.png"], "--model", s["model"], "--edit", "smile=1", "-o", out]) == 2
    assert "--method idinvert needs a domain-guided encoder" in capsys.readouterr().err
    assert main(["edit", "--model", s["model"], "--code", s["a.png"], "--edit", "smile=1", "-o", out]) == 2
    assert "is not a safetensors code file" in capsys.readouterr().err
    assert main(["edit", "--model", s["model"], "--code", s["a"], "--edit", "smile=1", "--layers", "3:9",
                 "-o", out]) == 2
    assert "not within this generator's 6 W+ layers" in capsys.readouterr().err


def test_interpolate_strip_endpoints_are_the_reconstructions(setup, capsys):
    s, out = setup, setup["tmp"] / "interp.png"
    assert main(["interpolate", s["a"], s["b"], "--model", s["model"], "--steps", "5", "-o", str(out)]) == 0
    tiles = _tiles(_png(out), 7)
    rec_a, rec_b = _render(s["G"], s["codes"][0]), _render(s["G"], s["codes"][1])
    for i, expected in ((0, rec_a), (1, rec_a), (5, rec_b), (6, rec_b)):
        assert np.abs(tiles[i] - expected).max() <= 1
    mid = _render(s["G"], (s["codes"][0] + s["codes"][1]) / 2)
    assert np.abs(tiles[3] - mid).max() <= 1
    assert "input A | 5 frames in W+ | input B" in capsys.readouterr().out
    # an image input is inverted (encoder only here) and its tile is the input image itself
    assert main(["interpolate", s["a.png"], s["b"], "--model", s["model"], "--method", "encoder", "--encoder",
                 s["encoder"], "--steps", "3", "-o", str(out)]) == 0
    tiles = _tiles(_png(out), 5)
    assert np.abs(tiles[0] - _png(s["a.png"])).max() == 0


def test_interpolate_in_w_takes_w_codes_and_refuses_w_plus_codes(setup, capsys):
    s, out = setup, setup["tmp"] / "interp_w.png"
    # W codes (one w repeated over the layers): W and W+ interpolation are the same strip
    assert main(["interpolate", s["a"], s["b"], "--model", s["model"], "--steps", "5", "--space", "w",
                 "-o", str(out)]) == 0
    assert "input A | 5 frames in W | input B" in capsys.readouterr().out
    mid = _render(s["G"], (s["codes"][0] + s["codes"][1]) / 2)
    assert np.abs(_tiles(_png(out), 7)[3] - mid).max() <= 1
    # a W+ code whose layers differ (what `idinvert invert` writes) is refused, saying why and what to use
    wplus = s["codes"][0].clone()
    wplus[3:] = s["codes"][1][3:]
    path = s["tmp"] / "wplus.safetensors"
    save_file({"code": wplus.contiguous()}, str(path))
    out.unlink()
    assert main(["interpolate", str(path), s["b"], "--model", s["model"], "--space", "w", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{path} is a W+ code whose 6 layers differ" in err and "averaging the layers" in err
    assert "Use --space wplus (the default)" in err
    assert not out.exists()
    # so is an inverted image (its code is W+), naming the image and the inverter
    assert main(["interpolate", s["a.png"], s["b"], "--model", s["model"], "--method", "encoder", "--encoder",
                 s["encoder"], "--space", "w", "-o", str(out)]) == 2
    assert "a.png (inverted with encoder) is a W+ code" in capsys.readouterr().err
    # and the same strip in W+ works
    assert main(["interpolate", str(path), s["b"], "--model", s["model"], "--steps", "3", "-o", str(out)]) == 0
    assert np.abs(_tiles(_png(out), 5)[1] - _render(s["G"], wplus)).max() <= 1


def test_mix_takes_the_layers_from_b(setup):
    s, out = setup, setup["tmp"] / "mix.png"
    assert main(["mix", s["a"], s["b"], "--model", s["model"], "--layers", "3", "--strip", "-o", str(out)]) == 0
    expected = torch.cat([s["codes"][0][:3], s["codes"][1][3:]])
    assert np.abs(_png(out) - _render(s["G"], expected)).max() <= 1
    assert len(_tiles(_png(setup["tmp"] / "mix_strip.png"), 3)) == 3


def test_diffuse_runs_and_checks_its_box(setup, capsys):
    s, out, stitched = setup, setup["tmp"] / "diff.png", setup["tmp"] / "stitched.png"
    assert main(["diffuse", s["a.png"], s["b.png"], "--model", s["model"], "--encoder", s["encoder"], "--box",
                 "8,8,6", "--steps", "3", "--stitched", str(stitched), "-o", str(out)]) == 0
    assert "diffused from E(stitched) in 3 steps, mse inside the region" in capsys.readouterr().out
    assert _png(out).shape == (R, R, 3)
    st, a, b = _png(stitched), _png(s["a.png"]), _png(s["b.png"])
    assert np.abs(st[5:11, 5:11] - a[5:11, 5:11]).max() <= 1 and np.abs(st[:5] - b[:5]).max() <= 1
    # a code as the context needs no encoder: it is the starting point
    assert main(["diffuse", s["a.png"], s["b"], "--model", s["model"], "--box", "8,8,6,4", "--steps", "2",
                 "-o", str(out)]) == 0
    assert "diffused from the context code in 2 steps" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["diffuse", s["a.png"], s["b"], "--model", s["model"], "--box", "8,8", "-o", str(out)])
    assert "bad box '8,8': expected CX,CY,W[,H]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["diffuse", s["a.png"], s["b"], "--model", s["model"], "--box", "8,8,0", "-o", str(out)])
    assert "width and height must be positive" in capsys.readouterr().err
    assert main(["diffuse", s["a.png"], s["b"], "--model", s["model"], "--box", "40,8,6", "-o", str(out)]) == 2
    assert "box centre (40, 8) is outside the 16x16 image" in capsys.readouterr().err
    assert main(["diffuse", s["a.png"], s["b.png"], "--model", s["model"], "-o", str(out)]) == 2
    assert "diffuse needs a domain-guided encoder" in capsys.readouterr().err
    # a mask image instead of the box (white = target), and an empty one
    mask = np.zeros((R, R, 3), np.uint8)
    mask[2:6, 3:9] = 255
    Image.fromarray(mask).save(setup["tmp"] / "mask.png")
    assert main(["diffuse", s["a.png"], s["b"], "--model", s["model"], "--mask", str(setup["tmp"] / "mask.png"),
                 "--steps", "1", "--stitched", str(stitched), "-o", str(out)]) == 0
    st = _png(stitched)
    assert np.abs(st[2:6, 3:9] - a[2:6, 3:9]).max() <= 1
    assert np.abs(st[8:] - _render(s["G"], s["codes"][1])[8:]).max() <= 1  # the context outside the mask
    Image.fromarray(np.zeros((R, R, 3), np.uint8)).save(setup["tmp"] / "empty.png")
    assert main(["diffuse", s["a.png"], s["b"], "--model", s["model"], "--mask", str(setup["tmp"] / "empty.png"),
                 "-o", str(out)]) == 2
    assert "is empty: paint the target region white" in capsys.readouterr().err


def test_directions_sefa_ganspace_and_list(setup, tmp_path, capsys):
    s = setup
    out = tmp_path / "dirs"
    assert main(["directions", "sefa", s["model"], "-k", "3", "--out", str(out)]) == 0
    assert main(["directions", "ganspace", s["model"], "-k", "2", "--n", "500", "--out", str(out)]) == 0
    assert sorted(p.stem for p in out.glob("*.safetensors")) == ["ganspace_00", "ganspace_01", "sefa_00", "sefa_01",
                                                                 "sefa_02"]
    assert "explained variance" in (out / "README.md").read_text()
    capsys.readouterr()
    assert main(["directions", "list", s["model"], "--directions", str(out), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"glasses", "smile", "ganspace_00", "ganspace_01", "sefa_00", "sefa_01", "sefa_02"}
    assert rows["smile"]["accuracy"] == pytest.approx(0.9) and rows["sefa_00"]["source"] == "sefa"
    # a SeFa direction edits by name from the extra folder
    assert main(["edit", "--model", s["model"], "--code", s["a"], "--directions", str(out), "--edit", "sefa_00=3",
                 "-o", str(tmp_path / "e.png")]) == 0


def test_directions_learn_with_the_bundled_classifier(tmp_path, capsys):
    G = tiny_stylegan2(64, seed=3)
    model = save_pretrained(G, tmp_path / "g64", kind="generator")
    assert main(["directions", "learn", str(model), "--n", "160", "--batch", "80", "--attributes",
                 "smile,age,eyeglasses,hair_style"]) == 0
    printed = capsys.readouterr().out
    folder = model / "directions"  # the default: the model folder's own directions/
    summary = json.loads((folder / "summary.json").read_text())
    learned = set(summary["directions"])
    assert {"smile", "age"} <= learned and learned | set(summary["skipped"]) == {
        "smile", "age", "eyeglasses", "hair_style-bald", "hair_style-short", "hair_style-long", "hair_style-bun"}
    for name in learned:
        d = Direction.load(folder / f"{name}.safetensors")
        assert 0.0 <= d.accuracy <= 1.0 and d.extra["n_samples"] == 160 and d.extra["classifier"]
        assert summary["directions"][name]["accuracy"] == pytest.approx(d.accuracy)
        assert name in printed
    for name, why in summary["skipped"].items():
        assert f"{name:<24} skipped: " in printed and "too few of one class" in why
    assert summary["runs"][0]["n"] == 160
    assert main(["directions", "list", str(model)]) == 0
    listing = capsys.readouterr().out
    assert "smile" in listing and f"{Direction.load(folder / 'smile.safetensors').accuracy:.3f}" in listing
    assert main(["directions", "learn", str(model), "--n", "20", "--attributes", "background_hue"]) == 2
    assert "cyclic (hues)" in capsys.readouterr().err
    # --steer class-means: the same boundary (kept as the normal), a different edit vector
    assert main(["directions", "learn", str(model), "--n", "160", "--batch", "80", "--attributes", "age",
                 "--steer", "class-means", "--out", str(tmp_path / "cm")]) == 0
    steered, plain = Direction.load(tmp_path / "cm" / "age.safetensors"), Direction.load(folder / "age.safetensors")
    assert steered.source == "interfacegan-logistic-class-means" and steered.accuracy == pytest.approx(plain.accuracy)
    assert torch.allclose(steered.boundary, plain.vector, atol=1e-5)
    assert not torch.allclose(steered.vector, plain.vector)


def test_directions_of_a_bundled_model_go_to_the_user_folder_and_overwriting_needs_force(tmp_path, monkeypatch,
                                                                                         capsys):
    import hashlib

    import idinvert_plugins as ip
    from idinvert_plugins.cards import weights_dir

    home = tmp_path / "home"
    monkeypatch.setenv("IDINVERT_HOME", str(home))
    bundled = weights_dir() / "toyfaces-stylegan2-64" / "directions"

    def snapshot() -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(bundled.iterdir())}

    before = snapshot()
    assert main(["directions", "sefa", "toyfaces-stylegan2-64", "-k", "2"]) == 0
    user = home / "directions" / "toyfaces-stylegan2-64"
    assert f"wrote 2 direction(s) to {user}" in (printed := capsys.readouterr().out)
    assert "replace its shipped sefa_00, sefa_01" in printed
    assert sorted(p.name for p in user.iterdir()) == ["README.md", "sefa_00.safetensors", "sefa_01.safetensors",
                                                      "summary.json"]
    assert snapshot() == before  # the bundled folder is untouched
    # found by name from there (the user's folder wins over the shipped file of the same name)
    found = ip.find_directions("toyfaces-stylegan2-64")
    assert found["sefa_00"] == user / "sefa_00.safetensors" and found["smile"].parent == bundled
    assert ip.load_direction("sefa_01", "toyfaces-stylegan2-64").source == "sefa"
    from idinvert_plugins.pipeline import Pipeline  # what `idinvert edit` and the app use

    mine = Direction(Direction.load(user / "sefa_00.safetensors").vector.flip(0), name="mine", source="test")
    mine.save(user / "mine.safetensors")
    pipe = Pipeline.from_pretrained("toyfaces-stylegan2-64", encoder=None, feature_net=None, classifier=None)
    assert pipe.direction("mine").source == "test" and "smile" in pipe.directions
    (user / "mine.safetensors").unlink()
    # again: refused before any work, naming the files and the flag; --force overwrites
    (user / "sefa_01.safetensors").write_bytes(b"stale")
    assert main(["directions", "sefa", "toyfaces-stylegan2-64", "-k", "3"]) == 2
    err = capsys.readouterr().err
    assert f"{user} already holds 2 of these directions (sefa_00.safetensors, sefa_01.safetensors)" in err
    assert "pass --force to overwrite them" in err and not (user / "sefa_02.safetensors").exists()
    assert main(["directions", "sefa", "toyfaces-stylegan2-64", "-k", "3", "--force"]) == 0
    assert Direction.load(user / "sefa_01.safetensors").source == "sefa" and (user / "sefa_02.safetensors").exists()
    # the bundled folder given as a path is still a shipped folder
    assert main(["directions", "ganspace", str(bundled.parent), "-k", "1", "--n", "200"]) == 0
    assert (user / "ganspace_00.safetensors").exists() and snapshot() == before
    # --out writes exactly there, and also refuses to overwrite without --force
    out = tmp_path / "mine"
    assert main(["directions", "sefa", "toyfaces-stylegan2-64", "-k", "1", "--out", str(out)]) == 0
    assert main(["directions", "sefa", "toyfaces-stylegan2-64", "-k", "1", "--out", str(out)]) == 2
    assert "sefa_00.safetensors): pass --force" in capsys.readouterr().err
