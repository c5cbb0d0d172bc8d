"""rosinality and NVlabs converters: they must recover the configuration and every tensor for any
resolution, channel table and mapping depth (round trips through the official key layouts, built here by
mapping our keys back), and reject incomplete, extra or unsupported checkpoints with clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from idinvert_plugins.convert.nvlabs import NVlabsFormat
from idinvert_plugins.convert.rosinality import RosinalityFormat
from idinvert_plugins.models.layers import setup_filter
from idinvert_plugins.models.stylegan2 import StyleGAN2Generator

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "reference"


def randomized(seed: int = 0, **args) -> StyleGAN2Generator:
    """A generator whose parameters and buffers are all distinct random values."""
    torch.manual_seed(seed)
    G = StyleGAN2Generator(**args)
    with torch.no_grad():
        for t in list(G.parameters()) + list(G.buffers()):
            t.normal_()
    return G


# -- test helpers: our layout -> the official layouts -----------------------------------------------------------
def ours_to_rosinality(sd: dict[str, torch.Tensor]) -> dict:
    """Our state dict -> ``{"g_ema": rosinality Generator.state_dict(), "latent_avg": w_avg}``."""
    out: dict[str, torch.Tensor] = {}
    kernel = setup_filter([1, 3, 3, 1]) * 4  # rosinality stores the FIR kernels with the x2 up-sampling gain
    for key, v in sd.items():
        if key == "w_avg":
            continue
        if m := re.fullmatch(r"mapping_network\.fc(\d+)\.(weight|bias)", key):
            out[f"style.{int(m[1]) + 1}.{m[2]}"] = v
            continue
        if key == "synthesis_network.const":
            out["input.input"] = v[None]
            continue
        m = re.fullmatch(r"synthesis_network\.b(\d+)\.(conv0|conv1|torgb)\.(.+)", key)
        assert m, key
        res, layer, param = int(m[1]), m[2], m[3]
        k = int(np.log2(res)) - 3  # block index of b8, b16, ...
        if layer == "torgb":
            src = "to_rgb1" if res == 4 else f"to_rgbs.{k}"
            if param == "weight":
                out[f"{src}.conv.weight"] = v[None]
            elif param == "bias":
                out[f"{src}.bias"] = v.reshape(1, -1, 1, 1)
            else:
                out[f"{src}.conv.modulation.{param.split('.')[1]}"] = v
            if res > 4:
                out[f"{src}.upsample.kernel"] = kernel
            continue
        src = "conv1" if res == 4 else f"convs.{2 * k + (layer == 'conv1')}"
        noise_i = 0 if res == 4 else 2 * k + 1 + (layer == "conv1")
        if param == "weight":
            out[f"{src}.conv.weight"] = v[None]
        elif param == "bias":
            out[f"{src}.activate.bias"] = v
        elif param == "noise_strength":
            out[f"{src}.noise.weight"] = v.reshape(1)
        elif param == "noise_const":
            out[f"noises.noise_{noise_i}"] = v[None, None]
        else:
            out[f"{src}.conv.modulation.{param.split('.')[1]}"] = v
        if layer == "conv0":
            out[f"{src}.conv.blur.kernel"] = kernel
    return {"g_ema": out, "latent_avg": sd["w_avg"]}


def ours_to_nvlabs(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict -> an NVlabs ``Generator.state_dict()`` (with its constant resample_filter buffers)."""
    out: dict[str, torch.Tensor] = {}
    f = setup_filter([1, 3, 3, 1])
    for key, v in sd.items():
        if key == "w_avg":
            out["mapping.w_avg"] = v
            continue
        new = key.replace("mapping_network.", "mapping.").replace("synthesis_network.", "synthesis.")
        new = new.replace("synthesis.const", "synthesis.b4.const")
        out[new] = v
        if m := re.fullmatch(r"(synthesis\.b\d+)\.(conv[01])\.weight", new):
            out[f"{m[1]}.resample_filter"] = f
            out[f"{m[1]}.{m[2]}.resample_filter"] = f
    return out


CONFIGS = [
    dict(resolution=32, z_dim=16, w_dim=16, mapping_layers=3, channels={4: 24, 8: 16, 16: 12, 32: 8}),
    dict(resolution=128, z_dim=8, w_dim=8, mapping_layers=1, channels={4: 8, 8: 8, 16: 6, 32: 6, 64: 4, 128: 4}),
    dict(resolution=8, z_dim=12, w_dim=12, img_channels=1, mapping_layers=2, channels={4: 4, 8: 2}),
]


def _assert_same(converted, G: StyleGAN2Generator) -> None:
    assert converted.architecture == "stylegan2" and converted.kind == "generator"
    for key in ("resolution", "z_dim", "w_dim", "img_channels", "mapping_layers", "mapping_hidden", "channels"):
        assert converted.args[key] == G.config[key], key
    expected = G.state_dict()
    assert set(converted.state_dict) == set(expected)
    for key, v in expected.items():
        assert torch.equal(converted.state_dict[key], v), key
    rebuilt = StyleGAN2Generator(**converted.args)
    rebuilt.load_state_dict(converted.state_dict, strict=True)


@pytest.mark.parametrize("args", CONFIGS, ids=lambda a: f"res{a['resolution']}")
def test_rosinality_round_trip(args):
    G = randomized(**args)
    ckpt = ours_to_rosinality(G.state_dict())
    fmt = RosinalityFormat()
    assert fmt.sniff(ckpt) and fmt.sniff(ckpt["g_ema"]) and not NVlabsFormat().sniff(ckpt)
    (converted,) = fmt.convert(ckpt)
    _assert_same(converted, G)
    assert converted.source_format == "rosinality" and "latent_avg" in converted.notes["w_avg"]
    assert converted.args["mapping_lr_mul"] == 0.01 and converted.args["conv_clamp"] is None


