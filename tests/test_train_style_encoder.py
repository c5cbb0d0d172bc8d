"""`idinvert train-encoder --objective psp|e4e|restyle` on the shared training loop, for a few steps on a tiny
generator: logs, checkpoints and resumption, e4e's progressive stages and latent discriminator, ReStyle's
iterations, export to a model folder that the methods load, and the identity network's clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_stylegan2

from idinvert_plugins.hub import load_encoder, save_pretrained
from idinvert_plugins.pipeline import Pipeline
from idinvert_plugins.training.style_encoder import (
    LatentCodesDiscriminator,
    StyleEncoderTrainConfig,
    load_id_network,
    train_style_encoder,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gen") / "tiny-sg2"
    save_pretrained(tiny_stylegan2(16, seed=0), folder, kind="generator")
    return folder


def config(generator, objective: str, **kw) -> StyleEncoderTrainConfig:
    return StyleEncoderTrainConfig.preset("tiny", generator=str(generator), objective=objective, feature_net=None,
                                          n_train=32, n_total=64, **kw)


def records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_psp_trains_logs_and_resumes(generator, tmp_path):
    run = tmp_path / "psp"
    cfg = config(generator, "psp", w_norm=0.01)
    first = train_style_encoder(cfg, run, max_steps=3, progress=False)
    assert first["step"] == 3 and (run / "resume.pt").is_file() and list(run.glob("preview_*.png"))
    assert {"l2", "w_norm", "loss_E", "eval_mse"} <= set(records(run)[-1])
    weights = {k: v.clone() for k, v in first["trainer"].E.state_dict().items()}
    second = train_style_encoder(cfg, run, max_steps=5, progress=False)
    assert second["step"] == 5 and second["kimg"] == pytest.approx(0.02)
    assert any(not torch.equal(weights[k], v) for k, v in second["trainer"].E.state_dict().items())
    with pytest.raises(ValueError, match=r"other settings \(lr\)"):
        train_style_encoder(config(generator, "psp", w_norm=0.01, lr=0.5), run, max_steps=6, progress=False)


def test_e4e_progressive_stages_and_latent_discriminator(generator, tmp_path):
    cfg = config(generator, "e4e")  # tiny: w0 alone for 8 images (2 steps), then one more layer per step
    summary = train_style_encoder(cfg, tmp_path / "e4e", max_steps=5, progress=False)
    trainer = summary["trainer"]
    assert isinstance(trainer.D, LatentCodesDiscriminator)
    assert [k for k in trainer.D.state_dict()] == [f"mlp.{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")]
    stages = [r["stage"] for r in records(tmp_path / "e4e")]  # means over 2 steps: (0, 0), (1, 2), (3)
    assert stages == [0.0, 1.5, 3.0] and trainer.E.progressive_stage == 3 and trainer.progressive_stage() == 4
    last = records(tmp_path / "e4e")[-1]
    assert last["delta"] > 0 and "adv" in last and "loss_D" in last


def test_restyle_iterates_and_exports_for_the_method(generator, tmp_path):
    from idinvert_plugins.training.style_encoder import export_style_encoder

    run = tmp_path / "restyle"
    summary = train_style_encoder(config(generator, "restyle"), run, max_steps=3, progress=False)
    assert {"l2_0", "l2_1"} <= set(summary["last"])
    folder = export_style_encoder(run, tmp_path / "models")
    assert folder.name == "tiny-sg2-restyle-encoder"
    card = (folder / "README.md").read_text()
    assert "images_seen: 12" in card and "objective: restyle" in card and "MSE" in card
    E = load_encoder(folder)
    G = summary["trainer"].G
    assert torch.allclose(E.latent_avg, G.w_avg.expand(G.num_layers, -1), atol=2e-3)  # stored in fp16
    with torch.no_grad():  # the average image is G(latent_avg)
        assert torch.allclose(E.avg_image, G.synthesis(E.latent_avg[None], noise_mode="const")[0], atol=1e-2)
    result = Pipeline(G, encoder=E).invert(torch.rand(2, 3, 16, 16) * 2 - 1, "restyle")
    assert result.codes.shape == (2, G.num_layers, G.w_dim) and len(result.latent.info["restyle_mse"]) == 2


def test_cli_train_encoder_objective_e4e(generator, tmp_path, capsys):
    from idinvert_plugins.cli import main

    assert main(["train-encoder", "--generator", str(generator), "--objective", "e4e", "--preset", "tiny",
                 "--out", str(tmp_path / "run"), "--kimg", "0.008", "--set", "feature_net=null", "--set", "n_train=32",
                 "--set", "n_total=64", "--export", str(tmp_path / "models")]) == 0
    out = capsys.readouterr().out
    assert "stopped at 0.008 kimg" in out and "--method e4e" in out
    assert load_encoder(tmp_path / "models" / "tiny-sg2-e4e-encoder").architecture == "e4e-encoder"


def test_identity_network_errors(generator, tmp_path):
    with pytest.raises(ValueError, match="id_net=PATH/model_ir_se50.pth"):
        config(generator, "psp", l_id=0.1)
    with pytest.raises(FileNotFoundError, match=r"identity network weights .*model_ir_se50.pth not found: .*"
                                                r"--set id_net=PATH, or --set l_id=0"):
        load_id_network(str(tmp_path / "model_ir_se50.pth"), torch.device("cpu"))
    bad = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, bad)
    with pytest.raises(ValueError, match="is not an ArcFace IR-SE50 state dict"):
        load_id_network(str(bad), torch.device("cpu"))
