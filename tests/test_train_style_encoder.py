"""`idinvert train-encoder --objective psp|e4e|restyle` on the shared training loop, for a few steps on a tiny
generator: logs, checkpoints and resumption, e4e's progressive stages and latent discriminator, ReStyle's
iterations, export to a model folder that the methods load, e4e's W pools (their semantics, and resumption
reproducing them), and the identity network's clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_stylegan2

from idinvert_plugins.hub import load_encoder, save_pretrained
from idinvert_plugins.pipeline import Pipeline
from idinvert_plugins.training.style_encoder import (
    LatentCodesDiscriminator,
    LatentCodesPool,
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
    with pytest.raises(ValueError, match=r"l_id > 0 needs an identity network: pass --set "
                                         r"id_net=arcface-ir-se50:PATH .*model_ir_se50.pth.*or --set l_id=0"):
        config(generator, "psp", l_id=0.1)
    with pytest.raises(FileNotFoundError, match=r"arcface-ir-se50 weights file .*model_ir_se50.pth not found.* "
                                                r"pass --set id_net=arcface-ir-se50:PATH .*or --set l_id=0"):
        load_id_network(str(tmp_path / "model_ir_se50.pth"), torch.device("cpu"))
    bad = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, bad)
    with pytest.raises(ValueError, match="is not an ArcFace IR-SE50 state dict"):
        load_id_network(str(bad), torch.device("cpu"))


def test_w_pool_semantics_seeded():
    w = torch.arange(40.0).reshape(10, 4)
    assert LatentCodesPool(0).query(w) is w  # size 0: no pool
    pool = LatentCodesPool(3, seed=0)
    assert torch.equal(pool.query(w[:2]), w[:2]) and len(pool) == 2  # filling: stored and returned as they are
    out = pool.query(w[2:4])  # w2 fills the pool; w3 meets a full pool
    assert torch.equal(out[0], w[2]) and len(pool) == 3
    swapped = 0
    for step in range(400):
        before = [c.clone() for c in pool.codes]
        new = torch.randn(2, 4, generator=torch.Generator().manual_seed(step))
        out = pool.query(new)
        for i in range(2):  # replay the query on `before`: each code either passes or swaps with a stored one
            if torch.equal(out[i], new[i]):  # returned the new code, the pool unchanged by it
                continue
            slot = next(j for j, c in enumerate(before) if torch.equal(c, out[i]))  # a stored code, returned ...
            before[slot] = new[i]  # ... and the new code takes its place
            swapped += 1
        assert all(torch.equal(a, b) for a, b in zip(before, pool.codes))
    assert 0.45 < swapped / 800 < 0.55  # probability 0.5
    # W+ codes [N, L, w]: one random trained layer per image
    layers = torch.randn(6, 5, 4)
    fresh = LatentCodesPool(50, seed=1)
    picked = fresh.query(layers)
    assert picked.shape == (6, 4)
    assert all(any(torch.equal(picked[n], layers[n, i]) for i in range(5)) for n in range(6))
    assert len({next(i for i in range(5) if torch.equal(picked[n], layers[n, i])) for n in range(6)}) > 1
    # seeded: the same seed draws the same, another seed otherwise
    a, b, c = LatentCodesPool(2, seed=7), LatentCodesPool(2, seed=7), LatentCodesPool(2, seed=8)
    queries = [torch.randn(4, 4, generator=torch.Generator().manual_seed(s)) for s in range(20)]
    outs = [[p.query(q) for q in queries] for p in (a, b, c)]
    assert all(torch.equal(x, y) for x, y in zip(outs[0], outs[1]))
    assert not all(torch.equal(x, y) for x, y in zip(outs[0], outs[2]))
    # the state (codes and generator) continues exactly
    restored = LatentCodesPool(2, seed=123)
    restored.load_state_dict(a.state_dict())
    more = torch.randn(8, 4)
    assert torch.equal(restored.query(more), a.query(more))
    with pytest.raises(ValueError, match="size 2 cannot be loaded into one of size 3"):
        LatentCodesPool(3).load_state_dict(a.state_dict())


def test_e4e_runs_from_before_the_w_pools_resume_only_without_them(generator, tmp_path):
    run = tmp_path / "old"
    train_style_encoder(config(generator, "e4e", w_pool_size=0), run, max_steps=1, progress=False)
    ckpt = torch.load(run / "resume.pt", map_location="cpu", weights_only=True)
    saved = json.loads(ckpt["config"])
    del saved["w_pool_size"]  # a checkpoint written before the pools existed
    ckpt["config"] = json.dumps(saved)
    torch.save(ckpt, run / "resume.pt")
    assert StyleEncoderTrainConfig.from_dict(saved).w_pool_size == 0
    with pytest.raises(ValueError, match=r"other settings \(w_pool_size\)"):
        train_style_encoder(config(generator, "e4e"), run, max_steps=2, progress=False)
    assert train_style_encoder(config(generator, "e4e", w_pool_size=0), run, max_steps=2,
                               progress=False)["step"] == 2


def test_e4e_w_pools_feed_the_discriminator_and_resume_exactly(generator, tmp_path):
    cfg = config(generator, "e4e", w_pool_size=5)
    straight = train_style_encoder(cfg, tmp_path / "straight", max_steps=4, progress=False)["trainer"]
    pools = straight.w_pools
    assert set(pools) == {"fake", "real"} and len(pools["fake"]) == len(pools["real"]) == 5  # 16 codes seen each
    ckpt = torch.load(tmp_path / "straight" / "resume.pt", map_location="cpu", weights_only=True)
    assert ckpt["w_pools"]["fake"]["codes"].shape == (5, straight.G.w_dim)
    train_style_encoder(cfg, tmp_path / "resumed", max_steps=2, progress=False)
    resumed = train_style_encoder(cfg, tmp_path / "resumed", max_steps=4, progress=False)["trainer"]
    assert resumed.step == straight.step == 4
    for which in ("fake", "real"):
        assert torch.equal(torch.stack(resumed.w_pools[which].codes), torch.stack(pools[which].codes))
        assert torch.equal(resumed.w_pools[which].generator.get_state(), pools[which].generator.get_state())
    for k, v in straight.D.state_dict().items():
        assert torch.equal(resumed.D.state_dict()[k], v), k
    # what D sees: through the pools one fake per image (a trained layer's code, or a stored one) and one real;
    # without them every trained layer's code of this step
    off = train_style_encoder(config(generator, "e4e", w_pool_size=0), tmp_path / "off", max_steps=1,
                              progress=False)["trainer"]
    assert off.w_pools is None and off.D is not None
    for trainer, n_fake in ((straight, 4), (off, 4 * 3)):
        seen = []
        hook = trainer.D.register_forward_pre_hook(lambda module, args, seen=seen: seen.append(args[0].clone()))
        trainer.nimg = 12  # stage 2 (tiny: w0 alone for 8 images, then one more layer per 4)
        stored = [c.clone() for c in trainer.w_pools["fake"].codes] if trainer.w_pools else []
        codes = torch.randn(4, trainer.G.num_layers, trainer.G.w_dim)
        trainer.discriminator_step(codes)
        hook.remove()
        real, fake = seen[0], seen[1]
        assert real.shape == (4, trainer.G.w_dim) and fake.shape == (n_fake, trainer.G.w_dim)
        candidates = [*codes[:, :3].reshape(-1, codes.shape[-1]), *stored]  # layers 0..2, or the pool's codes
        assert all(any(torch.equal(f, c) for c in candidates) for f in fake)
        assert not any(torch.equal(f, c) for f in fake for c in codes[:, 3:].reshape(-1, codes.shape[-1]))
