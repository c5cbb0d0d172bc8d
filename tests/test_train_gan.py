"""Discriminators and the GAN training loop, on tiny networks (both backends)."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from idinvert_plugins.models.discriminator import StyleGAN2Discriminator, StyleGANDiscriminator
from idinvert_plugins.training.distributed import DistInfo
from idinvert_plugins.training.gan import (
    PRESETS,
    GANTrainer,
    StepBatches,
    TrainConfig,
    build_networks,
    export,
    load_checkpoint,
    train_gan,
)

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ["tiny-stylegan2", "tiny-stylegan"]


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa)


# -- discriminators --------------------------------------------------------------------------------------
def _tiny_d(cls, **kwargs):
    torch.manual_seed(0)
    if cls is StyleGAN2Discriminator:
        return cls(16, channels={"4": 8, "8": 12, "16": 16}, **kwargs)
    return cls(16, channel_base=128, channel_max=16, **kwargs)


@pytest.mark.parametrize("cls", [StyleGAN2Discriminator, StyleGANDiscriminator])
def test_discriminator_config_rebuilds_same_function(cls):
    D = _tiny_d(cls).eval()
    config = json.loads(json.dumps(D.config))  # must survive config.json
    D2 = cls(**config).eval()
    D2.load_state_dict(D.state_dict(), strict=True)
    x = torch.randn(4, 3, 16, 16)
    out = D(x)
    assert out.shape == (4,)
    torch.testing.assert_close(D2(x), out, rtol=0, atol=0)
    assert D.architecture in ("stylegan2-discriminator", "stylegan-discriminator")


def test_stylegan2_discriminator_matches_hand_written_forward():
    """Rebuild the residual D from its raw weights with plain conv2d (FIR [1,3,3,1] blur then stride 2)."""
    D = _tiny_d(StyleGAN2Discriminator).eval()
    with torch.no_grad():  # non-zero biases so their placement matters
        for name, p in D.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
    x = torch.randn(4, 3, 16, 16)

    def conv(layer, h, stride=1, pad=None):
        w = layer.weight / math.sqrt(layer.weight[0].numel())
        k = w.shape[-1]
        return F.conv2d(h, w, stride=stride, padding=k // 2 if pad is None else pad)

    def act(h, b):
        return F.leaky_relu(h + b.view(1, -1, 1, 1), 0.2) * math.sqrt(2)

    def blur(h, p):
        f = torch.tensor([1.0, 3, 3, 1])
        f = torch.outer(f, f) / 64
        return F.conv2d(F.pad(h, (p, p, p, p)), f.expand(h.shape[1], 1, 4, 4), groups=h.shape[1])

    h = act(conv(D.from_rgb, x), D.from_rgb.bias)
    for block in D.blocks:
        y = act(conv(block.conv0, h), block.conv0.bias)
        y = act(conv(block.conv1, blur(y, 2), stride=2, pad=0), block.conv1.bias)
        s = conv(block.skip, blur(h, 1), stride=2, pad=0)
        h = (y + s) / math.sqrt(2)
    # minibatch stddev over groups of 4 (the whole batch here), one extra feature map
    std = (h.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    h = torch.cat([h, std.expand(4, 1, 4, 4)], dim=1)
    head = D.head
    h = act(conv(head.conv, h), head.conv.bias).flatten(1)
    h = F.leaky_relu(F.linear(h, head.fc.weight / math.sqrt(h.shape[1]), head.fc.bias), 0.2) * math.sqrt(2)
    expected = F.linear(h, head.out.weight / math.sqrt(h.shape[1]), head.out.bias).squeeze(1)
    torch.testing.assert_close(D(x), expected, rtol=1e-5, atol=1e-5)


def test_stylegan_discriminator_fused_and_unfused_agree():
    D_fused = _tiny_d(StyleGANDiscriminator, fused_scale=True).eval()
    D_plain = _tiny_d(StyleGANDiscriminator, fused_scale=False).eval()
    D_plain.load_state_dict(D_fused.state_dict())
    x = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(D_fused(x), D_plain(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="fused_scale must be True, False or 'auto'"):
        StyleGANDiscriminator(16, fused_scale="yes")


@pytest.mark.parametrize("cls", [StyleGAN2Discriminator, StyleGANDiscriminator])
def test_discriminator_r1_double_backward_bf16_channels_last(cls):
    D = _tiny_d(cls)
    x = torch.randn(4, 3, 16, 16)
    ref = D(x).detach()

    D_cl = _tiny_d(cls).to(memory_format=torch.channels_last)
    D_cl.load_state_dict(D.state_dict())
    real = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = D_cl(real)
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(logits.float(), ref, rtol=0.05, atol=0.02)
    # R1 = |dD/dx|^2 needs a second backward pass through the whole network.
    (grad,) = torch.autograd.grad(logits.float().sum(), real, create_graph=True)
    grad.square().sum().backward()
    # every weight receives a gradient (biases after the minibatch-stddev layer need not: D is piecewise
    # linear there, so dD/dx does not depend on them)
    no_grad = [n for n, p in D_cl.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert no_grad and all(n.startswith("head.") and n.endswith(".bias") for n in no_grad), no_grad


def test_discriminator_rejects_bad_channel_table():
    with pytest.raises(ValueError, match="missing \\[16\\]"):
        StyleGAN2Discriminator(16, channels={"4": 8, "8": 8})


# -- configuration -------------------------------------------------------------------------------------
def test_presets_and_overrides():
    assert {"toyfaces-stylegan2-64", "toyfaces-stylegan-64", "tiny-stylegan2", "tiny-stylegan"} <= set(PRESETS)
    cfg = TrainConfig.preset("toyfaces-stylegan2-64", batch=16, generator={"w_dim": 128})
    assert cfg.batch == 16 and cfg.generator["w_dim"] == 128 and cfg.generator["z_dim"] == 256
    assert cfg.betas == (0.0, 0.99) and cfg.lr == 0.0025 and cfg.style_mixing_prob == 0.9
    assert PRESETS["toyfaces-stylegan2-64"]["generator"]["w_dim"] == 256  # the table was not mutated
    v1 = TrainConfig.preset("toyfaces-stylegan-64")
    assert v1.generator["repeat_w"] is False and v1.generator["final_tanh"] is True
    with pytest.raises(KeyError, match="unknown preset 'nope'"):
        TrainConfig.preset("nope")
    with pytest.raises(ValueError, match="backend must be"):
        TrainConfig(backend="biggan")


def test_set_overrides_on_the_command_line(tmp_path, capsys):
    from idinvert_plugins.cli import main
    from idinvert_plugins.training.gan import parse_overrides

    overrides = parse_overrides(["batch=8", "data_dir=some/folder", '{"generator": {"w_dim": 16}}'])
    assert overrides == {"batch": 8, "data_dir": "some/folder", "generator": {"w_dim": 16}}
    cfg = TrainConfig.preset("tiny-stylegan2", **overrides)
    assert cfg.batch == 8 and cfg.generator == {**PRESETS["tiny-stylegan2"]["generator"], "w_dim": 16}
    with pytest.raises(ValueError, match=r"unknown GAN training setting\(s\) \['bacth'\]"):
        TrainConfig.preset("tiny-stylegan2", bacth=8)
    assert main(["train-gan", "--preset", "tiny-stylegan2", "--out", str(tmp_path / "run"), "--set", "bacth=8"]) == 2
    assert "unknown GAN training setting(s) ['bacth']" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_networks_build_and_round_trip(name):
    cfg = TrainConfig.preset(name)
    G, D = build_networks(cfg)
    assert G.resolution == D.resolution == cfg.resolution
    for net in (G, D):
        rebuilt = type(net)(**json.loads(json.dumps(net.config)))
        assert rebuilt.state_dict().keys() == net.state_dict().keys()
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_ranks_see_disjoint_images_and_order_depends_only_on_step():
    class Source:
        def __len__(self):
            return 12

    r0 = StepBatches(Source(), 4, DistInfo(rank=0, world_size=2), seed=3)
    r1 = StepBatches(Source(), 4, DistInfo(rank=1, world_size=2), seed=3)
    seen = [(r0.positions(s), r1.positions(s)) for s in range(6)]  # 6 steps x 4 = two epochs of 12
    assert all(len(a) == len(b) == 2 and not set(a) & set(b) for a, b in seen)
    flat = [p for a, b in seen for p in a + b]
    assert sorted(flat[:12]) == list(range(12)) and sorted(flat[12:]) == list(range(12))
    assert flat[:12] != flat[12:]  # a new permutation per epoch
    assert flat[:12] != list(range(12))  # shuffled
    assert StepBatches(Source(), 4, DistInfo(rank=1, world_size=2), seed=3).positions(4) == r1.positions(4)
    assert StepBatches(Source(), 4, DistInfo(rank=1, world_size=2), seed=4).positions(4) != r1.positions(4)


# -- training ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BACKENDS)
def test_discriminator_steps_lower_its_loss(name):
    from idinvert_plugins.training.data import DomainImages
    from idinvert_plugins.training.loop import to_float

    cfg = TrainConfig.preset(name, r1_gamma=0.0, style_mixing_prob=0.0)
    trainer = GANTrainer(cfg)
    source = DomainImages(cfg.data_seed, cfg.resolution, cfg.n_train, cfg.n_total)
    real = to_float(torch.from_numpy(source.images([0, 1, 2, 3])), torch.device("cpu"), False)
    with torch.no_grad():
        fake = trainer.G(torch.randn(4, trainer.G.z_dim, generator=torch.Generator().manual_seed(1)))

    def d_loss() -> float:
        with torch.no_grad():
            D = trainer.D
            return (F.softplus(D(fake)).mean() + F.softplus(-D(real)).mean()).item()

    before = d_loss()
    losses = [trainer.d_step(real)["loss_D"] for _ in range(20)]
    after = d_loss()
    assert after < before - 0.25, (before, after, losses)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    "name,extra",
    [("tiny-stylegan2", dict(bf16=True, channels_last=True, pl_weight=2.0, pl_interval=2)), ("tiny-stylegan", {})],
)
def test_resume_continues_the_same_run(tmp_path, monkeypatch, name, extra):
    cfg = TrainConfig.preset(name, **extra)
    straight = train_gan(cfg, tmp_path / "straight", max_steps=4, progress=False)["trainer"]

    calls = []
    original = GANTrainer.train_step
    monkeypatch.setattr(GANTrainer, "train_step", lambda self, real: calls.append(1) or original(self, real))
    first = train_gan(cfg, tmp_path / "split", max_steps=2, progress=False)["trainer"]
    second = train_gan(cfg, tmp_path / "split", max_steps=4, progress=False)["trainer"]
    assert len(calls) == 4  # 2 + 2: the second call really started from the checkpoint
    assert _max_diff(first.G, second.G) > 0  # and trained on from it

    for net in ("G", "D", "G_ema"):
        assert _max_diff(getattr(straight, net), getattr(second, net)) == 0.0, net
    assert second.step == 4 and second.nimg == 4 * cfg.batch
    assert straight.pl_mean.item() == second.pl_mean.item()
    if extra.get("pl_weight"):
        assert straight.pl_mean.item() > 0

    ckpt = load_checkpoint(tmp_path / "split")  # weights_only=True
    assert ckpt["step"] == 4 and TrainConfig.from_dict(json.loads(ckpt["config"])) == cfg
    torch.testing.assert_close(ckpt["G_ema"]["w_avg"], straight.G_ema.w_avg)
    assert straight.G_ema.w_avg.abs().sum() > 0  # tracked from the mapping outputs

    log = [json.loads(line) for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert log and {"kimg", "images_per_s", "wall_s", "loss_D", "loss_G"} <= set(log[-1])
    assert (tmp_path / "split" / "samples_000000.png").is_file() and (tmp_path / "split" / "reals.png").is_file()
    assert not list((tmp_path / "split").glob("*.tmp"))


def test_run_control_and_config_mismatch(tmp_path):
    cfg = TrainConfig.preset("tiny-stylegan2")
    out = tmp_path / "run"
    train_gan(cfg, out, max_steps=2, progress=False)
    with pytest.raises(ValueError, match="different configuration \\(lr: checkpoint 0.0025 vs given 0.01\\)"):
        train_gan(TrainConfig.preset("tiny-stylegan2", lr=0.01), out, max_steps=3, progress=False)
    # out of time at once: no step, but still a checkpoint; run-control fields may differ when resuming
    control = TrainConfig.preset("tiny-stylegan2", total_kimg=5, workers=1, log_kimg=1)
    assert train_gan(control, out, max_minutes=0, progress=False)["step"] == 2
    assert load_checkpoint(out)["step"] == 2
    # stops by kimg: 3 steps of 4 images reach 0.012 kimg
    assert train_gan(cfg, out, max_kimg=0.012, progress=False)["step"] == 3
    # resume=False starts over, with a fresh log
    assert train_gan(cfg, out, max_steps=1, resume=False, progress=False)["step"] == 1
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [1]


def test_trains_from_a_rendered_folder_train_split_only(tmp_path):
    from PIL import Image

    from idinvert_plugins.data.toyfaces import render_batch, render_dataset, split_sizes

    n = 30  # split_sizes(30) keeps the last image for the test split
    render_dataset(tmp_path / "faces", n, seed=5, resolution=16, progress=False)
    n_train = split_sizes(n)["train"]
    assert n_train < n
    cfg = TrainConfig.preset("tiny-stylegan", data_dir=str(tmp_path / "faces"))
    result = train_gan(cfg, tmp_path / "run", max_steps=2, progress=False)
    assert result["step"] == 2
    # reals.png shows the first training images, read from the folder (the same pixels the renderer makes)
    grid = np.asarray(Image.open(tmp_path / "run" / "reals.png"))
    expected, _ = render_batch(5, range(n_train), 16)
    assert grid.shape == (16 * math.ceil(n_train / 8), 128, 3)
    np.testing.assert_array_equal(grid[:16, :16], expected[0])
    last = n_train - 1
    np.testing.assert_array_equal(grid[(last // 8) * 16 : (last // 8 + 1) * 16, (last % 8) * 16 : (last % 8 + 1) * 16],
                                  expected[last])  # fmt: skip
    assert not grid[(last // 8) * 16 :, (last % 8 + 1) * 16 :].any()  # the test image is not in it


def test_export_writes_loadable_model_folders(tmp_path):
    from idinvert_plugins.hub import load_model

    cfg = TrainConfig.preset("tiny-stylegan2")
    trainer = train_gan(cfg, tmp_path / "run", max_steps=2, progress=False)["trainer"]
    written = export(tmp_path / "run", tmp_path / "models", {"generator": "g", "discriminator": "d"},
                     dtype=None, recompute_w_avg=False)  # fmt: skip
    assert [p.name for p in written] == ["g", "d"]
    G = load_model(tmp_path / "models" / "g", kind="generator")
    D = load_model(tmp_path / "models" / "d", kind="discriminator")
    assert _max_diff(G, trainer.G_ema) == 0.0 and _max_diff(D, trainer.D) == 0.0
    card = (tmp_path / "models" / "g" / "README.md").read_text()
    assert "images_seen: 8 (0.0 kimg, 2 steps)" in card and "hardware" in card
    with pytest.raises(ValueError, match="only have the keys"):
        export(tmp_path / "run", tmp_path / "models", {"encoder": "e"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_on_cpu(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(
        """
        import hashlib, os, sys
        from idinvert_plugins.training.gan import TrainConfig, train_gan

        out, ranks = sys.argv[1], sys.argv[2]
        cfg = TrainConfig.preset("tiny-stylegan2", pl_weight=2.0, pl_interval=2)
        trainer = train_gan(cfg, out, max_steps=3, progress=False)["trainer"]
        h = hashlib.sha256()
        for net in (trainer.G, trainer.D, trainer.G_ema):
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
           str(script), str(out), str(ranks)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    digests, gloo_threads = zip(*((ranks / f"rank{r}.txt").read_text().split("\n") for r in (0, 1)))
    assert gloo_threads == ("", ""), gloo_threads  # see training.distributed.import_before_group
    assert digests[0] == digests[1]  # gradients and EMAs were averaged: both ranks hold the same nets
    ckpt = load_checkpoint(out)
    assert ckpt["world_size"] == 2 and ckpt["step"] == 3 and ckpt["nimg"] == 3 * 4 and len(ckpt["rng"]) == 2
    assert not torch.equal(ckpt["rng"][0]["cpu"], ckpt["rng"][1]["cpu"])  # each rank draws its own z
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == ["resume.pt"]
    assert len((out / "log.jsonl").read_text().splitlines()) >= 1
    single = GANTrainer(TrainConfig.preset("tiny-stylegan2"))
    assert _max_diff(single.G, _load_g(ckpt)) > 0  # the networks did train