@pytest.mark.parametrize("args", CONFIGS + [dict(CONFIGS[0], mapping_hidden=20, conv_clamp=256)],
                         ids=lambda a: f"res{a['resolution']}{'-hidden' if 'mapping_hidden' in a else ''}")
def test_nvlabs_round_trip(args):
    G = randomized(**args)
    sd = ours_to_nvlabs(G.state_dict())
    fmt = NVlabsFormat()
    assert fmt.sniff(sd) and not RosinalityFormat().sniff(sd)
    init_kwargs = {
        "z_dim": args["z_dim"], "c_dim": 0, "w_dim": args["w_dim"], "img_resolution": args["resolution"],
        "img_channels": args.get("img_channels", 3), "mapping_kwargs": {"num_layers": args["mapping_layers"]},
        "synthesis_kwargs": {"conv_clamp": args.get("conv_clamp"), "architecture": "skip"},
    }
    (converted,) = fmt.convert({"G_ema": {"state_dict": sd, "init_kwargs": init_kwargs}})
    _assert_same(converted, G)
    assert converted.args["conv_clamp"] == args.get("conv_clamp")
    assert "non-commercial" in converted.notes["license"]
    # A bare state dict converts the same tensors; conv_clamp can be passed explicitly.
    (bare,) = fmt.convert(sd, conv_clamp=64)
    _assert_same(bare, G)
    assert bare.args["conv_clamp"] == 64


def test_rosinality_without_latent_avg_computes_it():
    folder = REFERENCE / "rosinality"
    if not folder.is_dir():
        pytest.skip(f"reference fixtures not found at {folder}")
    ckpt = torch.load(folder / "rosinality_stylegan2_64.pt", map_location="cpu", weights_only=True)
    (converted,) = RosinalityFormat().convert({"g_ema": ckpt["g_ema"]})
    assert "no latent_avg" in converted.notes["w_avg"] and "10000" in converted.notes["w_avg"]
    # Another sample mean of the same mapping (the fixture used 4096 other z): close, not equal.
    diff = (converted.state_dict["w_avg"] - ckpt["latent_avg"]).abs()
    spread = np.load(folder / "rosinality_stylegan2_64_io.npz")["wplus_from_z"][:, 0].std(0).mean()
    assert 0 < diff.mean() < 0.1 * spread, (diff.mean(), spread)


# -- errors -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    return randomized(**CONFIGS[0])


def test_rosinality_missing_and_unexpected_keys(small):
    ckpt = ours_to_rosinality(small.state_dict())
    g = dict(ckpt["g_ema"])
    del g["convs.3.noise.weight"]
    with pytest.raises(ValueError, match=r"missing key 'convs\.3\.noise\.weight'"):
        RosinalityFormat().convert({"g_ema": g, "latent_avg": ckpt["latent_avg"]})
    g = dict(ckpt["g_ema"], **{"convs.3.extra": torch.zeros(1), "style.9.bias": torch.zeros(16)})
    with pytest.raises(ValueError, match=r"unexpected keys .*\['convs\.3\.extra', 'style\.9\.bias'\]"):
        RosinalityFormat().convert({"g_ema": g, "latent_avg": ckpt["latent_avg"]})
    g = dict(ckpt["g_ema"], **{"convs.0.conv.blur.kernel": torch.ones(4, 4)})
    with pytest.raises(ValueError, match=r"convs\.0\.conv\.blur\.kernel is not the \[1, 3, 3, 1\] FIR filter"):
        RosinalityFormat().convert({"g_ema": g, "latent_avg": ckpt["latent_avg"]})
    with pytest.raises(ValueError, match="not a rosinality checkpoint"):
        RosinalityFormat().convert({"g_ema": {"foo": torch.zeros(1)}})


def test_nvlabs_missing_unexpected_and_unsupported(small):
    sd = ours_to_nvlabs(small.state_dict())
    fmt = NVlabsFormat()
    broken = {k: v for k, v in sd.items() if k != "synthesis.b16.conv0.noise_const"}
    with pytest.raises(ValueError, match=r"missing key 'synthesis\.b16\.conv0\.noise_const'"):
        fmt.convert(broken)
    with pytest.raises(ValueError, match=r"unexpected keys .*\['synthesis\.b8\.conv1\.extra'\]"):
        fmt.convert(dict(sd, **{"synthesis.b8.conv1.extra": torch.zeros(1)}))
    with pytest.raises(ValueError, match=r"conditional NVlabs generators .* not supported yet"):
        fmt.convert(dict(sd, **{"mapping.embed.weight": torch.zeros(16, 10), "mapping.embed.bias": torch.zeros(16)}))
    with pytest.raises(ValueError, match="conditional"):
        fmt.convert({"G_ema": {"state_dict": sd, "init_kwargs": {"c_dim": 10}}})
    with pytest.raises(ValueError, match="only the 'skip' synthesis architecture .* 'resnet'"):
        fmt.convert(dict(sd, **{"synthesis.b8.skip.weight": torch.zeros(16, 24, 1, 1)}))
    no_torgb = {k: v for k, v in sd.items() if not k.startswith("synthesis.b8.torgb.")}
    with pytest.raises(ValueError, match=r"synthesis\.b8\.torgb\.weight is missing: only the 'skip'"):
        fmt.convert(no_torgb)
    with pytest.raises(ValueError, match="img_resolution=64 contradicts the weights"):
        fmt.convert({"G_ema": {"state_dict": sd, "init_kwargs": {"img_resolution": 64}}})
