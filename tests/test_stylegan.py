"""StyleGAN v1 generator and IDInvert encoder: parity with the official genforce/idinvert_pytorch outputs
(reference fixtures), plus the behaviour the rest of the library relies on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from idinvert_plugins.convert.genforce import genforce_encoder_to_ours, genforce_generator_to_ours
from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder
from idinvert_plugins.models.stylegan import StyleGANGenerator, postprocess_uint8

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "reference" / "idinvert"
ATOL = 1e-4  # the fixture README's tolerance for forward images and codes
NAMES = ["idinvert_stylegan64", "idinvert_stylegan128_fused"]


# -- reference parity ------------------------------------------------------------------------------------


class Reference:
    """One fixture set: the converted generator and encoder plus the official inputs and outputs."""

    def __init__(self, name: str) -> None:
        if not FIXTURES.is_dir():
            pytest.skip(f"reference fixtures not found at {FIXTURES} (../shared next to the repo)")

        def load(suffix: str) -> dict[str, torch.Tensor]:
            return torch.load(FIXTURES / f"{name}_{suffix}.pth", map_location="cpu", weights_only=True)

        self.meta = json.loads((FIXTURES / f"{name}_meta.json").read_text())
        self.io = np.load(FIXTURES / f"{name}_io.npz")
        self.g_conv = genforce_generator_to_ours(load("generator"))
        self.e_conv = genforce_encoder_to_ours(load("encoder"))
        self.G = StyleGANGenerator(**self.g_conv.args)
        self.G.load_state_dict(self.g_conv.state_dict, strict=True)
        self.G.eval()
        self.E = IDInvertEncoder(**self.e_conv.args)
        self.E.load_state_dict(self.e_conv.state_dict, strict=True)
        self.E.eval()

    def __getitem__(self, key: str) -> torch.Tensor:
        return torch.from_numpy(self.io[key])


@pytest.fixture(scope="module", params=NAMES)
def ref(request) -> Reference:
    return Reference(request.param)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = ATOL) -> None:
    assert actual.shape == expected.shape
    diff = (actual - expected).abs().max().item()
    assert diff <= atol, f"max |diff| {diff:.3g} > {atol}"


def test_converted_config_matches_reference_kwargs(ref):
    gk, ek = ref.meta["generator_kwargs"], ref.meta["encoder_kwargs"]
    a = ref.g_conv.args
    assert a["resolution"] == gk["resolution"] and ref.G.num_layers == ref.meta["num_layers"]
    assert (a["z_dim"], a["w_dim"], a["mapping_layers"]) == (gk["z_space_dim"], gk["w_space_dim"], 8)
    assert (a["channel_base"], a["channel_max"]) == (gk["fmaps_base"], gk["fmaps_max"])
    assert a["mapping_hidden"] == gk["fmaps_max"]  # genforce ties the mapping width to fmaps_max
    assert a["repeat_w"] is gk["repeat_w"] is False and ref.G.has_w_space is False
    assert a["fused_scale"] == "auto" and a["final_tanh"] is True
    assert (a["truncation_psi"], a["truncation_layers"]) == (0.7, 8)
    assert ref.G.fused == {r: r >= 128 for r in ref.G.channels}
    assert {int(k): v for k, v in ref.meta["channels"].items()} == ref.G.channels
    e = ref.e_conv.args
    assert (e["resolution"], e["num_layers"], e["w_dim"]) == (ek["resolution"], ref.meta["num_layers"], 512)
    assert (e["channel_base"], e["channel_max"], e["use_bn"]) == (8, 16, True)
    json.dumps(a), json.dumps(e)  # configs must be JSON-serialisable


@torch.no_grad()
def test_mapping(ref):
    w = ref.G.mapping(ref["z"])
    assert w.shape == (4, ref.G.num_layers, 512)  # repeat_w=False: one w per layer
    assert_close(w.reshape(4, -1), ref["w_from_z"])


@torch.no_grad()
def test_mapping_with_truncation(ref):
    wp = ref.G.mapping(ref["z"], 0.7, 8)
    assert_close(wp, ref["wp_from_z_trunc"])
    # the model's recommended truncation is the same thing
    assert_close(ref.G.mapping(ref["z"], ref.G.truncation_psi, ref.G.truncation_layers), wp, atol=0)


@torch.no_grad()
def test_images_from_z(ref):
    assert_close(ref.G.synthesis(ref.G.mapping(ref["z"], 0.7, 8)), ref["image_from_z_trunc"])
    assert_close(ref.G(ref["z"], 0.7, 8), ref["image_from_z_trunc"])
    assert_close(ref.G.synthesis(ref.G.mapping(ref["z"])), ref["image_from_z_notrunc"])


@torch.no_grad()
def test_image_from_wplus_and_uint8(ref):
    img = ref.G.synthesis(ref["wp"])
    assert_close(img, ref["image_from_wp"])
    u8 = postprocess_uint8(img)
    expected = ref.io["image_from_wp_uint8"]
    assert u8.dtype == np.uint8 and u8.shape == expected.shape
    off = np.abs(u8.astype(np.int16) - expected.astype(np.int16))
    assert off.max() <= 1 and (off > 0).mean() < 1e-3  # README: off-by-one on < 0.1 % of pixels
    # the postprocess itself is the official formula exactly (truncation, not rounding)
    assert (postprocess_uint8(ref["image_from_wp"]) == expected).all()


@torch.no_grad()
def test_encoder(ref):
    assert_close(ref.E(ref["encoder_input_generated"]), ref["encoder_code_generated"])
    assert_close(ref.E(ref["encoder_input_random"]), ref["encoder_code_random"])


@torch.no_grad()
def test_edits_render_as_reference(ref):
    """Manipulated codes go through the plain W+ synthesis path, as in the official editor."""
    assert_close(ref.G.synthesis(ref["manipulated_codes"][0]), ref["image_manipulated_0"])


# -- generator behaviour (tiny models) -------------------------------------------------------------------


def tiny_generator(resolution: int = 16, seed: int = 0, **kwargs) -> StyleGANGenerator:
    """A small generator with every parameter non-trivial (noise weights, biases and styles non-zero)."""
    torch.manual_seed(seed)
    args = dict(resolution=resolution, z_dim=32, w_dim=24, mapping_layers=3, channel_base=128, channel_max=16)
    args.update(kwargs)
    G = StyleGANGenerator(**args).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith(("noise_weight", "bias")):
                p.normal_(0, 0.3)
        G.w_avg.copy_(G.compute_w_avg(n=256))
    return G


def test_shapes_attributes_and_config_rebuild():
    G = tiny_generator(resolution=32)
    assert (G.num_layers, G.resolution, G.img_channels, G.z_dim, G.w_dim) == (8, 32, 3, 32, 24)
    assert G.channels == {4: 16, 8: 16, 16: 8, 32: 4}
    assert G.has_w_space is True and StyleGANGenerator.has_w_space is True
    clone = StyleGANGenerator(**json.loads(json.dumps(G.config)))
    clone.load_state_dict(G.state_dict(), strict=True)
    clone.eval()
    z = torch.randn(2, 32)
    with torch.no_grad():
        assert torch.equal(clone(z), G(z))
    assert G(z).shape == (2, 3, 32, 32)


def test_no_w_space_without_repeat_w():
    G = tiny_generator(repeat_w=False)
    assert G.has_w_space is False and StyleGANGenerator.has_w_space is True  # per instance, not per class
    with torch.no_grad():
        w = G.mapping(torch.randn(3, 32))
    assert w.shape == (3, G.num_layers, G.w_dim)
    assert not torch.allclose(w[:, 0], w[:, 1])  # really one w per layer


@torch.no_grad()
def test_w_broadcast_and_truncation_cutoff():
    G = tiny_generator()
    z = torch.randn(3, 32)
    w = G.mapping(z)
    assert w.shape == (3, 24)
    wp = w[:, None].expand(-1, G.num_layers, -1)
    assert torch.equal(G.synthesis(w), G.synthesis(wp))
    t = G.mapping(z, 0.5, 2)
    assert t.shape == (3, G.num_layers, 24)
    assert torch.allclose(t[:, :2], G.w_avg + 0.5 * (w[:, None] - G.w_avg), atol=1e-6)
    assert torch.equal(t[:, 2:], wp[:, 2:])
    assert torch.allclose(G.mapping(z, 0.5), G.w_avg + 0.5 * (w - G.w_avg), atol=1e-6)
    # a different W+ per layer changes the image
    wp2 = wp.clone()
    wp2[:, -1] = torch.randn(3, 24)
    assert not torch.allclose(G.synthesis(wp2), G.synthesis(wp))


@torch.no_grad()
def test_noise_modes():
    G = tiny_generator()
    wp = G.mapping(torch.randn(2, 32), 0.7, 8).contiguous()
    const = G.synthesis(wp, noise_mode="const")
    assert torch.equal(const, G.synthesis(wp))  # const is the default and deterministic
    assert torch.equal(const, G.synthesis(wp, noise_mode="const"))
    r1, r2 = G.synthesis(wp, noise_mode="random"), G.synthesis(wp, noise_mode="random")
    assert not torch.allclose(r1, r2) and not torch.allclose(r1, const)
    none = G.synthesis(wp, noise_mode="none")
    assert torch.equal(none, G.synthesis(wp, noise_mode="none")) and not torch.allclose(none, const)
    # "none" is "const" with the stored noise zeroed
    for layer in G.synthesis_network.layers:
        layer.noise.zero_()
    assert torch.allclose(G.synthesis(wp, noise_mode="const"), none, atol=1e-6)


def test_styles():
    G = tiny_generator(resolution=16)
    with torch.no_grad():
        styles = G.styles(torch.randn(5, 24))
    assert list(styles) == [f"layer{i}" for i in range(G.num_layers)]
    for i, s in enumerate(styles.values()):
        assert s.shape == (5, 2 * G.channels[4 * 2 ** (i // 2)])


def test_backward_through_wplus():
    G = tiny_generator()
    G.requires_grad_(False)
    ws = G.mapping(torch.randn(2, 32), 0.7, 8).detach().clone().requires_grad_(True)
    G.synthesis(ws).square().mean().backward()
    assert ws.grad is not None and torch.isfinite(ws.grad).all()
    assert (ws.grad.abs().sum(dim=2) > 0).all()  # every layer's code affects the image


def test_fused_upconv_is_upsample_then_flipped_conv():
    """The fused transposed conv is nearest x2 + 3x3 conv with the spatially flipped kernel, exactly."""
    fused = tiny_generator(resolution=32, fused_scale=True)
    plain = StyleGANGenerator(**{**fused.config, "fused_scale": False}).eval()
    sd = fused.state_dict()
    for i in range(2, fused.num_layers, 2):
        key = f"synthesis_network.layers.{i}.conv.weight"
        sd[key] = sd[key].flip(2, 3)
    plain.load_state_dict(sd, strict=True)
    ws = torch.randn(2, fused.num_layers, fused.w_dim)
    with torch.no_grad():
        a, b = fused.synthesis(ws), plain.synthesis(ws)
        assert torch.allclose(a, b, atol=1e-5)
        unflipped = StyleGANGenerator(**plain.config).eval()
        unflipped.load_state_dict(fused.state_dict(), strict=True)
        assert not torch.allclose(a, unflipped.synthesis(ws), atol=1e-3)
    assert fused.fused == {4: True, 8: True, 16: True, 32: True} and not any(plain.fused.values())


def test_generator_errors():
    G = tiny_generator()
    with pytest.raises(ValueError, match=r"z must be \[N, 32\]"):
        G.mapping(torch.randn(2, 31))
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        G.synthesis(torch.randn(2, 24), noise_mode="fresh")
    with pytest.raises(ValueError, match="codes must be W"):
        G.synthesis(torch.randn(2, 3, 24))
    with pytest.raises(ValueError, match="power of two"):
        StyleGANGenerator(resolution=48)
    with pytest.raises(ValueError, match="fused_scale"):
        StyleGANGenerator(resolution=16, fused_scale="yes")


def test_postprocess_uint8_formula():
    x = torch.tensor([-1.5, -1.0, 0.0, 0.999, 1.0, 2.0]).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    out = postprocess_uint8(x)
    assert out.shape == (1, 1, 6, 3) and out.dtype == np.uint8
    assert out[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255, 255]  # 127.5 + 0.5 -> 128; 254.87 + .5 -> 255
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        postprocess_uint8(torch.zeros(3, 4, 4))


# -- encoder behaviour -----------------------------------------------------------------------------------


def test_encoder_structure_and_errors():
    E = IDInvertEncoder(resolution=32, num_layers=8, w_dim=24, channel_base=4, channel_max=8)
    widths = [E.blocks[0].weight.shape[0]] + [b.conv2.weight.shape[0] for b in E.blocks[1:]]
    assert widths == [4, 8, 8, 8]  # log2(32) - 1 conv blocks, doubling up to channel_max
    assert E.head.weight.shape == (8 * 24, 8 * 4 * 4)
    # default W+ length: the paired StyleGAN's
    assert IDInvertEncoder(resolution=64, channel_base=2, channel_max=2).num_layers == 10
    E.eval()
    with torch.no_grad():
        assert E(torch.rand(2, 3, 32, 32) * 2 - 1).shape == (2, 8, 24)
    with pytest.raises(ValueError, match=r"encoder input must be \[N, 3, 32, 32\]"):
        E(torch.zeros(1, 3, 16, 16))
    rebuilt = IDInvertEncoder(**json.loads(json.dumps(E.config)))
    rebuilt.load_state_dict(E.state_dict(), strict=True)


def test_encoder_trains():
    torch.manual_seed(0)
    E = IDInvertEncoder(resolution=16, num_layers=6, w_dim=8, channel_base=4, channel_max=8).train()
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    before = E.head.bn.running_mean.clone()
    E(x).square().mean().backward()
    assert not torch.equal(E.head.bn.running_mean, before)  # train mode updates the running statistics
    assert E.blocks[0].weight.grad is not None and E.blocks[0].weight.grad.abs().sum() > 0
    assert E.blocks[1].conv1.bias.grad.abs().sum() > 0 and E.head.bn.bias.grad is not None
    # as in the reference, BatchNorm's gamma is stored but frozen
    assert E.head.bn.weight.requires_grad is False and E.head.bn.weight.grad is None
    # eval mode uses the running statistics: the output no longer depends on the rest of the batch
    E.eval()
    with torch.no_grad():
        assert torch.allclose(E(x)[:1], E(x[:1]), atol=1e-5)


def test_encoder_use_wscale_scales_weights():
    torch.manual_seed(0)
    plain = IDInvertEncoder(resolution=8, num_layers=4, w_dim=4, channel_base=4, channel_max=4, use_bn=False)
    scaled = IDInvertEncoder(**{**plain.config, "use_wscale": True})
    scaled.load_state_dict(plain.state_dict(), strict=True)
    with torch.no_grad():
        for name, p in scaled.named_parameters():
            if name.endswith("weight") and p.ndim == 4:
                p.div_(math.sqrt(2.0 / p[0].numel()))  # undo the run-time scale
        x = torch.rand(2, 3, 8, 8)
        assert torch.allclose(plain(x), scaled(x), atol=1e-5)
