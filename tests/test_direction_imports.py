"""Direction files of InterFaceGAN, GANSpace and e4e: imported into this library's direction files, editing with
them reproduces the official edit functions' outputs in ../shared/fixtures/encoders/directions/ (atol 1e-6, the
fixtures README's tolerance), through the official-function re-implementations and through the `manipulate`
editor (`idinvert edit`); bad files and foreign generators are refused clearly; bundled folders are never
written to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from encoder_fixtures import ENCODERS

from idinvert_plugins.editors.directions import Direction, find_directions
from idinvert_plugins.editors.imported import (
    DirectionImportError,
    e4e_apply_interfacegan,
    e4e_ganspace_edit,
    import_directions,
    interfacegan_linear_interpolate,
    read_direction_file,
    set_coordinate,
)
from idinvert_plugins.editors.manipulate import Manipulate
from idinvert_plugins.hub import save_pretrained
from idinvert_plugins.models.stylegan2 import StyleGAN2Generator

ATOL = 1e-6


@pytest.fixture(scope="module")
def fixtures() -> Path:
    folder = ENCODERS / "directions"
    if not folder.is_dir():
        pytest.skip(f"direction fixtures not found at {folder} (they live in ../shared next to the repo)")
    return folder


@pytest.fixture(scope="module")
def ffhq_like(tmp_path_factory) -> Path:
    """A generator folder with FFHQ's W+ shape (18 x 512) and next to no weights."""
    torch.manual_seed(0)
    G = StyleGAN2Generator(resolution=1024, z_dim=8, w_dim=512, mapping_layers=1,
                           channels={str(2**k): 2 for k in range(2, 11)})
    folder = tmp_path_factory.mktemp("models") / "ffhq-like"
    save_pretrained(G, folder, kind="generator")
    return folder


def imported(src: Path, model: Path, tmp_path: Path, **kwargs) -> list[Direction]:
    """Import through the library call behind `idinvert directions import` and read the written files back."""
    folder, paths = import_directions(src, model, out=tmp_path / "dirs", **kwargs)
    assert all(p.parent == folder for p in paths)
    return [Direction.load(p) for p in paths]


