"""genforce / IDInvert checkpoint converter: hyperparameters inferred from any layout, exact tensors,
clear errors. Parity with the official outputs is in test_stylegan.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from idinvert_plugins.convert.genforce import (
    GenforceFormat,
    genforce_encoder_to_ours,
    genforce_generator_to_ours,
)
from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder
from idinvert_plugins.models.stylegan import StyleGANGenerator

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "reference" / "idinvert"
BLUR = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16


# -- test helpers: our layout -> genforce layout (written independently of the converter) ------------------


def generator_to_genforce(G: StyleGANGenerator) -> dict[str, torch.Tensor]:
    """The state dict genforce's ``StyleGANGeneratorNet`` would have for the same network."""
    L = G.num_layers
    out: dict[str, torch.Tensor] = {}
    for key, t in G.state_dict().items():
        if m := re.fullmatch(r"mapping_network\.layers\.(\d+)\.(weight|bias)", key):
            out[f"mapping.dense{m[1]}." + ("fc.weight" if m[2] == "weight" else "wscale.bias")] = t
        elif key == "w_avg":
            out["truncation.w_avg"] = t
        elif key == "synthesis_network.const":
            out["synthesis.layer0.const"] = t
        elif m := re.fullmatch(r"synthesis_network\.layers\.(\d+)\.(.+)", key):
            i, name = int(m[1]), m[2]
            res = 4 * 2 ** (i // 2)
            prefix = f"synthesis.layer{i}"
            if name == "conv.weight" and i % 2 == 0 and G.fused[res]:
                out[f"{prefix}.weight"] = t.permute(2, 3, 1, 0)  # TF layout [k, k, in, out]
            elif name == "conv.weight":
                out[f"{prefix}.conv.weight"] = t
            else:
                theirs = {
                    "noise": "epilogue.apply_noise.noise",
                    "noise_weight": "epilogue.apply_noise.weight",
                    "bias": "epilogue.bias",
                    "style.weight": "epilogue.style_mod.dense.fc.weight",
                    "style.bias": "epilogue.style_mod.dense.wscale.bias",
                }[name]
                out[f"{prefix}.{theirs}"] = t
            if i % 2 == 0 and i > 0 and name == "bias":
                out[f"{prefix}.blur.kernel"] = BLUR.expand(t.shape[0], 1, 3, 3).clone()
        elif key == "synthesis_network.to_rgb.weight":
            out[f"synthesis.output{L // 2 - 1}.conv.weight"] = t
        elif key == "synthesis_network.to_rgb.bias":
            out[f"synthesis.output{L // 2 - 1}.bias"] = t
        else:
            raise AssertionError(f"test helper does not know {key}")
    for b in range(L // 2 - 1):  # the toRGBs of lower resolutions, dead at lod 0
        out[f"synthesis.output{b}.conv.weight"] = torch.randn(G.img_channels, G.channels[4 * 2**b], 1, 1)
        out[f"synthesis.output{b}.bias"] = torch.randn(G.img_channels)
    coefs = torch.ones(1, L, 1)
    coefs[:, : G.truncation_layers] = G.truncation_psi
    out["truncation.truncation"] = coefs
    out["synthesis.lod"] = torch.zeros(())
    return out


def encoder_to_genforce(E: IDInvertEncoder) -> dict[str, torch.Tensor]:
    """The state dict genforce's ``StyleGANEncoderNet`` would have for the same network."""
    head = f"block{len(E.blocks)}"
    rules = [
        (r"blocks\.0\.weight", "block0.conv.weight"),
        (r"blocks\.0\.bn\.(.+)", r"block0.bn.bn.\1"),
        (r"blocks\.(\d+)\.shortcut\.weight", r"block\1.conv.weight"),
        (r"blocks\.(\d+)\.shortcut\.bn\.(.+)", r"block\1.bn.bn.\2"),
        (r"blocks\.(\d+)\.conv(\d)\.weight", r"block\1.conv\2.weight"),
        (r"blocks\.(\d+)\.conv(\d)\.bias", r"block\1.wscale\2.bias"),
        (r"blocks\.(\d+)\.conv(\d)\.bn\.(.+)", r"block\1.bn\2.bn.\3"),
        (r"head\.weight", f"{head}.fc.weight"),
        (r"head\.bn\.(.+)", rf"{head}.bn.bn.\1"),
    ]
    out = {}
    for key, t in E.state_dict().items():
        for pattern, repl in rules:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, repl, key)] = t
                break
        else:
            raise AssertionError(f"test helper does not know {key}")
    return out


