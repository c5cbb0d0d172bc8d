"""StyleGAN2 generator: parity with rosinality/stylegan2-pytorch and NVlabs/stylegan2-ada-pytorch outputs
(reference fixtures), and the behaviour the rest of the library relies on (noise modes, W/W+, styles,
gradients, bf16 autocast, channels_last), plus the FIR primitives of ``models/layers.py``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from idinvert_plugins.convert.nvlabs import NVlabsFormat
from idinvert_plugins.convert.rosinality import RosinalityFormat
from idinvert_plugins.models import layers
from idinvert_plugins.models.stylegan2 import StyleGAN2Generator

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "reference"
ATOL = 1e-4  # fixture README: forward images and codes (our op order matches, 5e-4 was not needed)


def _reference(family: str) -> Path:
    folder = REFERENCE / family
    if not folder.is_dir():
        pytest.skip(f"reference fixtures not found at {folder} (they live in ../shared next to the repo)")
    return folder


def _load(converted) -> StyleGAN2Generator:
    G = StyleGAN2Generator(**converted.args)
    G.load_state_dict(converted.state_dict, strict=True)
    return G.eval()


@pytest.fixture(scope="module")
def rosinality():
    folder = _reference("rosinality")
    ckpt = torch.load(folder / "rosinality_stylegan2_64.pt", map_location="cpu", weights_only=True)
    io = {k: torch.from_numpy(v) for k, v in np.load(folder / "rosinality_stylegan2_64_io.npz").items()}
    return _load(RosinalityFormat().convert(ckpt)[0]), io


@pytest.fixture(scope="module")
def nvlabs():
    folder = _reference("nvlabs")
    sd = torch.load(folder / "nvlabs_stylegan2ada_64_G_ema_state_dict.pt", map_location="cpu", weights_only=True)
    init_kwargs = json.loads((folder / "nvlabs_stylegan2ada_64_meta.json").read_text())["init_kwargs"]
    io = {k: torch.from_numpy(v) for k, v in np.load(folder / "nvlabs_stylegan2ada_64_io.npz").items()}
    converted = NVlabsFormat().convert({"G_ema": {"state_dict": sd, "init_kwargs": init_kwargs}})[0]
    return _load(converted), io


def _close(actual: torch.Tensor, expected: torch.Tensor, atol: float = ATOL) -> None:
    assert actual.shape == expected.shape
    diff = (actual.float() - expected.float()).abs().max().item()
    assert diff <= atol, f"max |diff| = {diff:.3g} > {atol}"


def random_generator(seed: int = 0, **kwargs) -> StyleGAN2Generator:
    """A tiny generator whose every parameter is non-trivial (noise strengths and biases non-zero)."""
    torch.manual_seed(seed)
    args = dict(resolution=16, z_dim=24, w_dim=32, mapping_layers=2, channels={4: 16, 8: 12, 16: 8})
    args.update(kwargs)
    G = StyleGAN2Generator(**args).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
            elif name.endswith("bias") and "affine" not in name:
                p.normal_(0, 0.1)
        G.w_avg.normal_()
    return G


# -- reference parity ---------------------------------------------------------------------------------------
@torch.no_grad()
def test_rosinality_mapping_and_truncation(rosinality):
    G, io = rosinality
    _close(G.to_wplus(G.mapping(io["z"])), io["wplus_from_z"])
    _close(G.to_wplus(G.mapping(io["z"], truncation_psi=0.7)), io["wplus_from_z_trunc0.7"])
    _close(G.w_avg, io["latent_avg"], atol=0)


@torch.no_grad()
def test_rosinality_images(rosinality):
    G, io = rosinality
    _close(G.synthesis(G.mapping(io["z"])), io["image_from_z"])
    _close(G(io["z"], truncation_psi=0.7), io["image_from_z_trunc0.7"])
    _close(G.synthesis(io["w"]), io["image_from_w"])
    _close(G.synthesis(io["wplus"]), io["image_from_wplus"])
    _close(G.synthesis(io["wplus"], noise_mode="none"), io["image_from_wplus_zero_noise"])
    # Style mixing at inject_index 3: W+ layers < 3 from z, the rest from z2.
    k = int(io["mix_inject_index"])
    assert k == 3
    w1, w2 = G.to_wplus(G.mapping(io["z"])), G.to_wplus(G.mapping(io["z2"]))
    _close(G.synthesis(torch.cat([w1[:, :k], w2[:, k:]], dim=1)), io["image_from_z_mix"])


@torch.no_grad()
def test_rosinality_explicit_zero_noise_equals_none(rosinality):
    G, io = rosinality
    zeros = {name: torch.zeros(shape) for name, shape in G.noise_shapes().items()}
    assert len(zeros) == 9  # rosinality's noises.noise_0..8
    _close(G.synthesis(io["wplus"], noise=zeros), io["image_from_wplus_zero_noise"])


@torch.no_grad()
def test_nvlabs_mapping_truncation_and_w_avg(nvlabs):
    G, io = nvlabs
    assert G.config["conv_clamp"] == 256  # from the pkl-style init_kwargs
    _close(G.to_wplus(G.mapping(io["z"])), io["ws_from_z"])
    _close(G.to_wplus(G.mapping(io["z"], 0.7)), io["ws_from_z_trunc0.7"])
    ws = G.mapping(io["z"], 0.7, truncation_cutoff=4)
    assert ws.shape == (4, 10, 512)
    _close(ws, io["ws_from_z_trunc0.7_cutoff4"])
    _close(G.w_avg, io["w_avg"], atol=0)


@torch.no_grad()
def test_nvlabs_images(nvlabs):
    G, io = nvlabs
    _close(G(io["z"]), io["image_from_z_const"])
    _close(G(io["z"], truncation_psi=0.7), io["image_from_z_trunc0.7_const"])
    _close(G.synthesis(io["ws_plus"], noise_mode="const"), io["image_from_ws_plus_const"])
    _close(G.synthesis(io["ws_plus"], noise_mode="none"), io["image_from_ws_plus_nonoise"])


@torch.no_grad()
def test_fused_and_unfused_modconv_agree(nvlabs):
    G, io = nvlabs
    fused = G.synthesis(io["ws_plus"], fused_modconv=True)
    _close(G.synthesis(io["ws_plus"], fused_modconv=False), fused, atol=2e-5)
    _close(fused, io["image_from_ws_plus_const"])


# -- interface behaviour ------------------------------------------------------------------------------------
def test_config_rebuilds_and_is_json_safe():
    G = random_generator()
    assert G.num_layers == 2 * 4 - 2 and G.resolution == 16 and G.img_channels == 3
    config = json.loads(json.dumps(G.config))
    assert config["channels"] == {"4": 16, "8": 12, "16": 8}
    G2 = StyleGAN2Generator(**config)
    G2.load_state_dict(G.state_dict(), strict=True)
    ws = torch.randn(2, G.num_layers, G.w_dim)
    with torch.no_grad():
        assert torch.equal(G.synthesis(ws), G2.eval().synthesis(ws))
    # The NVlabs channel rule when no table is given.
    G3 = StyleGAN2Generator(resolution=32, z_dim=8, w_dim=8, mapping_layers=1, channel_base=256, channel_max=32)
    assert G3.config["channels"] == {"4": 32, "8": 32, "16": 16, "32": 8}
    assert G3.synthesis_network.b32.conv0.weight.shape == (8, 16, 3, 3)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Generator(resolution=48)
    with pytest.raises(ValueError, match=r"missing \[16\]"):
        StyleGAN2Generator(resolution=16, channels={4: 8, 8: 8})
    with pytest.raises(ValueError, match=r"unexpected \[32\]"):
        StyleGAN2Generator(resolution=16, channels={4: 8, 8: 8, 16: 8, 32: 8})
    G = random_generator()
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        G.synthesis(torch.randn(1, G.w_dim), noise_mode="fixed")
    with pytest.raises(ValueError, match="unknown noise layers"):
        G.synthesis(torch.randn(1, G.w_dim), noise={"b4.torgb": torch.zeros(1, 1, 4, 4)})
    with pytest.raises(ValueError, match=r"z must be \[N, 24\]"):
        G.mapping(torch.randn(2, 32))
    with pytest.raises(ValueError, match="codes must be W"):
        G.synthesis(torch.randn(1, 5, G.w_dim))


@torch.no_grad()
def test_noise_modes():
    G = random_generator()
    ws = torch.randn(2, G.num_layers, G.w_dim)
    const = G.synthesis(ws, "const")
    assert torch.equal(const, G.synthesis(ws, "const"))
    random1, random2 = G.synthesis(ws, "random"), G.synthesis(ws, "random")
    none = G.synthesis(ws, "none")
    assert (random1 - random2).abs().max() > 1e-3
    assert (random1 - const).abs().max() > 1e-3
    assert (none - const).abs().max() > 1e-3
    assert torch.equal(none, G.synthesis(ws, "none"))
    # Explicit noise maps: the stored ones reproduce "const", zeros reproduce "none".
    stored = {name: layer.noise_const[None, None] for name, layer in G.synthesis_network.noise_layers()}
    _close(G.synthesis(ws, "random", noise=stored), const, atol=1e-6)
    _close(G.synthesis(ws, "const", noise={k: torch.zeros_like(v) for k, v in stored.items()}), none, atol=1e-6)
    # With zero noise strength every mode gives the same image.
    for _, layer in G.synthesis_network.noise_layers():
        layer.noise_strength.zero_()
    assert torch.equal(G.synthesis(ws, "random"), G.synthesis(ws, "none"))


@torch.no_grad()
def test_w_broadcasts_to_every_layer_and_truncation():
    G = random_generator()
    z = torch.randn(3, G.z_dim)
    w = G.mapping(z)
    assert w.shape == (3, G.w_dim)
    assert torch.equal(G.synthesis(w), G.synthesis(w[:, None].expand(-1, G.num_layers, -1)))
    _close(G.mapping(z, 0.5), G.w_avg + 0.5 * (w - G.w_avg), atol=1e-6)
    wp = G.mapping(z, 0.5, truncation_cutoff=2)
    assert wp.shape == (3, G.num_layers, G.w_dim)
    _close(wp[:, :2], (G.w_avg + 0.5 * (w - G.w_avg))[:, None].expand(-1, 2, -1), atol=1e-6)
    assert torch.equal(wp[:, 2:], w[:, None].expand(-1, G.num_layers - 2, -1))


@torch.no_grad()
def test_styles_names_shapes_and_resynthesis():
    G = random_generator()
    ws = torch.randn(2, G.num_layers, G.w_dim)
    styles = G.styles(ws)
    names = ["b4.conv1", "b4.torgb", "b8.conv0", "b8.conv1", "b8.torgb", "b16.conv0", "b16.conv1", "b16.torgb"]
    assert list(styles) == names
    in_channels = [16, 16, 16, 12, 12, 12, 8, 8]
    assert [tuple(s.shape) for s in styles.values()] == [(2, c) for c in in_channels]
    # torgb of block r shares the w of the next block's first conv: 6 W+ entries for 8 styled layers.
    ws2 = ws.clone()
    ws2[:, 1] += 1.0
    changed = [n for n, s in G.styles(ws2).items() if not torch.equal(s, styles[n])]
    assert changed == ["b4.torgb", "b8.conv0"]
    image = G.synthesis(ws)
    assert torch.equal(G.synthesis_from_styles(styles), image)
    # Demodulation makes a conv layer invariant to a uniform scale of its style, not to one channel's.
    scaled = dict(styles, **{"b8.conv1": styles["b8.conv1"] * 2})
    _close(G.synthesis_from_styles(scaled), image, atol=1e-5)
    edited = styles["b8.conv1"].clone()
    edited[:, 0] += 3.0
    assert (G.synthesis_from_styles(dict(styles, **{"b8.conv1": edited})) - image).abs().max() > 1e-3


def test_backward_wrt_ws_only():
    """Inversion: gradients w.r.t. the code with a frozen generator."""
    G = random_generator().requires_grad_(False)
    ws = G.w_avg.expand(2, G.num_layers, -1).clone().requires_grad_(True)
    target = torch.rand(2, 3, 16, 16) * 2 - 1
    loss = F.mse_loss(G.synthesis(ws), target)
    loss.backward()
    assert ws.grad is not None and torch.isfinite(ws.grad).all() and ws.grad.abs().sum() > 0
    assert all(p.grad is None for p in G.parameters())


@pytest.mark.parametrize("fused", [True, False])
def test_training_backward_and_path_length_double_backward(fused):
    """Training: gradients through weights and inputs, and the path-length regulariser's grad-of-grad."""
    G = random_generator().train()
    z = torch.randn(4, G.z_dim)
    ws = G.mapping(z)[:, None].expand(-1, G.num_layers, -1)
    img = G.synthesis(ws, "random", fused_modconv=fused)
    (grad,) = torch.autograd.grad((img * torch.randn_like(img)).sum() / 16, ws, create_graph=True)
    penalty = grad.square().sum(2).mean(1).sqrt().square().mean()
    (img.mean() + penalty).backward()
    for name, p in G.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert G.synthesis_network.b16.conv0.weight.grad.abs().sum() > 0
    assert G.mapping_network.fc0.weight.grad.abs().sum() > 0


