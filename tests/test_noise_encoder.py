"""The noise-space encoder (IDInvert Sec. VI-C): shapes per k, its noise maps reaching the synthesis, k = 0 being
the plain encoder, the ``noise`` training objective (warm start, resume, export, CLI) and the Table VI benchmark,
on a tiny 16 px StyleGAN2 whose noise strengths are large enough to matter."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_stylegan2

from idinvert_plugins import get_inverter
from idinvert_plugins.hub import load_encoder, load_generator, save_pretrained
from idinvert_plugins.latent import render
from idinvert_plugins.models.discriminator import StyleGAN2Discriminator
from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder
from idinvert_plugins.models.noise_encoder import NoiseEncoder, noise_layers_for
from idinvert_plugins.training.data import DomainImages
from idinvert_plugins.training.encoder import (
    EncoderTrainConfig,
    EncoderTrainer,
    build_encoder,
    default_encoder_name,
    export_encoder,
    load_checkpoint,
    train_encoder,
)
from idinvert_plugins.training.loop import to_float

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]
#: the tiny generator's noise layers by synthesis block (B-1 = 4 px, B-2 = 8 px, B-3 = 16 px)
BLOCKS = [["b4.conv1"], ["b8.conv0", "b8.conv1"], ["b16.conv0", "b16.conv1"]]
SMALL = {"channel_base": 8, "channel_max": 16}


def _generator() -> torch.nn.Module:
    G = tiny_stylegan2(resolution=16)
    with torch.no_grad():  # the fixture's strengths are 0: noise would not show
        for _, layer in G.synthesis_network.noise_layers():
            layer.noise_strength.fill_(0.5)
    return G


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """``g`` (tiny StyleGAN2 with noise), ``g-d`` (its discriminator), ``g-encoder`` (a plain encoder for it)."""
    root = tmp_path_factory.mktemp("models")
    save_pretrained(_generator(), root / "g", kind="generator")
    torch.manual_seed(1)
    save_pretrained(StyleGAN2Discriminator(16, channels={"4": 16, "8": 16, "16": 16}), root / "g-d",
                    kind="discriminator")  # fmt: skip
    torch.manual_seed(2)
    plain = IDInvertEncoder(16, num_layers=6, w_dim=32, **SMALL)
    with torch.no_grad():  # a plain encoder whose codes are near G's (so renders are sensible)
        plain.head.bn.bias.copy_(load_generator(root / "g").w_avg.repeat(6))
        plain.head.bn.weight.fill_(0.3)
    save_pretrained(plain.eval(), root / "g-encoder", kind="encoder")
    return root


def _reals(n: int = 4) -> torch.Tensor:
    source = DomainImages(0, 16, 256, 70000)
    return to_float(torch.from_numpy(source.images(list(range(n)))), torch.device("cpu"), False)


def _cfg(models: Path, **overrides) -> EncoderTrainConfig:
    values = {"objective": "noise", "noise_blocks": 2, "init_encoder": str(models / "g-encoder"),
              "feature_net": None, **overrides}
    return EncoderTrainConfig.preset("tiny", generator=str(models / "g"), **values)


# -- the model -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_noise_maps_per_k_at_their_resolutions(models, k):
    G = load_generator(models / "g")
    E = NoiseEncoder.for_generator(G, k, **SMALL).eval()
    x = _reals(3)
    wp, noise = E.forward_with_noise(x)
    expected = [name for block in BLOCKS[:k] for name in block]
    assert E.noise_blocks == k and [n for n, _ in E.noise_layers] == expected
    assert list(noise) == expected
    for name, maps in noise.items():
        r = int(name.split(".")[0][1:])
        assert maps.shape == (3, 1, r, r) and maps.dtype == torch.float32
    assert wp.shape == (3, G.num_layers, G.w_dim)
    assert torch.equal(wp, E(x))  # forward: the W+ code alone, the same pass
    # a fresh head predicts the generator's stored noise (its last conv starts at zero)
    stored = G.stored_noise()
    for name, maps in noise.items():
        torch.testing.assert_close(maps, stored[name].expand_as(maps))
    assert E.config["noise_layers"] == [[n, int(n.split(".")[0][1:])] for n in expected]
    assert NoiseEncoder(**json.loads(json.dumps(E.config))).config == E.config  # rebuilds from its config


def test_more_blocks_than_the_generator_has_is_refused(models):
    G = load_generator(models / "g")
    limit = r"noise_blocks=4 is more than the 3 synthesis blocks of this generator \(4 px, 8 px, 16 px\): use 0 .. 3"
    with pytest.raises(ValueError, match=limit):
        noise_layers_for(G, 4)
    with pytest.raises(ValueError, match=limit):
        EncoderTrainer(_cfg(models, noise_blocks=4))
    with pytest.raises(ValueError, match="noise_blocks must be an integer >= 0, got -1"):
        _cfg(models, noise_blocks=-1)
    with pytest.raises(ValueError, match="noise_blocks=2 is a setting of objective 'noise'.*'domain-guided'"):
        _cfg(models, objective="domain-guided")
    with pytest.raises(ValueError, match="unknown objective 'noisy'.*or 'noise'"):
        _cfg(models, objective="noisy")


def test_predicted_noise_reaches_the_synthesis(models):
    G = load_generator(models / "g")
    plain = load_encoder(models / "g-encoder")
    E = build_encoder(_cfg(models, noise_blocks=2), G).eval()
    assert isinstance(E, NoiseEncoder)
    x = _reals(3)
    encoder = get_inverter("encoder")
    base = encoder.invert(G, x, encoder=plain)
    fresh = encoder.invert(G, x, encoder=E)
    # the warm start copied the plain encoder's body and W+ head; fresh heads render as the stored noise
    torch.testing.assert_close(fresh.codes, base.codes, atol=1e-6, rtol=0)
    torch.testing.assert_close(fresh.images, base.images, atol=1e-5, rtol=0)
    assert set(fresh.latent.parts["noise"]) == {"b4.conv1", "b8.conv0", "b8.conv1"}

    with torch.no_grad():  # the heads now predict something else
        E.noise_heads[0].out.bias.fill_(1.5)
        E.noise_heads[1].out.weight.normal_(0, 0.5)
    moved = encoder.invert(G, x, encoder=E)
    torch.testing.assert_close(moved.codes, base.codes, atol=1e-6, rtol=0)  # W+ untouched ...
    assert (moved.images - base.images).abs().mean() > 1e-2  # ... the images changed through the noise
    noise = moved.latent.parts["noise"]
    torch.testing.assert_close(noise["b4.conv1"], (G.stored_noise()["b4.conv1"] + 1.5).expand(3, 1, 4, 4))
    with torch.no_grad():
        torch.testing.assert_close(moved.images, G.synthesis(moved.codes, noise=noise), atol=1e-5, rtol=0)
        # each map matters on its own: change one layer's map in the latent and the render changes
        for layer in noise:
            edited = moved.latent.with_part("noise", {**noise, layer: noise[layer] + 2.0})
            assert (render(G, edited) - moved.images).abs().mean() > 1e-3, layer
        # an editor moving W+ keeps the maps
        assert moved.latent.with_wp(moved.codes + 0.1).parts["noise"].keys() == noise.keys()


def test_k0_is_the_plain_encoder(models):
    G = load_generator(models / "g")
    plain = load_encoder(models / "g-encoder")
    E = build_encoder(_cfg(models, noise_blocks=0), G).eval()
    assert isinstance(E, NoiseEncoder) and E.noise_blocks == 0 and not list(E.noise_heads)
    assert E.state_dict().keys() == plain.state_dict().keys()
    x = _reals(3)
    a, b = (get_inverter("encoder").invert(G, x, encoder=enc) for enc in (plain, E))
    assert torch.equal(a.codes, b.codes) and torch.equal(a.images, b.images)
    assert not b.latent.parts  # no noise part: the generator's own noise, as the plain encoder
    assert get_inverter("idinvert").invert(G, x, encoder=E, steps=1).codes.shape == a.codes.shape


# -- training --------------------------------------------------------------------------------------------
def test_noise_objective_trains_the_heads_and_resumes(tmp_path, models):
    cfg = _cfg(models, r1_interval=2)
    assert default_encoder_name(cfg) == "g-encoder-noise-k2"
    trainer = EncoderTrainer(cfg)
    plain = load_encoder(models / "g-encoder").state_dict()
    assert all(torch.equal(trainer.E.state_dict()[k], v.float()) for k, v in plain.items())  # warm start
    heads = [p for n, p in trainer.E.named_parameters() if n.startswith("noise_heads.")]
    assert len(trainer.E_opt.param_groups) == 2 and trainer.E_opt.param_groups[1]["params"] == heads
    G_before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    stats = [trainer.train_step(_reals(4)) for _ in range(3)]
    assert {"pix", "adv", "loss_E", "loss_D"} <= set(stats[0]) and all(np.isfinite(s["loss_E"]) for s in stats)
    lrs = [g["lr"] for g in trainer.E_opt.param_groups]
    assert lrs == [cfg.lr, cfg.lr * cfg.noise_lr_mul]
    assert all(h.out.weight.abs().sum() > 0 for h in trainer.E.noise_heads)  # the zero-started heads trained
    assert all(torch.equal(G_before[k], v) for k, v in trainer.G.state_dict().items())

    straight = train_encoder(cfg, tmp_path / "straight", max_steps=4, progress=False)["trainer"]
    train_encoder(cfg, tmp_path / "split", max_steps=2, progress=False)
    second = train_encoder(cfg, tmp_path / "split", max_steps=4, progress=False)["trainer"]
    for net in ("E", "D"):
        a, b = getattr(straight, net).state_dict(), getattr(second, net).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), net
    ckpt = load_checkpoint(tmp_path / "split")
    assert ckpt["step"] == 4 and ckpt["encoder_architecture"] == "idinvert-noise-encoder"
    # and the global RNG ends as the straight run's (no step draws from it, so the weights alone would not show a
    # DataLoader that took its seed from it again on resuming)
    assert torch.equal(ckpt["rng"][0]["cpu"], load_checkpoint(tmp_path / "straight")["rng"][0]["cpu"])
    records = [json.loads(line) for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4] and all(r["pix"] > 0 and r["eval_mse"] > 0 for r in records)


def test_export_and_invert_from_the_cli(tmp_path, models):
    from idinvert_plugins.cli import main
    from idinvert_plugins.codes import load_latent
    from idinvert_plugins.images import load_image, save_image

    train_encoder(_cfg(models), tmp_path / "run", max_steps=2, progress=False, command="idinvert train-encoder ...")
    folder = export_encoder(tmp_path / "run", tmp_path / "weights", "enc", dtype=None)
    E = load_encoder(folder)
    assert isinstance(E, NoiseEncoder) and E.noise_blocks == 2
    card = (folder / "README.md").read_text()
    assert "objective: noise" in card and "noise maps of its layers b4.conv1, b8.conv0, b8.conv1" in card

    G = load_generator(models / "g")
    save_image(_reals(1)[0], tmp_path / "face.png")
    assert main(["invert", str(models / "g"), str(tmp_path / "face.png"), "--method", "encoder", "--encoder",
                 str(folder), "--feature-net", "none", "-o", str(tmp_path / "out")]) == 0  # fmt: skip
    latent = load_latent(tmp_path / "out" / "face.safetensors", G)
    assert set(latent.parts["noise"]) == {"b4.conv1", "b8.conv0", "b8.conv1"}
    x = load_image(tmp_path / "face.png", 16).reshape(1, 3, 16, 16)
    wp, noise = E.eval().forward_with_noise(x)
    torch.testing.assert_close(latent.wp, wp.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(latent.parts["noise"]["b8.conv0"], noise["b8.conv0"].detach(), atol=1e-5, rtol=0)
    with torch.no_grad():
        rendered = render(G, latent)
    saved = load_image(tmp_path / "out" / "face.png", 16).reshape(1, 3, 16, 16)
    assert (rendered.clamp(-1, 1) - saved).abs().max() <= 2 / 255 + 1e-6  # the PNG is the render with the noise


# -- the benchmark ---------------------------------------------------------------------------------------
def test_benchmark_table_vi_end_to_end(tmp_path, models):
    spec = importlib.util.spec_from_file_location("noise_encoder_bench", REPO / "benchmarks" / "noise_encoder.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = ["--generator", str(models / "g"), "--init-encoder", str(models / "g-encoder"), "--ks", "0,2",
            "--kimg", "0.016", "--log-points", "2", "--runs", str(tmp_path / "runs"), "--preset", "tiny",
            "--set", "feature_net=none", "--n", "6", "--batch", "4", "--classifier", "toyfaces-classifier-64",
            "--out", str(tmp_path / "out"), "--no-progress"]  # fmt: skip
    assert bench.main(args) == 0
    out = tmp_path / "out"
    results = json.loads((out / "noise-encoder.json").read_text())
    assert results["ks"] == [0, 2] and results["n"] == 6 and results["first_index"] == 65000
    for k in ("0", "2"):
        row, run = results["rows"][k], results["runs"][k]
        assert run["kimg"] == pytest.approx(0.016) and len(run["curve"]["kimg"]) == 2
        for metric in ("mse", "ssim", "fd_interpolated", "swd_interpolated", "mse_stored_noise"):
            assert np.isfinite(row[metric]), (k, metric)
        assert row["n_interpolated"] == 18  # 6 faces x 3 points
    assert results["rows"]["0"]["noise_layers"] == [] and results["rows"]["2"]["noise_layers"] == BLOCKS[0] + BLOCKS[1]
    # k = 0 renders with the generator's own noise: the stored-noise MSE is its MSE
    assert results["rows"]["0"]["mse"] == pytest.approx(results["rows"]["0"]["mse_stored_noise"])
    page = (out / "noise-encoder.md").read_text()
    assert "| 2 | B-1 .. B-2 (3 maps) |" in page and "noise-encoder-loss.png" in page
    for png in ("noise-encoder-loss.png", "noise-encoder-interpolation.png"):
        assert (out / png).stat().st_size > 1000
    # a second call reuses the finished runs (no more training) and measures the same numbers
    before = load_checkpoint(tmp_path / "runs" / "k2")["step"]
    assert bench.main(args) == 0
    again = json.loads((out / "noise-encoder.json").read_text())
    assert load_checkpoint(tmp_path / "runs" / "k2")["step"] == before
    assert again["rows"]["2"]["mse"] == pytest.approx(results["rows"]["2"]["mse"])