def randomised(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter and buffer random, so a misplaced tensor cannot go unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in module.state_dict(keep_vars=True).values():  # not the fixed blur filter (non-persistent)
            if t.is_floating_point():
                r = torch.randn(t.shape, generator=gen)
                t.copy_(r.abs() + 0.5 if t.ndim == 1 else r)  # positive for BatchNorm variances
    return module.eval()


# -- generator round trips --------------------------------------------------------------------------------

GENERATOR_CONFIGS = [
    dict(resolution=32, z_dim=16, w_dim=8, mapping_layers=8, mapping_hidden=12, channel_base=128,
         channel_max=16, repeat_w=True, fused_scale="auto"),
    dict(resolution=32, z_dim=16, w_dim=8, mapping_layers=3, mapping_hidden=16, channel_base=128,
         channel_max=16, repeat_w=False, fused_scale=True, truncation_psi=0.5, truncation_layers=4),
    dict(resolution=256, z_dim=8, w_dim=8, mapping_layers=2, mapping_hidden=8, channel_base=512,
         channel_max=8, repeat_w=False, fused_scale="auto", img_channels=1),
    dict(resolution=256, z_dim=8, w_dim=8, mapping_layers=1, mapping_hidden=8, channel_base=256,
         channel_max=4, repeat_w=True, fused_scale=False),
    # the table never reaches channel_max: recovered from the mapping width, which genforce ties to it
    dict(resolution=8, z_dim=8, w_dim=4, mapping_layers=2, mapping_hidden=32, channel_base=64,
         channel_max=32, repeat_w=True, fused_scale=True),
]  # fmt: skip


@pytest.mark.parametrize("config", GENERATOR_CONFIGS, ids=lambda c: f"{c['resolution']}-{c['fused_scale']}")
def test_generator_round_trip(config):
    torch.manual_seed(1)
    G = randomised(StyleGANGenerator(**config, final_tanh=True))
    sd = generator_to_genforce(G)
    assert GenforceFormat().sniff(sd)
    (conv,) = GenforceFormat().convert(sd)
    assert (conv.kind, conv.architecture, conv.source_format) == ("generator", "stylegan", "genforce")
    assert conv.args == G.config  # every hyperparameter recovered
    json.dumps(conv.args)
    ours = G.state_dict()
    assert conv.state_dict.keys() == ours.keys()
    for key, t in ours.items():
        assert torch.equal(conv.state_dict[key], t), key
    G2 = StyleGANGenerator(**conv.args).eval()
    G2.load_state_dict(conv.state_dict, strict=True)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        assert torch.equal(G2(z, 0.7, 2), G(z, 0.7, 2))


def test_generator_channel_table_is_reproduced_for_any_base():
    """A base that is not the smallest one giving the table still converts to the same network."""
    G = randomised(StyleGANGenerator(resolution=64, z_dim=8, w_dim=8, mapping_hidden=8, channel_base=300,
                                     channel_max=16, final_tanh=True))  # fmt: skip
    assert G.channels == {4: 16, 8: 16, 16: 16, 32: 9, 64: 4}
    conv = genforce_generator_to_ours(generator_to_genforce(G))
    G2 = StyleGANGenerator(**conv.args)
    assert G2.channels == G.channels
    G2.load_state_dict(conv.state_dict, strict=True)


def test_generator_overrides():
    G = randomised(StyleGANGenerator(resolution=16, z_dim=8, w_dim=8, mapping_hidden=8, channel_max=8))
    sd = generator_to_genforce(G)
    assert genforce_generator_to_ours(sd).args["final_tanh"] is True  # as in all released models
    (conv,) = GenforceFormat().convert(sd, final_tanh=False, truncation_psi=0.5)
    assert conv.args["final_tanh"] is False and conv.args["truncation_psi"] == 0.5
    with pytest.raises(ValueError, match=r"unknown override\(s\) \['resolution'\]"):
        genforce_generator_to_ours(sd, resolution=32)


def test_generator_module_prefix_is_stripped():
    G = randomised(StyleGANGenerator(resolution=8, z_dim=8, w_dim=8, mapping_hidden=8, channel_max=8))
    sd = {f"module.{k}": v for k, v in generator_to_genforce(G).items()}
    assert GenforceFormat().sniff(sd)
    assert genforce_generator_to_ours(sd).state_dict.keys() == G.state_dict().keys()


# -- encoder round trips ----------------------------------------------------------------------------------

ENCODER_CONFIGS = [
    dict(resolution=32, num_layers=8, w_dim=8, channel_base=4, channel_max=16, use_bn=True),
    dict(resolution=16, num_layers=6, w_dim=4, channel_base=8, channel_max=8, use_bn=False, img_channels=1),
    dict(resolution=64, num_layers=10, w_dim=4, channel_base=2, channel_max=1024, use_bn=True),
    dict(resolution=16, num_layers=6, w_dim=4, channel_base=8, channel_max=4, use_bn=True),  # base > max
]


@pytest.mark.parametrize("config", ENCODER_CONFIGS, ids=lambda c: f"{c['resolution']}-{c['channel_max']}")
def test_encoder_round_trip(config):
    E = randomised(IDInvertEncoder(**config))
    sd = encoder_to_genforce(E)
    assert GenforceFormat().sniff(sd)
    (conv,) = GenforceFormat().convert(sd)
    assert (conv.kind, conv.architecture) == ("encoder", "idinvert-encoder")
    assert conv.args == E.config
    ours = E.state_dict()
    assert conv.state_dict.keys() == ours.keys()
    for key, t in ours.items():
        assert torch.equal(conv.state_dict[key], t), key
    E2 = IDInvertEncoder(**conv.args).eval()
    E2.load_state_dict(conv.state_dict, strict=True)
    x = torch.rand(2, E.img_channels, E.resolution, E.resolution) * 2 - 1
    with torch.no_grad():
        assert torch.equal(E2(x), E(x))


def test_encoder_use_wscale_override():
    E = randomised(IDInvertEncoder(resolution=8, num_layers=4, w_dim=4, channel_base=4, use_wscale=True))
    sd = encoder_to_genforce(E)
    assert genforce_encoder_to_ours(sd).args["use_wscale"] is False  # the released models' value
    assert genforce_encoder_to_ours(sd, use_wscale=True).args == E.config


# -- sniffing and errors ----------------------------------------------------------------------------------


@pytest.fixture
def gen_sd() -> dict[str, torch.Tensor]:
    G = randomised(StyleGANGenerator(resolution=128, z_dim=8, w_dim=8, mapping_hidden=8, channel_base=256,
                                     channel_max=8, repeat_w=False))  # fmt: skip
    return generator_to_genforce(G)


@pytest.fixture
def enc_sd() -> dict[str, torch.Tensor]:
    return encoder_to_genforce(randomised(IDInvertEncoder(resolution=16, num_layers=6, w_dim=4, channel_base=4)))


def test_sniff_rejects_other_formats(gen_sd):
    fmt = GenforceFormat()
    assert fmt.name == "genforce"
    rosinality_like = {"g_ema": {"style.1.weight": torch.zeros(1)}, "latent_avg": torch.zeros(4)}
    nvlabs_like = {"mapping.fc0.weight": torch.zeros(1), "synthesis.b4.const": torch.zeros(1)}
    for ckpt in (rosinality_like, nvlabs_like, {}, [1, 2], None):
        assert not fmt.sniff(ckpt)
    with pytest.raises(ValueError, match="not a genforce checkpoint"):
        fmt.convert(nvlabs_like)


def test_missing_and_unexpected_generator_keys_are_named(gen_sd):
    sd = dict(gen_sd)
    del sd["synthesis.layer5.epilogue.style_mod.dense.wscale.bias"]
    del sd["synthesis.output1.bias"]
    sd["mapping.label_weight"] = torch.zeros(3, 8)  # a conditional model: not supported
    with pytest.raises(ValueError) as info:
        genforce_generator_to_ours(sd)
    msg = str(info.value)
    assert "missing keys: synthesis.layer5.epilogue.style_mod.dense.wscale.bias, synthesis.output1.bias" in msg
    assert "unexpected keys: mapping.label_weight" in msg


def test_generator_shape_mismatch_is_named(gen_sd):
    gen_sd["synthesis.layer3.epilogue.apply_noise.noise"] = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"'synthesis\.layer3\.epilogue\.apply_noise\.noise' has shape \[1, 1, 4, 4\]"):
        genforce_generator_to_ours(gen_sd)