def _load_g(ckpt):
    G, _ = build_networks(TrainConfig.from_dict(json.loads(ckpt["config"])))
    G.load_state_dict(ckpt["G"])
    return G


def test_sigint_stops_with_a_checkpoint_of_the_last_whole_step(tmp_path):
    """Ctrl-C (SIGINT) mid-run: the CLI exits 0 and writes a checkpoint at the step it finished, long before
    the 1000-kimg budget and without waiting for the next checkpoint interval."""
    import signal
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "idinvert_plugins.cli", "train-gan", "--preset", "tiny-stylegan2", "--out", str(out),
           "--kimg", "1000", "--set", "checkpoint_kimg=1000", "--set", "log_kimg=0.004"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 120
        while not (out / "log.jsonl").is_file() or len((out / "log.jsonl").read_text().splitlines()) < 2:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.time() < deadline, "no training progress within 120 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "SIGINT received" in err
    ckpt = load_checkpoint(out)
    assert 2 <= ckpt["step"] < 250_000 and ckpt["nimg"] == ckpt["step"] * 4


def test_compacted_checkpoint_resumes(tmp_path):
    """`compact_checkpoint` (bf16 Adam moments, for committing a resume point) keeps the networks exact and the
    run resumable."""
    from idinvert_plugins.training.gan import CHECKPOINT_NAME, compact_checkpoint

    cfg = TrainConfig.preset("tiny-stylegan2")
    first = train_gan(cfg, tmp_path / "run", max_steps=2, progress=False)["trainer"]
    before = (tmp_path / "run" / CHECKPOINT_NAME).stat().st_size
    compact_checkpoint(tmp_path / "run")
    ckpt = load_checkpoint(tmp_path / "run")
    assert (tmp_path / "run" / CHECKPOINT_NAME).stat().st_size < before
    assert all(s["exp_avg"].dtype == torch.bfloat16 for s in ckpt["G_opt"]["state"].values())
    for net in ("G", "D", "G_ema"):
        for k, v in getattr(first, net).state_dict().items():
            assert torch.equal(ckpt[net][k], v), (net, k)
    second = train_gan(cfg, tmp_path / "run", max_steps=4, progress=False)["trainer"]
    assert second.step == 4 and _max_diff(first.G, second.G) > 0
    assert all(s["exp_avg"].dtype == torch.float32 for s in second.G_opt.state.values())
