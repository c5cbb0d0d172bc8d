"""``idinvert edit DIR --model GEN ... -o OUT`` (issue 16): the conventions of ``idinvert invert GEN DIR``. A
folder in batches, each file edited as the one-image command edits it, a broken file recorded and skipped, the run
resumed without redoing finished files, another edit into the same folder refused, an editor with variants and
``--strip``, and photos with ``--align`` (every face edited and pasted back, the rest of the photo unchanged)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from idinvert_plugins.align import AlignTransform, photo_mask
from idinvert_plugins.cli import main
from idinvert_plugins.toyfaces import render, sample_attributes
from idinvert_plugins.toyfaces.scenes import random_scene

MODEL = "toyfaces-stylegan2-64"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def folder(tmp_path):
    """Three toy faces and one file that is not an image."""
    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        Image.fromarray(render(sample_attributes(0, 65_000 + i), 64)).save(d / f"face{i}.png")
    (d / "broken.png").write_text("not an image")
    return d


def rows(out):
    with (out / "results.csv").open(newline="") as f:
        return {r["file"]: r for r in csv.DictReader(f)}


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_edit_folder_batches_skips_a_broken_file_resumes_and_refuses_another_edit(folder, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["edit", str(folder), "--model", MODEL, "--method", "encoder", "--edit", "eyeglasses=3", "--batch", "2",
            "-o", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "broken.png: skipped: " in captured.err and "not an image file" in captured.err
    assert "3 image(s) inverted with encoder and edited (eyeglasses=+3)" in captured.out
    assert "1 failed: broken.png" in captured.out
    table = rows(out)
    assert list(table) == ["broken.png", "face0.png", "face1.png", "face2.png"]  # sorted like the folder
    assert table["broken.png"]["status"] == "error" and "not an image file" in table["broken.png"]["error"]
    for i in range(3):
        r = table[f"face{i}.png"]
        assert r["status"] == "ok" and r["method"] == "encoder" and r["edit"] == "eyeglasses=+3"
        assert 0 < float(r["mse"]) < 0.1 and float(r["seconds"]) > 0
        assert r["outputs"] == f"face{i}.png;face{i}.safetensors"
    # each file is edited as the one-image command edits it
    single = tmp_path / "single.png"
    code = tmp_path / "single.safetensors"
    assert main(["edit", str(folder / "face1.png"), "--model", MODEL, "--method", "encoder", "--edit", "eyeglasses=3",
                 "--save-code", str(code), "-o", str(single)]) == 0
    assert np.abs(_png(out / "face1.png") - _png(single)).max() <= 2  # batched vs alone: float noise only
    assert load_file(out / "face1.safetensors")["code"].allclose(load_file(code)["code"], atol=1e-4)
    with safe_open(out / "face1.safetensors", "pt") as f:
        meta = f.metadata()
    assert meta["edit"] == "eyeglasses=+3" and meta["method"] == "encoder" and meta["generator"] == MODEL
    recon = tmp_path / "recon"
    assert main(["invert", MODEL, str(folder / "face1.png"), "--method", "encoder", "-o", str(recon)]) == 0
    assert np.abs(_png(out / "face1.png") - _png(recon / "face1.png")).mean() > 2  # the edit changed the image
    capsys.readouterr()

    # resume: finished files are skipped (not rewritten), a lost output is redone
    stamp = (out / "face0.png").stat().st_mtime_ns
    (out / "face2.safetensors").unlink()
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "1 image(s) inverted with encoder and edited" in text and "2 already done" in text
    assert (out / "face0.png").stat().st_mtime_ns == stamp and (out / "face2.safetensors").is_file()
    assert len(rows(out)) == 4

    # another edit into the same folder would overwrite finished files: refused, naming the way out
    assert main([*args[:7], "smile=2", *args[8:]]) == 2
    err = capsys.readouterr().err
    assert "results.csv records the edit 'eyeglasses=+3', not 'smile=+2'" in err and "another folder (-o)" in err
    assert (out / "face0.png").stat().st_mtime_ns == stamp


def test_edit_folder_with_an_editor_of_variants_and_strips(folder, tmp_path, capsys):
    (folder / "broken.png").unlink()
    out = tmp_path / "out"
    assert main(["edit", str(folder), "--model", MODEL, "--method", "encoder", "--editor", "manipulate", "--set",
                 "direction=smile", "--set", "strength=2", "--set", "steps=3", "--strip", "-o", str(out)]) == 0
    assert "3 image(s) inverted with encoder and edited (manipulate(direction=smile,strength=2,steps=3))" in \
        capsys.readouterr().out
    r = rows(out)["face0.png"]
    assert r["outputs"] == "face0.png;face0.safetensors;face0_strip.png"
    strip = _png(out / "face0.png")  # input | three frames
    assert strip.shape == (68, 4 * 66 + 2, 3)
    tile = strip[2:66, 2:66]
    assert np.abs(tile - _png(folder / "face0.png")).max() <= 1  # the first tile is the input
    assert _png(out / "face0_strip.png").shape == (68, 3 * 66 + 2, 3)  # input, reconstruction, edit
    last = strip[2:66, 2 + 3 * 66:2 + 3 * 66 + 64]
    assert np.array_equal(_png(out / "face0_strip.png")[2:66, 2 + 2 * 66:2 + 2 * 66 + 64], last)  # the last frame


def test_edit_folder_of_photos_pastes_every_face_back(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    sc = random_scene(11, (420, 300), faces=2, side=(110, 170), angle=30, resolution=256)
    Image.fromarray(sc.image).save(photos / "scene.png")
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(photos / "blank.png")  # no face
    out = tmp_path / "out"
    assert main(["edit", str(photos), "--model", MODEL, "--method", "encoder", "--align", "--face", "all", "--edit",
                 "eyeglasses=3", "-o", str(out)]) == 0
    assert "blank.png: no face found" in capsys.readouterr().err
    table = rows(out)
    assert table["blank.png"]["status"] == "error" and table["scene.png"]["faces"] == "2"
    assert table["scene.png"]["outputs"] == ("scene.png;scene_0.safetensors;scene_0.json;scene_1.safetensors;"
                                             "scene_1.json")
    result, photo = _png(out / "scene.png"), sc.image.astype(int)
    assert result.shape == photo.shape
    masks = [photo_mask(AlignTransform.load(out / f"scene_{k}.json")) for k in range(2)]
    outside = np.maximum(*masks) == 0
    assert np.array_equal(result[outside], photo[outside])  # every pixel outside the blend masks unchanged
    for m in masks:
        assert np.abs(result - photo)[m >= 0.99].mean() > 5  # each face was edited
