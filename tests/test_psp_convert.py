"""`idinvert convert` on pSp / e4e / ReStyle checkpoints (small ones in the official layout, saved from "CUDA"):
a pipeline folder that inverts from the CLI with --method psp|e4e|restyle, the ReStyle iterations against a
hand-written loop, the leftovers listed, and clear errors for bad input. (Numerical parity with the official
code on full-size checkpoints: tests/test_encoder_parity_*.py.)"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_stylegan2
from PIL import Image
from test_stylegan2_convert import ours_to_rosinality

from idinvert_plugins.cli import main
from idinvert_plugins.codes import load_latent
from idinvert_plugins.convert.psp import E4EFormat, PSPFamilyError, PSPFormat, ReStyleFormat
from idinvert_plugins.hub import load_encoder, load_generator
from idinvert_plugins.models.e4e import E4EEncoder
from idinvert_plugins.models.psp import PSPEncoder
from idinvert_plugins.models.restyle import ReStyleEncoder
from idinvert_plugins.pipeline import Pipeline

SMALL = dict(stages=(1, 2, 1, 1), widths=(8, 16, 24, 32), stem=8, input_size=32)
RES = 64  # the generator's; the encoders read 32 px (pooled 2x2, as the official face_pool does 1024 -> 256)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def G():
    return tiny_stylegan2(RES, seed=3)


def small_encoder(family: str, G, encoder_type: str = "BackboneEncoder", seed: int = 0):
    torch.manual_seed(seed)
    if family == "psp":
        enc = PSPEncoder(RES, w_dim=G.w_dim, **SMALL)
    elif family == "e4e":
        enc = E4EEncoder(RES, w_dim=G.w_dim, **SMALL)
    else:
        enc = ReStyleEncoder(RES, w_dim=G.w_dim, encoder_type=encoder_type, n_iters=3, **SMALL)
    with torch.no_grad():
        for name, t in enc.named_parameters():
            t.normal_(0, 0.3 if "weight" in name else 0.05)
        for name, t in enc.named_buffers():
            if name.endswith("running_var"):
                t.uniform_(1, 1.5)
            elif name.endswith("running_mean"):
                t.normal_(0, 0.1)
        enc.latent_avg.copy_(G.w_avg.expand(enc.num_layers, -1))
    return enc.eval()


OPTS = {
    "psp": {"encoder_type": "GradualStyleEncoder", "output_size": RES, "input_nc": 3, "start_from_latent_avg": True,
            "learn_in_w": False, "dataset_type": "ffhq_encode", "device": "cuda:0"},
    "e4e": {"encoder_type": "Encoder4Editing", "stylegan_size": RES, "start_from_latent_avg": True,
            "dataset_type": "ffhq_encode", "device": "cuda:0"},
    "restyle": {"encoder_type": "BackboneEncoder", "output_size": RES, "input_nc": 6, "n_iters_per_batch": 3,
                "start_from_latent_avg": True, "dataset_type": "ffhq_encode", "device": "cuda:0"},
}


def official_checkpoint(family: str, G, enc, *, extras: bool = False) -> dict:
    """The dict the official coaches save: encoder.* then decoder.* (rosinality layout), opts, latent_avg."""
    sd = {k: v.clone() for k, v in enc.state_dict().items() if k.startswith("encoder.")}
    sd.update({f"decoder.{k}": v.clone() for k, v in ours_to_rosinality(G.state_dict())["g_ema"].items()})
    opts = dict(OPTS[family])
    if family == "restyle":
        opts["encoder_type"] = enc.encoder_type
    ckpt = {"state_dict": sd, "opts": opts, "latent_avg": enc.latent_avg.clone()}
    if extras:  # what e4e / ReStyle-e4e save with --save_training_data
        ckpt.update(global_step=20000, optimizer={"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": []},
                    best_val_loss=0.1, discriminator_state_dict={"mlp.0.weight": torch.randn(4, 4)},
                    discriminator_optimizer_state_dict={"state": {}, "param_groups": []})
    return ckpt


def save_from_cuda(ckpt: dict, path: Path) -> Path:
    """``torch.save`` as on a GPU machine: every storage is tagged ``cuda:0`` (no GPU needed to write it)."""
    import torch.serialization as ser

    original = ser.location_tag
    ser.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(ckpt, path)
    finally:
        ser.location_tag = original
    with zipfile.ZipFile(path) as z:
        assert b"cuda:0" in z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    return path


def face(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((RES, RES, 3)) * 255).astype("uint8")).save(path)
    return path


def restyle_reference(enc, G, x: torch.Tensor, n_iters: int) -> torch.Tensor:
    """ReStyle's run_on_batch written out: avg image first, then the previous reconstruction, residual codes."""
    pool = lambda t: F.adaptive_avg_pool2d(t, (32, 32))  # noqa: E731 - the official face_pool
    with torch.no_grad():
        y = pool(G.synthesis(enc.latent_avg[None], noise_mode="const")).expand(x.shape[0], -1, -1, -1)
        prev = enc.latent_avg[None].expand(x.shape[0], -1, -1)
        for _ in range(n_iters):
            codes = enc.encoder(torch.cat([pool(x), y], 1)) + prev
            y, prev = pool(G.synthesis(codes, noise_mode="const")), codes
    return codes