@torch.no_grad()
def test_bf16_autocast_and_channels_last_stay_close_to_fp32():
    G = random_generator(resolution=32, channels={4: 32, 8: 32, 16: 16, 32: 16})
    z = torch.randn(4, G.z_dim)
    ws = G.mapping(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ws_autocast = G.mapping(z)
    assert ws_autocast.dtype == torch.float32 and torch.equal(ws_autocast, ws)  # the mapping stays in fp32
    reference = G.synthesis(ws)
    scale = reference.abs().max().item()
    G_cl = random_generator(resolution=32, channels={4: 32, 8: 32, 16: 16, 32: 16})
    G_cl.load_state_dict(G.state_dict())
    G_cl = G_cl.to(memory_format=torch.channels_last)
    for fused in (True, False):
        _close(G_cl.synthesis(ws, fused_modconv=fused), reference, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            img = G_cl.synthesis(ws, fused_modconv=fused)
        assert torch.isfinite(img).all()
        err = (img.float() - reference).abs()
        assert err.max() < 0.1 * scale and err.mean() < 0.02 * scale, (err.max(), err.mean(), scale)


def test_conv_clamp_limits_layer_outputs():
    G = random_generator(conv_clamp=0.25)
    layer = G.synthesis_network.b8.conv1
    x = torch.randn(2, 12, 8, 8) * 10
    out = layer(x, torch.ones(2, 12))
    assert out.abs().max() <= 0.25 + 1e-6 and (out.abs() > 0.24).any()
    unclamped = random_generator().synthesis_network.b8.conv1
    unclamped.load_state_dict(layer.state_dict())
    assert unclamped(x, torch.ones(2, 12)).abs().max() > 1.0


# -- layers.py primitives -----------------------------------------------------------------------------------
def _upfirdn2d_naive(x: torch.Tensor, f: torch.Tensor, up: int, down: int, pad: tuple[int, int, int, int]):
    """Direct loop implementation of upfirdn2d (the definition), for checking the fast one."""
    n, c, h, w = x.shape
    z = torch.zeros(n, c, h * up, w * up, dtype=torch.float64)
    z[:, :, ::up, ::up] = x.double()
    px0, px1, py0, py1 = pad
    z = F.pad(z, [px0, px1, py0, py1])
    fh, fw = f.shape
    oh, ow = z.shape[2] - fh + 1, z.shape[3] - fw + 1
    out = torch.zeros(n, c, oh, ow, dtype=torch.float64)
    for i in range(fh):
        for j in range(fw):  # true convolution: the filter is flipped
            out += f[fh - 1 - i, fw - 1 - j].double() * z[:, :, i : i + oh, j : j + ow]
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize("up,down,pad", [(2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)), (1, 1, (1, 2, 0, 3))])
def test_upfirdn2d_matches_definition(up, down, pad):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6)
    f = torch.rand(4, 3)  # asymmetric, so a flip error would show
    expected = _upfirdn2d_naive(x, f, up, down, pad)
    _close(layers.upfirdn2d(x, f, up=up, down=down, padding=pad), expected.float(), atol=1e-5)