def test_generator_layout_checks(gen_sd):
    bad = dict(gen_sd, **{"synthesis.lod": torch.tensor(1.0)})
    with pytest.raises(ValueError, match="synthesis.lod is 1.0"):
        genforce_generator_to_ours(bad)
    bad = dict(gen_sd)
    bad["synthesis.layer4.blur.kernel"] = torch.ones_like(bad["synthesis.layer4.blur.kernel"]) / 9
    with pytest.raises(ValueError, match=r"synthesis\.layer4\.blur\.kernel is not the \[1, 2, 1\]"):
        genforce_generator_to_ours(bad)
    bad = dict(gen_sd)
    bad["mapping.dense7.fc.weight"] = torch.zeros(100, 8)
    bad["mapping.dense7.wscale.bias"] = torch.zeros(100)
    with pytest.raises(ValueError, match=r"mapping\.dense7\.fc\.weight emits 100 values"):
        genforce_generator_to_ours(bad)
    # fused only at 64 px: not a pattern genforce's fused_scale can produce
    bad = dict(gen_sd)
    w = bad.pop("synthesis.layer8.conv.weight")
    bad["synthesis.layer8.weight"] = w.permute(2, 3, 1, 0)
    with pytest.raises(ValueError, match="matches neither fused_scale='auto', True nor False"):
        genforce_generator_to_ours(bad)


