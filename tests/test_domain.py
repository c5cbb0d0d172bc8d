"""The out-of-domain warning: a reconstruction far worse than the model's typical one on its held-out faces is
flagged, with the reference read from pipeline.json or the model card."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_stylegan2

from idinvert_plugins.domain import OOD_FACTOR, TypicalError, domain_warning, typical_mse
from idinvert_plugins.hub import load_generator, save_pretrained
from idinvert_plugins.images import save_image
from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder

R = 16


@pytest.fixture
def model(tmp_path):
    G = tiny_stylegan2(R)
    folder = save_pretrained(G, tmp_path / "gen", kind="generator")
    torch.manual_seed(1)
    E = IDInvertEncoder(resolution=R, num_layers=G.num_layers, w_dim=G.w_dim, channel_base=8, channel_max=16)
    encoder = save_pretrained(E.eval(), tmp_path / "enc", kind="encoder")
    with torch.no_grad():
        face = G(G.sample_z(1, seed=2), noise_mode="const")[0]
    save_image(face, tmp_path / "face.png")
    return {"G": G, "folder": folder, "encoder": encoder, "face": tmp_path / "face.png", "tmp": tmp_path}


def _pipeline(folder, typical):
    (folder / "pipeline.json").write_text(json.dumps({"generator": ".", "typical_mse": typical}))


def test_the_warning_threshold_and_what_it_says():
    typical = TypicalError(0.01, "idinvert", "pipeline.json")
    assert domain_warning(0.01 * OOD_FACTOR, typical) is None  # at 3x: still in domain
    assert domain_warning(0.02, typical) is None
    assert domain_warning(0.5, None) is None  # nothing recorded: no check
    message = domain_warning(0.245, typical)
    assert message.startswith("reconstruction MSE 0.2450 is 24x this model's typical 0.0100 with idinvert on its "
                              "held-out faces: the image is far from the model's domain")
    assert "edits will be unreliable" in message and "Align and crop a face like the training data" in message


def test_typical_mse_is_read_from_pipeline_json_then_the_card(model):
    folder = model["folder"]
    assert typical_mse(folder, "idinvert") is None
    (folder / "README.md").write_text("---\nname: gen\ntypical_mse:\n  idinvert: 0.02\n  encoder: 0.03\n---\n# gen\n")
    assert typical_mse(folder, "idinvert") == TypicalError(0.02, "idinvert", "the model card of gen")
    _pipeline(folder, {"idinvert": 0.011})
    G = load_generator(folder)  # a loaded generator, a folder or a Pipeline all lead to the same figures
    assert typical_mse(G, "idinvert") == TypicalError(0.011, "idinvert", "gen/pipeline.json")
    assert typical_mse(G, "encoder").value == 0.03  # not in pipeline.json: the card's
    assert typical_mse(G, "image2stylegan") is None
    from idinvert_plugins.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(folder, encoder=str(model["encoder"]), feature_net=None)
    assert typical_mse(pipe, "idinvert").value == 0.011


def test_the_bundled_generators_record_their_typical_errors():
    for name in ("toyfaces-stylegan2-64", "toyfaces-stylegan-64"):
        for method in ("encoder", "idinvert"):
            typical = typical_mse(name, method)
            assert typical is not None and typical.source.endswith("pipeline.json"), (name, method)
            assert 0.003 < typical.value < 0.05


@pytest.mark.parametrize("typical, warned", [(1e-6, True), (10.0, False)])
def test_invert_and_edit_warn_on_stderr(model, capsys, typical, warned):
    from idinvert_plugins.cli import main

    _pipeline(model["folder"], {"encoder": typical})
    out = model["tmp"] / "out"
    assert main(["invert", str(model["folder"]), str(model["face"]), "--method", "encoder", "--encoder",
                 str(model["encoder"]), "--feature-net", "none", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "face.png: mse " in captured.out
    assert ("warning: face.png: reconstruction MSE" in captured.err) is warned
    assert ("far from the model's domain" in captured.err) is warned
    assert (out / "face.png").is_file()  # a warning, not an error
    assert main(["interpolate", str(model["face"]), str(model["face"]), "--model", str(model["folder"]), "--method",
                 "encoder", "--encoder", str(model["encoder"]), "--steps", "2", "-o", str(out / "s.png")]) == 0
    assert captured.err.count("warning:") == int(warned)
    assert capsys.readouterr().err.count("warning: face.png: reconstruction MSE") == 2 * int(warned)
    assert main(["edit", str(model["face"]), "--model", str(model["folder"]), "--method", "encoder", "--encoder",
                 str(model["encoder"]), "--editor", "interpolate", "--set", f"target={out / 'face.safetensors'}",
                 "--set", "steps=2", "-o", str(out / "e.png")]) == 0
    assert capsys.readouterr().err.count("warning: face.png: reconstruction MSE") == int(warned)


def _photo(tmp_path) -> str:
    """A natural photo when scikit-image is installed (its astronaut), else a picture that is no toy face."""
    from PIL import Image

    try:
        from skimage import data

        array = data.astronaut()
    except ImportError:
        yy, xx = torch.meshgrid(torch.linspace(0, 1, 256), torch.linspace(0, 1, 256), indexing="ij")
        array = (torch.stack([yy, xx, ((xx * 8).floor() + (yy * 8).floor()) % 2], -1).numpy() * 255).astype("uint8")
    Image.fromarray(array).save(tmp_path / "photo.png")
    return str(tmp_path / "photo.png")


def test_the_app_warns_next_to_the_reconstruction_of_a_photo_not_of_a_held_out_face(tmp_path):
    from idinvert_plugins.app.examples import example_images
    from idinvert_plugins.app.models import ModelSpec, load_bundle
    from idinvert_plugins.app.session import invert_image

    bundle = load_bundle(ModelSpec("toyfaces-stylegan2-64"))
    face = next(p for p, label in example_images(64) if label.startswith("test face"))
    held_out = invert_image(bundle, face, "encoder")
    assert "domain" not in held_out.summary() and held_out.mse < 0.05
    photo = invert_image(bundle, _photo(tmp_path), "encoder")
    summary = photo.summary()
    assert summary.startswith(f"**MSE {photo.mse:.4f}**")
    assert "⚠️ **Far from the model's domain.** Reconstruction MSE" in summary
    assert "edits will be unreliable" in summary and photo.mse > 3 * typical_mse(bundle.pipeline, "encoder").value