def test_resampling_shapes_and_dc_gain():
    f = layers.setup_filter([1, 3, 3, 1])
    assert math.isclose(f.sum().item(), 1.0, rel_tol=1e-6) and f.shape == (4, 4)
    x = torch.full((1, 2, 8, 8), 3.0)
    up = layers.upsample2d(x, f)
    down = layers.downsample2d(x, f)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    _close(up[:, :, 2:-2, 2:-2], torch.full((1, 2, 12, 12), 3.0), atol=1e-5)  # interior keeps the level
    _close(down[:, :, 1:-1, 1:-1], torch.full((1, 2, 2, 2), 3.0), atol=1e-5)
    w = torch.randn(4, 2, 3, 3)
    assert layers.conv2d_resample(x, w, f, up=2, padding=1).shape == (1, 4, 16, 16)
    assert layers.conv2d_resample(x, w, f, down=2, padding=1).shape == (1, 4, 4, 4)


def test_modulated_conv_equals_explicit_per_sample_conv():
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 4, 6, 6), torch.randn(5, 4, 3, 3), torch.randn(3, 4)
    f = layers.setup_filter([1, 3, 3, 1])
    for up in (1, 2):
        out = layers.modulated_conv2d(x, weight, styles, up=up, padding=1, resample_filter=f)
        for i in range(3):
            w = weight * styles[i].reshape(1, -1, 1, 1)
            w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
            expected = layers.conv2d_resample(x[i : i + 1], w, f, up=up, padding=1)
            _close(out[i : i + 1], expected, atol=1e-5)


def test_minibatch_std():
    torch.manual_seed(0)
    x = torch.randn(8, 6, 4, 4)
    out = layers.MinibatchStd(group_size=4)(x)
    assert out.shape == (8, 7, 4, 4) and torch.equal(out[:, :6], x)
    # Sample i belongs to group i % 2 (4 members each); the feature is the mean std over that group.
    members = x[0::2]
    expected = members.std(dim=0, unbiased=False).mean()
    _close(out[0, 6], expected.expand(4, 4), atol=1e-5)
    with pytest.raises(ValueError, match="not divisible"):
        layers.MinibatchStd(group_size=4)(torch.randn(6, 6, 4, 4))