@pytest.mark.parametrize("family", ["psp", "e4e", "restyle"])
def test_convert_writes_a_pipeline_that_inverts_from_the_cli(family, G, tmp_path, capsys):
    enc = small_encoder(family, G)
    src = save_from_cuda(official_checkpoint(family, G, enc, extras=family == "e4e"), tmp_path / f"{family}.pt")
    out = tmp_path / "converted"
    assert main(["convert", str(src), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (generator)" in printed and f"wrote {out / 'encoder'} (encoder)" in printed
    if family == "e4e":
        assert "ignored: global_step, optimizer, best_val_loss, discriminator_state_dict" in printed
    pipeline = json.loads((out / "pipeline.json").read_text())
    assert pipeline["encoder"] == "encoder/" and pipeline["default_method"] == family

    # the generator is the decoder, the encoder the official encoder with its latent_avg
    G2 = load_generator(out)
    codes = G.w_avg.expand(1, G.num_layers, -1) + 0.3 * torch.randn(1, G.num_layers, G.w_dim)
    with torch.no_grad():
        assert torch.allclose(G2.synthesis(codes), G.synthesis(codes), atol=1e-5)
    E2 = load_encoder(out / "encoder")
    assert type(E2) is type(enc) and E2.config == enc.config
    x = torch.rand(2, 3, RES, RES) * 2 - 1
    with torch.no_grad():
        if family == "restyle":  # its single forward pass starts from the stored average image G(latent_avg)
            avg = F.adaptive_avg_pool2d(G.synthesis(enc.latent_avg[None], noise_mode="const"), (32, 32))[0]
            assert torch.allclose(E2.avg_image, avg, atol=1e-5)
            enc.avg_image.copy_(avg)
        assert torch.allclose(E2(x), enc(x), atol=1e-5)

    # idinvert invert DIR IMAGE --method FAMILY (the pipeline's default method too)
    img = face(tmp_path / "face.png")
    assert main(["invert", str(out), str(img), "--method", family, "-o", str(tmp_path / "inv")]) == 0
    assert f"inverted with {family}" in capsys.readouterr().out
    latent = load_latent(tmp_path / "inv" / "face.safetensors", G2)
    target = Pipeline.from_pretrained(out).images(img)
    with torch.no_grad():
        expected = restyle_reference(enc, G, target, 3) if family == "restyle" else enc(target)
    assert torch.allclose(latent.wp, expected, atol=1e-4)


def test_restyle_resnet_and_progressive_types_and_iteration_count(G):
    for encoder_type in ("ResNetBackboneEncoder", "ProgressiveBackboneEncoder", "ResNetProgressiveBackboneEncoder"):
        enc = small_encoder("restyle", G, encoder_type=encoder_type)
        (gen, conv) = ReStyleFormat().convert(official_checkpoint("restyle", G, enc))
        assert conv.args["encoder_type"] == encoder_type and conv.args["n_iters"] == 3
        E2 = ReStyleEncoder(**conv.args)
        E2.load_state_dict(conv.state_dict, strict=True)
        pipe = Pipeline(G, encoder=E2.eval())
        x = torch.rand(1, 3, RES, RES) * 2 - 1
        result = pipe.invert(x, "restyle", n_iters=2)
        assert torch.allclose(result.codes, restyle_reference(enc, G, x, 2), atol=1e-4)
        assert len(result.latent.info["restyle_mse"]) == 2


def test_missing_latent_avg_comes_from_the_decoder(G):
    enc = small_encoder("e4e", G)
    ckpt = official_checkpoint("e4e", G, enc)
    del ckpt["latent_avg"]
    gen, conv = E4EFormat().convert(ckpt)
    assert torch.equal(conv.state_dict["latent_avg"], gen.state_dict["w_avg"].expand(G.num_layers, -1))
    assert "mean_latent" in conv.notes["latent_avg"]


# -- bad input ----------------------------------------------------------------------------------------------------
def _error(args: list[str], capsys) -> str:
    assert main(args) == 2
    return capsys.readouterr().err


def test_a_checkpoint_of_another_family(G, tmp_path, capsys):
    e4e = save_from_cuda(official_checkpoint("e4e", G, small_encoder("e4e", G)), tmp_path / "e4e.pt")
    err = _error(["convert", str(e4e), "-o", str(tmp_path / "x"), "--format", "psp"], capsys)
    assert ("this is an e4e checkpoint (opts encoder_type 'Encoder4Editing'), not psp: convert it with --format "
            "e4e") in err
    rosinality = tmp_path / "g.pt"
    torch.save(ours_to_rosinality(G.state_dict()), rosinality)
    err = _error(["convert", str(rosinality), "-o", str(tmp_path / "y"), "--format", "restyle"], capsys)
    assert "not a pSp / e4e / ReStyle checkpoint" in err and "--format rosinality" in err
    hyper = {"state_dict": {"hypernet.layer.weight": torch.zeros(2), "decoder.style.1.weight": torch.zeros(2)},
             "opts": {"encoder_type": "SharedWeightsHyperNetResNet"}, "latent_avg": torch.zeros(2)}
    with pytest.raises(PSPFamilyError, match="a HyperStyle checkpoint .*hypernet.* not supported"):
        PSPFormat().convert(hyper)
    ckpt = official_checkpoint("psp", G, small_encoder("psp", G))
    ckpt["opts"]["encoder_type"] = "BackboneEncoderUsingLastLayerIntoW"
    with pytest.raises(PSPFamilyError, match="not an encoder this library implements.*W-space variants"):
        PSPFormat().convert(ckpt)


def test_a_truncated_file(G, tmp_path, capsys):
    full = save_from_cuda(official_checkpoint("psp", G, small_encoder("psp", G)), tmp_path / "full.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    err = _error(["convert", str(cut), "-o", str(tmp_path / "out")], capsys)
    assert "is not a checkpoint" in err and "truncated or damaged" in err
    assert not (tmp_path / "out").exists()


def test_missing_extra_and_misshapen_encoder_tensors(G):
    enc = small_encoder("psp", G)
    ckpt = official_checkpoint("psp", G, enc)
    del ckpt["state_dict"]["encoder.styles.3.linear.bias"]
    with pytest.raises(PSPFamilyError, match=r"missing 1 encoder tensor\(s\): styles\.3\.linear\.bias"):
        PSPFormat().convert(ckpt)
    ckpt = official_checkpoint("psp", G, enc)
    ckpt["state_dict"]["encoder.latlayer3.weight"] = torch.zeros(1)
    with pytest.raises(PSPFamilyError, match=r"1 unexpected encoder tensor\(s\): latlayer3\.weight"):
        PSPFormat().convert(ckpt)
    ckpt = official_checkpoint("psp", G, enc)
    ckpt["state_dict"]["encoder.latlayer1.bias"] = torch.zeros(7)
    with pytest.raises(PSPFamilyError, match=r"wrong shape .*latlayer1\.bias \[7\] \(expected \[32\]\)"):
        PSPFormat().convert(ckpt)


def test_opts_that_do_not_match_the_tensors(G):
    enc = small_encoder("psp", G)
    ckpt = official_checkpoint("psp", G, enc)
    ckpt["opts"]["output_size"] = 1024
    with pytest.raises(PSPFamilyError, match="opts do not match the tensors: opts output_size=1024 means 18 styles, "
                                             r"the state dict holds 10 \(encoder.styles.0..9\); a 64 px model"):
        PSPFormat().convert(ckpt)
    ckpt = official_checkpoint("psp", G, enc)
    ckpt["opts"]["input_nc"] = 1
    with pytest.raises(PSPFamilyError, match="opts input_nc=1, but encoder.input_layer.0.weight reads 3 channels"):
        PSPFormat().convert(ckpt)
    restyle = official_checkpoint("restyle", G, small_encoder("restyle", G))
    restyle["opts"]["encoder_type"] = "ResNetBackboneEncoder"
    with pytest.raises(PSPFamilyError, match="opts encoder_type 'ResNetBackboneEncoder' has encoder.conv1.weight, "
                                             r"the state dict has input_layer.0.weight \(an IR-SE stem\)"):
        ReStyleFormat().convert(restyle)
    small_g = tiny_stylegan2(32, seed=1)
    ckpt = official_checkpoint("psp", G, enc)
    ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    ckpt["state_dict"].update({f"decoder.{k}": v for k, v in ours_to_rosinality(small_g.state_dict())["g_ema"].items()})
    with pytest.raises(PSPFamilyError, match="opts output_size=64, the decoder renders 32 px"):
        PSPFormat().convert(ckpt)


def test_a_method_that_does_not_fit_the_encoder(G, tmp_path, capsys):
    src = save_from_cuda(official_checkpoint("e4e", G, small_encoder("e4e", G)), tmp_path / "e4e.pt")
    assert main(["convert", str(src), "-o", str(tmp_path / "e4e")]) == 0
    err = _error(["invert", str(tmp_path / "e4e"), str(face(tmp_path / "f.png")), "--method", "psp", "-o",
                  str(tmp_path / "o")], capsys)
    assert "--method psp needs a psp-encoder (the pipeline's encoder is e4e-encoder); this e4e-encoder encoder " \
           "fits --method e4e" in err


def test_the_app_inverts_and_edits_with_a_converted_checkpoint(G, tmp_path):
    """The web app's actions on a converted folder: its default method (e4e) inverts an upload, and a direction
    imported into the folder moves the code from the Edit tab."""
    from idinvert_plugins.app.models import ModelSpec, load_bundle
    from idinvert_plugins.app.session import Session, apply_inversion, edit_directions, invert_image
    from idinvert_plugins.editors.imported import import_directions

    enc = small_encoder("e4e", G)
    src = save_from_cuda(official_checkpoint("e4e", G, enc), tmp_path / "e4e.pt")
    out = tmp_path / "converted"
    assert main(["convert", str(src), "-o", str(out)]) == 0
    boundary = tmp_path / "toy_faces_smile_w_boundary.npy"
    np.save(boundary, np.random.default_rng(0).standard_normal((1, G.w_dim)))
    folder, _ = import_directions(boundary, out)
    assert folder == out / "directions"  # the user's own model folder

    bundle = load_bundle(ModelSpec(model=str(out)))
    assert bundle.pipeline.default_method == "e4e" and "smile" in bundle.directions
    inversion = invert_image(bundle, Image.open(face(tmp_path / "face.png")), "e4e")
    with torch.no_grad():
        assert torch.allclose(inversion.code, enc(inversion.target[None])[0], atol=1e-4)
    session = Session()
    apply_inversion(session, inversion, str(out))
    edit_directions(bundle, session, {"smile": 2.0})
    n = bundle.directions["smile"].vector
    assert torch.allclose(session.result_code - inversion.code, 2.0 * n.expand_as(inversion.code), atol=1e-5)


def test_a_pipeline_picks_each_methods_own_encoder(G, tmp_path, capsys):
    """Beside a main encoder, ``"encoders": {"e4e": ...}`` in pipeline.json gives --method e4e its own."""
    psp, e4e = small_encoder("psp", G), small_encoder("e4e", G, seed=1)
    x = torch.rand(1, 3, RES, RES) * 2 - 1
    pipe = Pipeline(G, encoder=psp, encoders={"e4e": e4e})
    with torch.no_grad():
        assert torch.allclose(pipe.invert(x, "e4e").codes, e4e(x), atol=1e-5)
        assert torch.allclose(pipe.invert(x, "psp").codes, psp(x), atol=1e-5)
    from idinvert_plugins.plugins import get_plugins

    assert pipe.encoder_for(get_plugins().get("inverter", "idinvert")) is psp  # no role: the main encoder

    for family, enc in (("psp", psp), ("e4e", e4e)):
        src = save_from_cuda(official_checkpoint(family, G, enc), tmp_path / f"{family}.pt")
        assert main(["convert", str(src), "-o", str(tmp_path / family)]) == 0
    config = json.loads((tmp_path / "psp" / "pipeline.json").read_text())
    config["encoders"]["e4e"] = "../e4e/encoder/"
    (tmp_path / "psp" / "pipeline.json").write_text(json.dumps(config))
    img = face(tmp_path / "face.png")
    assert main(["invert", str(tmp_path / "psp"), str(img), "--method", "e4e", "-o", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    latent = load_latent(tmp_path / "out" / "face.safetensors", load_generator(tmp_path / "psp"))
    with torch.no_grad():
        assert torch.allclose(latent.wp, e4e(Pipeline.from_pretrained(tmp_path / "psp").images(img)), atol=1e-4)
