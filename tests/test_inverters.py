"""Inverters on tiny models: the objective goes down, batch inversion equals per-image inversion, masks,
frozen networks, the loss record, encoder-only inversion, option validation and registration."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_stylegan, tiny_stylegan2

import idinvert_plugins as ip
from idinvert_plugins.inverters import EncoderInverter, IDInvert, Image2StyleGAN, InversionResult
from idinvert_plugins.losses import ClassifierFeatures
from idinvert_plugins.models.classifier import AttributeClassifier, head_spec
from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder


def randomise_batchnorm(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial running statistics, so that a BatchNorm left in training mode would change the results."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


@pytest.fixture(scope="module")
def G():
    return tiny_stylegan(resolution=16, seed=0)


@pytest.fixture(scope="module")
def E(G):
    torch.manual_seed(1)
    enc = IDInvertEncoder(resolution=16, num_layers=G.num_layers, w_dim=G.w_dim, channel_base=8, channel_max=16)
    randomise_batchnorm(enc, 2)
    return enc.eval()


@pytest.fixture(scope="module")
def Fnet():
    torch.manual_seed(3)
    clf = AttributeClassifier([head_spec("a", "binary")], resolution=16, channels=[8, 8, 8])
    randomise_batchnorm(clf, 4)
    return ClassifierFeatures(clf.eval(), layer="stage1", loss_weight=0.3)


@pytest.fixture(scope="module")
def targets(G):
    """Two in-domain images (from random W+ codes) with a little noise so that they are not exactly reachable."""
    with torch.no_grad():
        wp = G.mapping(G.sample_z(2, seed=5))
        x = G.synthesis(wp) + 0.05 * torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    return x.clamp(-1, 1)


def run(inverter, G, images, **kwargs) -> InversionResult:
    return inverter.invert(G, images, **kwargs)


def test_idinvert_lowers_the_objective_and_records_every_step(G, E, Fnet, targets):
    res = run(IDInvert(), G, targets, encoder=E, feature_net=Fnet, steps=25, lr=0.01)
    assert res.codes.shape == (2, G.num_layers, G.w_dim) and res.images.shape == targets.shape
    assert len(res.losses) == 25 and res.info["steps_run"] == 25
    first, final = res.losses[0], res.final_losses
    assert set(first) == {"total", "pix", "feat", "dom"}
    for i in range(2):
        # the total is the weighted sum of the terms (defaults: l_pix 1, l_feat = the network's 0.3, l_dom 2)
        assert first["total"][i] == pytest.approx(first["pix"][i] + 0.3 * first["feat"][i] + 2 * first["dom"][i])
        assert final["total"][i] < 0.8 * first["total"][i]
        assert final["pix"][i] < first["pix"][i]
    assert res.info["weights"] == {"l_pix": 1.0, "l_feat": 0.3, "l_dom": 2.0}
    assert res.info["inverter"] == "idinvert" and res.info["feature_net"] == Fnet.name
    assert res.seconds > 0
    with torch.no_grad():
        # (rendered one image per pass on CPU: float noise against a batch of 2)
        torch.testing.assert_close(res.images, G.synthesis(res.codes), rtol=0, atol=2e-5)
        torch.testing.assert_close(res.init_codes, E(targets))
    assert res.loss_curve("pix").shape == (25, 2)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 2, None])  # 1: one image per pass; 2 or None (16 px): both in one
def test_batch_inversion_equals_per_image_inversion(G, E, Fnet, targets, masked, chunk_size):
    mask = None
    if masked:
        mask = torch.zeros(2, 1, 16, 16)
        mask[:, :, 3:12, 4:14] = 1
    options = dict(encoder=E, feature_net=Fnet, steps=6, lr=0.01)
    both = run(IDInvert(), G, targets, mask=mask, chunk_size=chunk_size, **options)
    for i in range(2):
        one = run(IDInvert(), G, targets[i : i + 1], mask=None if mask is None else mask[i : i + 1], **options)
        torch.testing.assert_close(both.codes[i : i + 1], one.codes, rtol=0, atol=1e-5)
        assert both.losses[-1]["total"][i] == pytest.approx(one.losses[-1]["total"][0], rel=1e-4)


def test_cpu_chunks_are_sized_by_pixels():
    from idinvert_plugins.inverters.optimize import cpu_chunk_size

    assert [cpu_chunk_size(r * r) for r in (16, 64, 128, 256, 1024)] == [128, 8, 2, 1, 1]


def test_masked_loss_ignores_pixels_outside_the_mask(G, E, Fnet, targets):
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 2:10] = 1
    other = targets.clone()
    other[..., :, 10:] = torch.rand_like(other[..., :, 10:]) * 2 - 1  # outside the mask only
    other[..., :4, :] = -1
    start = E(targets).detach()
    options = dict(encoder=E, feature_net=Fnet, mask=mask, init_codes=start, steps=4)
    a, b = run(IDInvert(), G, targets, **options), run(IDInvert(), G, other, **options)
    assert torch.equal(a.codes, b.codes) and a.losses == b.losses
    # ... but inside the mask the target matters
    inside = targets.clone()
    inside[..., 6, 6] = -inside[..., 6, 6]
    c = run(IDInvert(), G, inside, **options)
    assert not torch.equal(a.codes, c.codes)
    # the pixel term is normalised by the whole image size, not the mask area
    with torch.no_grad():
        err = ((targets - G.synthesis(start)) * mask).pow(2).sum(dim=(1, 2, 3)) / targets[0].numel()
    torch.testing.assert_close(torch.tensor(a.losses[0]["pix"]), err, rtol=1e-5, atol=0)


def test_networks_are_frozen_and_restored(G, targets):
    torch.manual_seed(7)
    enc = IDInvertEncoder(resolution=16, num_layers=G.num_layers, w_dim=G.w_dim, channel_base=8, channel_max=16)
    clf = AttributeClassifier([head_spec("a", "binary")], resolution=16, channels=[8, 8, 8])
    feat = ClassifierFeatures(clf, layer="stage1")
    gen = tiny_stylegan(resolution=16, seed=0).train()
    modules = (gen, enc, feat)
    flags = {id(p): p.requires_grad for m in modules for p in m.parameters()}
    assert True in flags.values() and False in flags.values()  # the encoder's BN gamma is frozen by design
    stats = enc.blocks[0].bn.running_mean.clone()
    run(IDInvert(), gen, targets, encoder=enc, feature_net=feat, steps=3)
    for m in modules:
        for p in m.parameters():
            assert p.grad is None
            assert p.requires_grad == flags[id(p)]
        assert all(sub.training for sub in m.modules())  # training mode restored
    # BatchNorm ran in eval mode: its running statistics were not updated
    assert torch.equal(enc.blocks[0].bn.running_mean, stats)


def test_callback_sees_every_step_and_can_stop(G, E, targets):
    seen = []

    def callback(step, codes, terms):
        seen.append((step, codes.shape, sorted(terms)))
        return step == 3

    res = run(IDInvert(), G, targets, encoder=E, steps=10, callback=callback)
    assert [s for s, _, _ in seen] == [1, 2, 3]
    assert seen[0][1] == (2, G.num_layers, G.w_dim) and seen[0][2] == ["dom", "pix", "total"]
    assert len(res.losses) == 3 and res.info["steps_run"] == 3


def test_encoder_only_inversion(G, E, targets):
    res = run(EncoderInverter(), G, targets, encoder=E)
    with torch.no_grad():
        codes = E(targets)
        torch.testing.assert_close(res.codes, codes, rtol=0, atol=0)
        torch.testing.assert_close(res.images, G.synthesis(codes), rtol=0, atol=2e-5)
    assert res.losses == [] and torch.equal(res.init_codes, res.codes)
    assert res.final_losses["pix"] == pytest.approx(((targets - res.images) ** 2).mean(dim=(1, 2, 3)).tolist())
    # offset encoders (e.g. for StyleGAN2): E(x) + w_avg, by argument or by the encoder's config
    with_avg = run(EncoderInverter(), G, targets, encoder=E, add_w_avg=True)
    torch.testing.assert_close(with_avg.codes, codes + G.w_avg, rtol=0, atol=0)
    E.config["add_w_avg"] = True
    try:
        torch.testing.assert_close(run(EncoderInverter(), G, targets, encoder=E).codes, codes + G.w_avg)
        assert torch.equal(run(IDInvert(), G, targets, encoder=E, steps=0).init_codes, codes + G.w_avg)
    finally:
        del E.config["add_w_avg"]


def test_image2stylegan_starts_from_w_avg_without_encoder(targets):
    G2 = tiny_stylegan2(resolution=16, seed=0)
    res = run(Image2StyleGAN(), G2, targets, steps=8, lr=0.05)
    torch.testing.assert_close(res.init_codes, G2.w_avg.expand(2, G2.num_layers, -1))
    assert set(res.losses[0]) == {"total", "pix"}
    assert all(f < i for f, i in zip(res.final_losses["total"], res.losses[0]["total"]))
    assert Image2StyleGAN().resolve_params({})["steps"] == 500


def test_options_and_inputs_are_validated(G, E, targets):
    inv = IDInvert()
    with pytest.raises(ValueError, match=r"inverter 'idinvert' has no parameter\(s\) \['step'\]; it takes .*'steps'"):
        inv.invert(G, targets, encoder=E, step=3)
    with pytest.raises(ValueError, match=r"'steps'=-1 is outside \[0, 100000\]"):
        inv.invert(G, targets, encoder=E, steps=-1)
    with pytest.raises(ValueError, match="'noise_mode'='blurry' is not one of"):
        inv.invert(G, targets, encoder=E, noise_mode="blurry")
    with pytest.raises(ValueError, match="inverter 'idinvert' needs an encoder"):
        inv.invert(G, targets)
    with pytest.raises(ValueError, match=r"l_feat=0.1 needs a feature network"):
        inv.invert(G, targets, encoder=E, l_feat=0.1, steps=1)
    with pytest.raises(ValueError, match=r"images must be \[N, 3, 16, 16\] .* got \[2, 3, 32, 32\]"):
        inv.invert(G, torch.zeros(2, 3, 32, 32), encoder=E)
    with pytest.raises(ValueError, match=r"mask must be \[2 or 1, 1 or 3, 16, 16\], got \[2, 2, 16, 16\]"):
        inv.invert(G, targets, encoder=E, mask=torch.ones(2, 2, 16, 16))
    with pytest.raises(TypeError, match=r"images must be a float tensor .* got a torch.uint8 tensor"):
        inv.invert(G, torch.zeros(2, 3, 16, 16, dtype=torch.uint8), encoder=E)
    with pytest.raises(ValueError, match="init_codes has 3 codes for 2 images"):
        inv.invert(G, targets, init_codes=torch.zeros(3, G.num_layers, G.w_dim))
    other = IDInvertEncoder(resolution=16, num_layers=G.num_layers, w_dim=16, channel_base=8, channel_max=16).eval()
    with pytest.raises(ValueError, match=r"encoder output \[2, 6, 16\] does not fit the generator's W\+ code"):
        inv.invert(G, targets, encoder=other, steps=1)


def test_defaults_follow_the_official_inverter():
    values = IDInvert().resolve_params({})
    assert values == {"steps": 100, "lr": 0.01, "l_pix": 1.0, "l_feat": None, "l_dom": 2.0, "add_w_avg": None,
                      "noise_mode": "const", "feature_autocast": False, "autocast": False,
                      "chunk_size": None}
    described = IDInvert().describe()
    assert described["requires_encoder"] and [p["name"] for p in described["params"]][:2] == ["steps", "lr"]


def test_feature_autocast_stays_close(G, E, Fnet, targets):
    exact = run(IDInvert(), G, targets, encoder=E, feature_net=Fnet, steps=3)
    fast = run(IDInvert(), G, targets, encoder=E, feature_net=Fnet, steps=3, feature_autocast=True)
    assert fast.info["options"]["feature_autocast"] is True
    moved = (exact.codes - exact.init_codes).abs().mean()
    assert not torch.equal(fast.codes, exact.codes)  # bfloat16 features do change the numbers ...
    assert (fast.codes - exact.codes).abs().mean() < 0.02 * moved  # ... but only slightly


@pytest.mark.parametrize("method", ["idinvert", "image2stylegan"])
def test_autocast_stays_close_and_renders_the_result_in_float32(G, E, Fnet, targets, method):
    inverter = ip.get_inverter(method)
    exact = run(inverter, G, targets, encoder=E, feature_net=Fnet, steps=3)
    fast = run(inverter, G, targets, encoder=E, feature_net=Fnet, steps=3, autocast=True)
    assert fast.info["options"]["autocast"] is True
    moved = (exact.codes - exact.init_codes).abs().mean()
    assert not torch.equal(fast.codes, exact.codes)
    assert (fast.codes - exact.codes).abs().mean() < 0.05 * moved
    with torch.no_grad():  # the returned reconstruction is the float32 render of the returned codes
        torch.testing.assert_close(fast.images, G.synthesis(fast.codes, noise_mode="const"), rtol=0, atol=1e-6)
    assert fast.images.dtype == torch.float32


def test_inverters_are_registered_plugins():
    assert isinstance(ip.get_inverter("idinvert"), IDInvert)
    assert isinstance(ip.get_inverter("image2stylegan"), Image2StyleGAN)
    assert isinstance(ip.get_inverter("encoder"), EncoderInverter)
    assert ip.get_plugins().get("feature", "vgg16-features").__name__ == "VGG16Features"


def test_encoder_head_stays_float32_under_autocast(E):
    """Under bf16 autocast only the encoder's convolutions run in bf16: its large FC head stays float32."""
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        exact = E(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = E(x)
    assert fast.dtype == torch.float32 and not torch.equal(fast, exact)
    torch.testing.assert_close(fast, exact, atol=0.05, rtol=0.05)