def _max(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def test_interfacegan_boundary(fixtures, ffhq_like, tmp_path):
    (smile,) = imported(fixtures / "interfacegan_stylegan_ffhq_smile_w_boundary.npy", ffhq_like, tmp_path,
                        name="smile")
    assert smile.name == "smile" and not smile.per_layer and smile.source == "interfacegan-import"
    io = np.load(fixtures / "interfacegan_edit_io.npz")
    start, end, steps = io["start_end_steps"]
    # W code: placed at signed distances start..end from the hyperplane through the origin
    w = interfacegan_linear_interpolate(io["code_w"], smile, start, end, int(steps))
    assert w.dtype == np.float64 and _max(w, io["edited_w"]) < ATOL
    assert _max(w @ io["boundary"].T, np.linspace(start, end, int(steps))[:, None]) < 1e-5
    # W+ code: shifted, the same as `idinvert edit --edit smile=3` with a 7-step strip
    wp = interfacegan_linear_interpolate(io["code_wplus"], smile, start, end, int(steps))
    assert _max(wp, io["edited_wplus"]) < ATOL
    G = _generator(ffhq_like)
    strip = Manipulate()(G, torch.from_numpy(io["code_wplus"]), direction=smile, strength=float(end),
                         steps=int(steps), render=False).codes
    assert _max(strip[0], io["edited_wplus"]) < ATOL


def test_ganspace_components_set_the_coordinate(fixtures, ffhq_like, tmp_path):
    components = imported(fixtures / "ganspace_stylegan2-ffhq_style_ipca_c8_n1000000_w.npz", ffhq_like, tmp_path)
    assert [d.name for d in components] == [f"ganspace_pc{j:02d}" for j in range(8)]
    io = np.load(fixtures / "ganspace_edit_io.npz")
    d = components[int(io["comp_idx"])]
    assert d.extra["edit"] == "set-coordinate" and d.extra["measure_layer"] is None
    codes = torch.from_numpy(io["w"]).expand(18, -1)[None]
    sigma, frames = float(io["sigma"]), int(io["num_frames"])
    layers = (int(io["layer_start"]), int(io["layer_end"]))
    out = set_coordinate(codes, d, torch.linspace(-sigma, sigma, frames), layers)
    assert _max(out[0], io["edited_wplus"]) < ATOL
    G = _generator(ffhq_like)
    strip = Manipulate()(G, codes, direction=d, strength=sigma, steps=frames, layers=layers, render=False).codes
    assert _max(strip[0], io["edited_wplus"]) < ATOL
    # set, not shifted: the same target from two different starting codes lands at the same coordinate
    other = codes + 0.7 * d.vector
    a, b = (Manipulate()(G, c, direction=d, strength=1.5, layers=layers, render=False).codes for c in (codes, other))
    mean = torch.tensor(d.extra["mean"])
    assert torch.allclose(((a[0, 3] - mean) * d.vector).sum(), ((b[0, 3] - mean) * d.vector).sum(), atol=1e-4)
    assert torch.allclose(((a[0, 3] - mean) * d.vector).sum(), torch.tensor(1.5 * d.extra["stdev"]), atol=1e-4)


def test_e4e_editing_files(fixtures, ffhq_like, tmp_path):
    io = np.load(fixtures / "e4e_edit_io.npz")
    latents = torch.from_numpy(io["latents"])
    (age,) = imported(fixtures / "e4e_interfacegan_directions_age.pt", ffhq_like, tmp_path, name="age")
    (pose,) = imported(fixtures / "e4e_interfacegan_directions_pose.pt", ffhq_like, tmp_path, name="pose")
    assert not age.per_layer and pose.per_layer and pose.vector.shape == (18, 512)
    assert _max(e4e_apply_interfacegan(latents, age, 3), io["interfacegan_age_factor3"]) < ATOL
    assert _max(e4e_apply_interfacegan(latents[:1], age, factor_range=(-5, 5)),
                io["interfacegan_age_range_m5_5"]) < ATOL
    assert _max(e4e_apply_interfacegan(latents, pose, -2), io["interfacegan_pose_factor_m2"]) < ATOL
    G = _generator(ffhq_like)
    for d, factor, key in ((age, 3.0, "interfacegan_age_factor3"), (pose, -2.0, "interfacegan_pose_factor_m2")):
        edited = Manipulate()(G, latents, direction=d, strength=factor, render=False).codes
        assert _max(edited, io[key]) < ATOL

    pcs = imported(fixtures / "e4e_ganspace_pca_ffhq_pca.pt", ffhq_like, tmp_path, components=[3, 6, 10])
    assert [d.name for d in pcs] == ["pca_03", "pca_06", "pca_10"] and pcs[0].extra["measure_layer"] == 0
    by_index = {d.extra["component"]: d for d in pcs}
    edits = [(by_index[int(i)], int(s), int(e), float(v)) for i, s, e, v in io["ganspace_directions"]]
    assert _max(e4e_ganspace_edit(latents, edits), io["ganspace_edited"]) < ATOL
    # the same through the editor (`idinvert edit`; its strength range is [-10, 10], which holds the third edit)
    for i in range(2):
        d, s, e, v = edits[2]
        row = Manipulate()(G, latents[i:i + 1], direction=d, strength=v, layers=(s, e), render=False).codes[0]
        assert _max(row, io["ganspace_edited"][3 * i + 2]) < ATOL


def _generator(folder: Path):
    from idinvert_plugins.hub import load_generator

    return load_generator(folder)


def test_bad_files_and_foreign_generators(fixtures, ffhq_like, tmp_path):
    z_boundary = tmp_path / "stylegan_ffhq_smile_boundary.npy"
    np.save(z_boundary, np.eye(1, 512))
    with pytest.raises(DirectionImportError, match="boundary in Z .* --space w"):
        read_direction_file(z_boundary)
    assert read_direction_file(z_boundary, space="w")[0].name == "smile"
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(DirectionImportError, match="is not a checkpoint"):
        read_direction_file(text)
    other = tmp_path / "weights.pt"
    torch.save({"g_ema": {}}, other)
    with pytest.raises(DirectionImportError, match=r"holds \['g_ema'\]; expected an e4e InterFaceGAN direction"):
        read_direction_file(other)
    txt = tmp_path / "a.txt"
    txt.write_text("x")
    with pytest.raises(DirectionImportError, match="unknown direction file type '.txt'"):
        read_direction_file(txt)
    with pytest.raises(DirectionImportError, match=r"has 8 components \(0..7\); asked for \[9\]"):
        read_direction_file(fixtures / "ganspace_stylegan2-ffhq_style_ipca_c8_n1000000_w.npz", components=[9])
    # a 512-wide direction for the bundled 256-wide toy-face generator: refused before anything is written
    with pytest.raises(DirectionImportError, match="does not fit this generator .*w_dim 512, the generator 256"):
        import_directions(fixtures / "e4e_interfacegan_directions_age.pt", "toyfaces-stylegan2-64")
    per_layer = tmp_path / "pose.pt"
    torch.save(torch.randn(1, 18, 256), per_layer)
    with pytest.raises(DirectionImportError, match="has 18 layers, the generator 10"):
        import_directions(per_layer, "toyfaces-stylegan2-64")
    # an existing name needs force
    import_directions(fixtures / "e4e_interfacegan_directions_age.pt", ffhq_like, out=tmp_path / "d", name="age")
    with pytest.raises(DirectionImportError, match="already holds age: pass --force"):
        import_directions(fixtures / "e4e_interfacegan_directions_age.pt", ffhq_like, out=tmp_path / "d", name="age")
    import_directions(fixtures / "e4e_interfacegan_directions_age.pt", ffhq_like, out=tmp_path / "d", name="age",
                      force=True)


def test_bundled_models_get_a_user_folder(tmp_path):
    from idinvert_plugins.cards import weights_dir

    boundary = tmp_path / "toy_faces_smile_w_boundary.npy"
    rng = np.random.default_rng(0)
    np.save(boundary, rng.standard_normal((1, 256)))
    before = sorted(p.name for p in (weights_dir() / "toyfaces-stylegan2-64" / "directions").iterdir())
    folder, paths = import_directions(boundary, "toyfaces-stylegan2-64", name="imported_smile")
    assert weights_dir().resolve() not in folder.resolve().parents
    assert sorted(p.name for p in (weights_dir() / "toyfaces-stylegan2-64" / "directions").iterdir()) == before
    assert find_directions("toyfaces-stylegan2-64")["imported_smile"] == paths[0]


def test_cli_import_then_edit_sets_the_coordinate(fixtures, ffhq_like, tmp_path, capsys):
    from idinvert_plugins.cli import main
    from idinvert_plugins.codes import load_latent, save_latent

    pca = fixtures / "e4e_ganspace_pca_ffhq_pca.pt"
    out = tmp_path / "dirs"
    assert main(["directions", "import", str(pca), "--model", str(ffhq_like), "--components", "3,6",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pca_03: direction from e4e_ganspace_pca_ffhq_pca.pt; sets the coordinate" in printed
    assert f"wrote 2 direction(s) to {out}" in printed
    assert main(["directions", "import", str(pca), "--model", str(ffhq_like), "--components", "3",
                 "--out", str(out)]) == 2
    assert "already holds pca_03: pass --force" in capsys.readouterr().err

    latents = torch.from_numpy(np.load(fixtures / "e4e_edit_io.npz")["latents"])
    code = save_latent(latents[:1], tmp_path / "face.safetensors", generator=str(ffhq_like))
    edited = tmp_path / "edited.safetensors"
    assert main(["edit", "--code", str(code), "--model", str(ffhq_like), "--directions", str(out), "--edit",
                 "pca_03=4", "--layers", "7:8", "--save-code", str(edited), "-o", str(tmp_path / "e.png")]) == 0
    capsys.readouterr()
    got = load_latent(edited, _generator(ffhq_like)).wp
    expected = e4e_ganspace_edit(latents[:1], [(Direction.load(out / "pca_03.safetensors"), 7, 8, 4.0)])
    assert _max(got, expected) < ATOL
    assert torch.equal(got[0, :7], latents[0, :7]) and torch.equal(got[0, 8:], latents[0, 8:])
