"""Encoder training (domain-guided and conventional), on a tiny random StyleGAN2 and its discriminator."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_stylegan2

from idinvert_plugins.hub import ModelLoadError, load_encoder, load_generator, load_model, save_pretrained
from idinvert_plugins.models.discriminator import StyleGAN2Discriminator
from idinvert_plugins.training.data import DomainImages
from idinvert_plugins.training.encoder import (
    PRESETS,
    EncoderTrainConfig,
    EncoderTrainer,
    code_stats,
    default_encoder_name,
    export_encoder,
    heldout_images,
    load_checkpoint,
    parse_overrides,
    train_encoder,
)
from idinvert_plugins.training.loop import to_float

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """``g`` (tiny 16 px StyleGAN2) and ``g-d`` (its discriminator) as model folders."""
    root = tmp_path_factory.mktemp("models")
    save_pretrained(tiny_stylegan2(resolution=16), root / "g", kind="generator")
    torch.manual_seed(1)
    save_pretrained(StyleGAN2Discriminator(16, channels={"4": 16, "8": 16, "16": 16}), root / "g-d",
                    kind="discriminator")  # fmt: skip
    return root


def _cfg(models: Path, **overrides) -> EncoderTrainConfig:
    return EncoderTrainConfig.preset("tiny", generator=str(models / "g"), **overrides)


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def _reals(n: int = 8) -> torch.Tensor:
    source = DomainImages(0, 16, 256, 70000)
    return to_float(torch.from_numpy(source.images(list(range(n)))), torch.device("cpu"), False)


# -- configuration ---------------------------------------------------------------------------------------
def test_config_presets_and_errors(models):
    assert {"toyfaces-64", "tiny"} <= set(PRESETS)
    cfg = EncoderTrainConfig.preset("toyfaces-64", generator="toyfaces-stylegan2-64", encoder={"channel_max": 256})
    assert cfg.encoder == {"channel_base": 32, "channel_max": 256} and cfg.batch == 32
    assert (cfg.lr, cfg.d_lr, cfg.betas, cfg.l_adv, cfg.r1_gamma) == (1e-4, 1e-4, (0.9, 0.99), 0.1, 10.0)
    assert cfg.discriminator_name == "toyfaces-stylegan2-64-d"
    assert EncoderTrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert default_encoder_name(cfg) == "toyfaces-stylegan2-64-encoder"
    conv = EncoderTrainConfig.preset("tiny", generator=str(models / "g"), objective="conventional")
    assert default_encoder_name(conv) == "g-encoder-conventional"

    with pytest.raises(ValueError, match="unknown objective 'adversarial': use 'domain-guided'"):
        _cfg(models, objective="adversarial")
    with pytest.raises(ValueError, match="no generator given"):
        EncoderTrainConfig.preset("tiny")
    with pytest.raises(ValueError, match="unknown encoder preset 'huge'"):
        EncoderTrainConfig.preset("huge", generator="g")
    with pytest.raises(ValueError, match=r"unknown encoder training setting\(s\) \['btach'\]"):
        _cfg(models, btach=3)
    with pytest.raises(ValueError, match=r"encoder settings \['w_dim'\] come from the generator"):
        _cfg(models, encoder={"w_dim": 8})

    assert parse_overrides(["batch=16", "l_adv=0.08", "feature_net=none", '{"encoder": {"channel_max": 8}}']) == {
        "batch": 16, "l_adv": 0.08, "feature_net": "none", "encoder": {"channel_max": 8}}
    with pytest.raises(ValueError, match="--set expects key=value"):
        parse_overrides(["batch"])


def test_encoder_starts_at_the_generators_code_statistics(models):
    G = load_generator(models / "g")
    mean, std = code_stats(G)  # 10,000 z of seed 0
    # the mean of W (what G.w_avg estimates), on every layer; the spread of W
    torch.testing.assert_close(mean[0], G.compute_w_avg(n=10_000, seed=0), atol=1e-5, rtol=0)
    assert torch.equal(mean[0], mean[-1]) and mean.shape == (G.num_layers, G.w_dim)
    with torch.no_grad():
        w = G.mapping(G.sample_z(10_000, seed=0))
    torch.testing.assert_close(std[0], w.std(0), atol=1e-4, rtol=0)
    trainer = EncoderTrainer(_cfg(models, objective="conventional"))
    E = trainer.E
    assert E.config["num_layers"] == G.num_layers and E.config["w_dim"] == G.w_dim
    torch.testing.assert_close(E.head.bn.bias.view_as(mean), mean)
    torch.testing.assert_close(E.head.bn.weight.view_as(std), std)
    assert E.head.bn.weight.requires_grad  # the output scale trains (frozen in the official encoder)
    assert all(not p.requires_grad for p in trainer.G.parameters())


def test_stylegan_v1_generator_per_layer_codes(tmp_path):
    """IDInvert's StyleGAN v1 models map z to W+ with a different w per layer: the encoder starts at the
    per-layer means and both objectives train against the v1 discriminator / W+ samples."""
    from conftest import tiny_stylegan

    from idinvert_plugins.models.discriminator import StyleGANDiscriminator

    save_pretrained(tiny_stylegan(16), tmp_path / "v1", kind="generator")
    torch.manual_seed(2)
    save_pretrained(StyleGANDiscriminator(16, channel_base=256, channel_max=16), tmp_path / "v1-d",
                    kind="discriminator")  # fmt: skip
    G = load_generator(tmp_path / "v1")
    assert not G.has_w_space
    mean, _ = code_stats(G)
    assert (mean[0] - mean[-1]).abs().max() > 0.1  # really per-layer
    x = _reals(4)
    for objective in ("domain-guided", "conventional"):
        trainer = EncoderTrainer(EncoderTrainConfig.preset("tiny", generator=str(tmp_path / "v1"),
                                                           objective=objective, feature_net=None))  # fmt: skip
        torch.testing.assert_close(trainer.E.head.bn.bias.view_as(mean), mean)
        stats = [trainer.train_step(x) for _ in range(3)]
        assert all(np.isfinite(s["loss_E"]) for s in stats)
        assert trainer.reconstruct(x).shape == x.shape


# -- training --------------------------------------------------------------------------------------------
def test_domain_guided_reconstruction_falls_d_trains_g_frozen(models):
    trainer = EncoderTrainer(_cfg(models, batch=8))
    G_before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    D_before = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    assert trainer.F is not None and trainer.l_feat == trainer.F.loss_weight == 0.3  # the classifier's weight
    x = _reals(8)
    stats = [trainer.train_step(x) for _ in range(10)]
    assert {"pix", "feat", "adv", "loss_E", "loss_D", "D_real", "D_fake", "r1_penalty"} <= set(stats[0])
    pix = [s["pix"] for s in stats]
    first, last = np.mean(pix[:3]), np.mean(pix[-3:])
    assert last < 0.6 * first, pix
    assert stats[-1]["feat"] < stats[0]["feat"]
    assert _max_diff(D_before, trainer.D.state_dict()) > 0  # D trains alongside
    G_after = trainer.G.state_dict()
    assert all(torch.equal(G_before[k], G_after[k]) for k in G_before)  # G bit for bit unchanged
    assert all(p.grad is None for p in trainer.G.parameters())
    # G and F never saw a parameter gradient; the loaded generator on disk is the same as the one in memory
    reloaded = load_generator(models / "g").state_dict()
    assert all(torch.equal(reloaded[k], G_after[k]) for k in reloaded)


def test_conventional_code_loss_falls(models):
    trainer = EncoderTrainer(_cfg(models, objective="conventional", lr=3e-3))
    assert trainer.D is None and trainer.F is None
    G = trainer.G
    with torch.no_grad():
        w = G.to_wplus(G.mapping(G.sample_z(64, seed=5)))
        x = G.synthesis(w)

    def code_mse() -> float:  # on a fixed batch of G's samples (E in train mode, as it trains)
        with torch.no_grad():
            return (trainer.E(x) - w).square().mean().item()

    before = code_mse()
    losses = [trainer.train_step()["code_mse"] for _ in range(40)]
    after = code_mse()
    assert after < 0.9 * before, (before, after)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert trainer.nimg == 40 * 4 and trainer.step == 40


@pytest.mark.parametrize("objective", ["domain-guided", "conventional"])
def test_resume_continues_the_same_run(tmp_path, models, objective):
    cfg = _cfg(models, objective=objective, feature_net=None, r1_interval=2)
    straight = train_encoder(cfg, tmp_path / "straight", max_steps=4, progress=False)["trainer"]
    first = train_encoder(cfg, tmp_path / "split", max_steps=2, progress=False)
    assert first["step"] == 2
    E_mid = {k: v.clone() for k, v in first["trainer"].E.state_dict().items()}
    second = train_encoder(cfg, tmp_path / "split", max_steps=4, progress=False, command="second call")
    assert second["step"] == 4 and _max_diff(E_mid, second["trainer"].E.state_dict()) > 0
    assert _max_diff(straight.E.state_dict(), second["trainer"].E.state_dict()) == 0.0
    if objective == "domain-guided":
        assert _max_diff(straight.D.state_dict(), second["trainer"].D.state_dict()) == 0.0

    ckpt = load_checkpoint(tmp_path / "split")  # weights_only=True
    assert ckpt["step"] == 4 and ckpt["nimg"] == 16 and ("D" in ckpt) == (objective == "domain-guided")
    # the global RNG ends where the straight run's does: a domain-guided step draws nothing from it (G's noise is
    # const), so equal weights alone would not show a DataLoader that took its seed from it again on resuming
    assert torch.equal(ckpt["rng"][0]["cpu"], load_checkpoint(tmp_path / "straight")["rng"][0]["cpu"])
    assert EncoderTrainConfig.from_dict(json.loads(ckpt["config"])) == cfg
    assert ckpt["commands"][-1] == "second call" and len(ckpt["commands"]) == 2
    log = [json.loads(line) for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]  # log_kimg 0.008 = every 2 steps of 4 images
    assert {"loss_E", "eval_mse", "images_per_s", "kimg"} <= set(log[-1]) and log[-1]["eval_mse"] > 0
    assert (tmp_path / "split" / "preview_000000.png").is_file()
    assert not list((tmp_path / "split").glob("*.tmp"))


def test_resume_refuses_other_config_or_generator(tmp_path, models):
    folder = tmp_path / "models"
    save_pretrained(load_generator(models / "g"), folder / "g", kind="generator")
    save_pretrained(load_model(models / "g-d"), folder / "g-d", kind="discriminator")
    cfg = EncoderTrainConfig.preset("tiny", generator=str(folder / "g"), feature_net=None)
    out = tmp_path / "run"
    train_encoder(cfg, out, max_steps=1, progress=False)
    with pytest.raises(ValueError, match=r"different configuration \(l_adv: checkpoint 0.1 vs given 0.2\)"):
        train_encoder(EncoderTrainConfig.from_dict({**cfg.to_dict(), "l_adv": 0.2}), out, max_steps=2, progress=False)
    # run-control fields may change; out of time at once still writes the checkpoint
    control = EncoderTrainConfig.from_dict({**cfg.to_dict(), "total_kimg": 5.0, "log_kimg": 1.0})
    assert train_encoder(control, out, max_minutes=0, progress=False)["step"] == 1
    # another generator under the same name
    save_pretrained(tiny_stylegan2(resolution=16, seed=7), folder / "g", kind="generator")
    with pytest.raises(ValueError, match="not the one this run started with"):
        train_encoder(cfg, out, max_steps=2, progress=False)
    assert train_encoder(cfg, out, max_steps=1, resume=False, progress=False)["step"] == 1


def test_trains_from_an_image_folder(tmp_path, models):
    from PIL import Image

    from idinvert_plugins.data.toyfaces import render_batch

    images, _ = render_batch(3, range(6), 16)
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(tmp_path / "imgs" / ("sub" if i % 2 else "") / f"{i}.png")
    cfg = _cfg(models, data_dir=str(tmp_path / "imgs"), feature_net=None)
    result = train_encoder(cfg, tmp_path / "run", max_steps=2, progress=False)
    assert result["step"] == 2 and "it has no test split" in result["eval_images"]


def test_clear_errors(tmp_path, models):
    with pytest.raises(ModelLoadError, match="is a discriminator, not a generator"):
        EncoderTrainer(EncoderTrainConfig.preset("tiny", generator=str(models / "g-d")))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="cannot be used: no images .* Point --data at a folder of images"):
        train_encoder(_cfg(models, data_dir=str(tmp_path / "empty")), tmp_path / "run", max_steps=1, progress=False)
    assert not (tmp_path / "run").exists()  # nothing written
    lone = tmp_path / "lone"
    save_pretrained(load_generator(models / "g"), lone, kind="generator")
    with pytest.raises(ModelLoadError, match="discriminator=NAME_OR_FOLDER"):
        EncoderTrainer(EncoderTrainConfig.preset("tiny", generator=str(lone)))
    EncoderTrainer(EncoderTrainConfig.preset("tiny", generator=str(lone), objective="conventional"))  # needs no D


# -- export, inverters, CLI ------------------------------------------------------------------------------
def test_export_loads_and_inverts(tmp_path, models):
    from idinvert_plugins import get_inverter

    cfg = _cfg(models, feature_net=None)
    result = train_encoder(cfg, tmp_path / "run", max_steps=4, progress=False, command="idinvert train-encoder ...")
    folder = export_encoder(tmp_path / "run", tmp_path / "weights", "enc", dtype=None)
    E = load_encoder(folder)
    trained = result["trainer"].E.eval()
    assert _max_diff(E.state_dict(), trained.state_dict()) == 0.0
    G = load_generator(models / "g")
    x = _reals(3)
    res = get_inverter("encoder").invert(G, x, encoder=E)
    assert res.codes.shape == (3, G.num_layers, G.w_dim)
    with torch.no_grad():
        torch.testing.assert_close(res.codes, trained(x))  # absolute W+ codes: no add_w_avg involved
    assert get_inverter("idinvert").invert(G, x, encoder=E, steps=1).codes.shape == (3, G.num_layers, G.w_dim)

    card = (folder / "README.md").read_text()
    assert "objective: domain-guided" in card and f"generator: {models / 'g'}" in card
    assert "images_seen: 16 (0.0 kimg, 4 steps)" in card and "training_command: idinvert train-encoder" in card
    assert "final_losses: means over the last log window" in card and "loss_D" in card and "pix" in card
    heldout, what = heldout_images(cfg, 16)
    assert what == "8 held-out test-split toy faces (seed 0)"
    x_eval = to_float(torch.from_numpy(heldout), torch.device("cpu"), False)
    with torch.no_grad():
        mse = (G.synthesis(trained(x_eval)) - x_eval).square().mean().item()
    assert f"reconstruction: MSE {mse:.5f}, PSNR" in card and what in card

    fp16 = export_encoder(tmp_path / "run", tmp_path / "weights", None)  # default name, fp16 storage
    assert fp16.name == "g-encoder"
    assert json.loads((fp16 / "config.json").read_text())["storage_dtype"] == "float16"
    from idinvert_plugins.cards import read_card

    # the card works as-is in model_cards/: it names the bundled folder weights/g-encoder
    assert read_card(fp16 / "README.md").data["local"] == "g-encoder"
    assert (fp16 / "model.safetensors").stat().st_size < (folder / "model.safetensors").stat().st_size


def test_cli_train_encoder(tmp_path, models, capsys, monkeypatch):
    from idinvert_plugins.cli import main

    monkeypatch.setenv("IDINVERT_WEIGHTS", str(tmp_path / "weights"))  # export into "the bundled weights/"
    monkeypatch.setenv("IDINVERT_MODEL_CARDS", str(tmp_path / "cards"))
    args = ["train-encoder", "--generator", str(models / "g"), "--objective", "conventional", "--out",
            str(tmp_path / "run"), "--preset", "tiny", "--kimg", "0.012", "--set", "n_eval=4", "--set", "lr=0.002",
            "--export", str(tmp_path / "weights"), "--name", "enc"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "stopped at 0.01 kimg" in out and "exported" in out and "reconstruction MSE" in out
    hint = f"cp {tmp_path / 'weights' / 'enc' / 'README.md'} {tmp_path / 'cards' / 'enc.md'}"
    assert hint in out  # how to make it a named model
    (tmp_path / "cards").mkdir()
    shutil.copy(tmp_path / "weights" / "enc" / "README.md", tmp_path / "cards" / "enc.md")
    assert load_encoder("enc").num_layers == 6
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["step"] == 3 and json.loads(ckpt["config"])["lr"] == 0.002
    card = (tmp_path / "weights" / "enc" / "README.md").read_text()
    assert "objective: conventional" in card and "--set n_eval=4" in card
    assert load_encoder(tmp_path / "weights" / "enc").num_layers == 6

    assert main(["train-encoder", "--generator", str(models / "g"), "--objective", "pixel", "--out",
                 str(tmp_path / "bad"), "--preset", "tiny"]) == 2  # fmt: skip
    assert "unknown objective 'pixel'" in capsys.readouterr().err
    assert main(["train-encoder", "--generator", str(models / "g-d"), "--out", str(tmp_path / "bad"),
                 "--preset", "tiny"]) == 2  # fmt: skip
    assert "is a discriminator, not a generator" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_on_cpu(tmp_path, models):
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(
        """
        import hashlib, os, sys
        from idinvert_plugins.training.encoder import EncoderTrainConfig, train_encoder

        generator, out, ranks = sys.argv[1:4]
        cfg = EncoderTrainConfig.preset("tiny", generator=generator, feature_net=None)
        trainer = train_encoder(cfg, out, max_steps=3, progress=False)["trainer"]
        h = hashlib.sha256()
        for net in (trainer.E, trainer.D):
            for k, v in sorted(net.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().contiguous().numpy().tobytes())
        # the process group was freed on return: no gloo thread left to be torn down at interpreter exit
        task = "/proc/self/task"
        threads = [open(f"{task}/{t}/comm").read().strip() for t in os.listdir(task)] if os.path.isdir(task) else []
        with open(os.path.join(ranks, f"rank{os.environ['RANK']}.txt"), "w") as f:
            f.write(h.hexdigest() + "\\n" + ",".join(sorted(t for t in threads if "gloo" in t)))
        """
    ))  # fmt: skip
    out, ranks = tmp_path / "run", tmp_path / "ranks"
    ranks.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           str(script), str(models / "g"), str(out), str(ranks)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    digests, gloo_threads = zip(*((ranks / f"rank{r}.txt").read_text().split("\n") for r in (0, 1)))
    assert gloo_threads == ("", ""), gloo_threads  # see training.distributed.import_before_group
    assert digests[0] == digests[1]  # gradients and BatchNorm statistics were averaged: the same networks
    ckpt = load_checkpoint(out)
    assert ckpt["world_size"] == 2 and ckpt["step"] == 3 and ckpt["nimg"] == 3 * 4 and len(ckpt["rng"]) == 2
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == ["resume.pt"]
    fresh = EncoderTrainer(_cfg(models, feature_net=None)).E.state_dict()
    assert _max_diff(fresh, ckpt["E"]) > 0  # it did train


def test_warm_start_from_an_exported_encoder(tmp_path, models):
    """init_encoder: E starts as the named encoder (bit for bit), trains on, and the card says where it started."""
    train_encoder(_cfg(models, feature_net=None), tmp_path / "first", max_steps=2, progress=False)
    source = export_encoder(tmp_path / "first", tmp_path / "weights", "enc-a", dtype=None)

    cfg = _cfg(models, feature_net=None, init_encoder=str(source))
    trainer = EncoderTrainer(cfg)
    assert _max_diff(trainer.E.state_dict(), load_encoder(source).state_dict()) == 0.0
    result = train_encoder(cfg, tmp_path / "second", max_steps=2, progress=False)
    assert _max_diff(result["trainer"].E.state_dict(), load_encoder(source).state_dict()) > 0  # it trained on
    card = (export_encoder(tmp_path / "second", tmp_path / "weights", "enc-b", dtype=None) / "README.md").read_text()
    import hashlib

    digest = hashlib.sha256((source / "model.safetensors").read_bytes()).hexdigest()[:16]
    assert (f"- initialised_from: `{source}`, path, 8 images seen by its card, weights sha256 {digest} (a warm "
            "start: images seen and training time count from there)") in card

    wide = _cfg(models, feature_net=None, init_encoder=str(source), encoder={"channel_max": 999})
    with pytest.raises(ValueError, match=r"another architecture .*channel_max: .* leave init_encoder unset"):
        EncoderTrainer(wide)
    with pytest.raises(FileNotFoundError, match=r"init_encoder 'no-such-encoder' cannot be used: unknown model"):
        EncoderTrainer(_cfg(models, feature_net=None, init_encoder="no-such-encoder"))

    # resuming needs no warm-start source: E comes from the checkpoint, which keeps the record of where it began
    shutil.move(source, tmp_path / "moved-away")
    resumed = train_encoder(cfg, tmp_path / "second", max_steps=3, progress=False)
    assert resumed["step"] == 3 and resumed["trainer"].init_source.startswith(f"`{source}`, path, 8 images")