def test_missing_and_unexpected_encoder_keys_are_named(enc_sd):
    sd = dict(enc_sd)
    del sd["block2.bn1.bn.running_var"]
    sd["block2.extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys: block2\.bn1\.bn\.running_var; unexpected keys: block2\.extra"):
        genforce_encoder_to_ours(sd)
    sd = dict(enc_sd)
    sd["block1.conv2.weight"] = torch.zeros(8, 3, 3, 3)
    with pytest.raises(ValueError, match=r"'block1\.conv2\.weight' has shape \[8, 3, 3, 3\]"):
        genforce_encoder_to_ours(sd)


def test_converter_is_registered():
    from idinvert_plugins.plugins import get_plugins

    plugins = get_plugins()
    assert isinstance(plugins.get("converter", "genforce"), GenforceFormat)


def test_fixture_checkpoints_sniff_and_convert_strictly():
    if not FIXTURES.is_dir():
        pytest.skip(f"reference fixtures not found at {FIXTURES} (../shared next to the repo)")
    for name in ("idinvert_stylegan64", "idinvert_stylegan128_fused"):
        for part, cls in (("generator", StyleGANGenerator), ("encoder", IDInvertEncoder)):
            ckpt = torch.load(FIXTURES / f"{name}_{part}.pth", map_location="cpu", weights_only=True)
            (conv,) = GenforceFormat().convert(ckpt)
            assert conv.kind == part
            cls(**conv.args).load_state_dict(conv.state_dict, strict=True)


def test_convert_prints_load_hints_that_work(tmp_path, capsys, monkeypatch):
    """The printed 'load it with' expression runs and returns the converted network, for an encoder (which
    load_generator refuses) and a generator."""
    import idinvert_plugins
    from idinvert_plugins.cli import main

    monkeypatch.chdir(tmp_path)
    E = randomised(IDInvertEncoder(resolution=16, num_layers=6, w_dim=4, channel_base=4))
    G = randomised(StyleGANGenerator(**GENERATOR_CONFIGS[0], final_tanh=True))
    torch.save(encoder_to_genforce(E), "enc.pth")
    torch.save(generator_to_genforce(G), "gen.pth")
    for src, out, expected in (("enc.pth", "enc", E), ("gen.pth", "gen", G)):
        assert main(["convert", src, "-o", out]) == 0
        printed = capsys.readouterr().out
        kind = "encoder" if expected is E else "generator"
        assert f"wrote {out} ({kind}); load it with: idinvert_plugins.load_{kind}('{out}')" in printed
        hint = re.search(r"load it with: (\S+\))", printed)[1]
        model = eval(hint, {"idinvert_plugins": idinvert_plugins})  # exactly what the user would type
        assert type(model) is type(expected)
        sd = model.state_dict()
        assert all(torch.equal(sd[k], v) for k, v in expected.state_dict().items())
    # the CLI hint for the encoder names the flag that takes it
    assert main(["convert", "enc.pth", "-o", "enc2"]) == 0
    assert "use it with: idinvert invert GENERATOR IMAGE --encoder enc2" in capsys.readouterr().out
