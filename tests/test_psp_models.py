"""The pSp / e4e / ReStyle architectures: official key layouts, configurable small versions, e4e's progressive
stages, ReStyle's step. (Numerical parity with the official code: tests/test_encoder_parity_*.py.)"""

from __future__ import annotations

import pytest
import torch
from encoder_fixtures import FIXTURES, manifest

from idinvert_plugins.models.e4e import E4EEncoder
from idinvert_plugins.models.psp import GradualStyleBlock, PSPEncoder, n_styles_for, resize_to
from idinvert_plugins.models.restyle import ReStyleEncoder

pytestmark = pytest.mark.usefixtures("one_thread")


SMALL = dict(stages=(1, 1, 2, 1), widths=(8, 16, 16, 32), stem=8)


def _official(name: str) -> torch.nn.Module:
    opts = manifest(name)["checkpoint"]["opts"]
    with torch.device("meta"):
        if name.startswith("psp"):
            return PSPEncoder(opts["output_size"]).encoder
        if name.startswith("e4e"):
            return E4EEncoder(opts["stylegan_size"]).encoder
        return ReStyleEncoder(opts["output_size"], encoder_type=opts["encoder_type"]).encoder


@pytest.mark.parametrize("name", FIXTURES)
def test_official_layout_keys_and_shapes(name):
    """Every encoder entry of the official checkpoint, in order, with its shape: the state dict loads strictly."""
    m = manifest(name)
    expected = [(e["name"][len("encoder."):], e["shape"]) for e in m["state_dict"] if e["name"].startswith("encoder.")]
    ours = [(k, list(v.shape)) for k, v in _official(name).state_dict().items()]
    assert ours == expected
    assert m["n_styles"] == n_styles_for(m["checkpoint"]["opts"].get("output_size")
                                         or m["checkpoint"]["opts"]["stylegan_size"])


def test_map2style_block_shrinks_to_one_code():
    torch.manual_seed(0)
    block = GradualStyleBlock(8, 6, 16)
    assert len([m for m in block.convs if isinstance(m, torch.nn.Conv2d)]) == 4
    assert block(torch.randn(2, 8, 16, 16)).shape == (2, 6)
    assert isinstance(block.convs[1], torch.nn.LeakyReLU) and block.convs[1].negative_slope == 0.01
    with pytest.raises(ValueError, match="16x16 maps got"):
        block(torch.randn(1, 8, 8, 8))


def test_narrow_map2style_blocks_keep_the_official_layout_by_default():
    official = GradualStyleBlock(8, 6, 16)
    narrow = GradualStyleBlock(8, 6, 16, hidden=4)
    assert [tuple(p.shape) for p in official.parameters()][:2] == [(6, 8, 3, 3), (6,)]
    assert [tuple(p.shape) for p in narrow.parameters()][:2] == [(4, 8, 3, 3), (4,)]
    assert tuple(narrow.linear.weight.shape) == (6, 4) and tuple(official.linear.weight.shape) == (6, 6)
    assert narrow(torch.randn(2, 8, 16, 16)).shape == (2, 6)
    for cls, extra in ((PSPEncoder, {}), (E4EEncoder, {}), (ReStyleEncoder, {"n_iters": 2})):
        enc = cls(64, w_dim=24, input_size=64, style_channels=8, **SMALL, **extra)
        wide = cls(64, w_dim=24, input_size=64, **SMALL, **extra)
        assert all(s.hidden == 8 for s in enc.encoder.styles) and all(s.hidden == 24 for s in wide.encoder.styles)
        n_narrow, n_wide = (sum(p.numel() for p in e.parameters()) for e in (enc, wide))
        assert n_narrow < n_wide
        rebuilt = cls(**enc.config)  # the width is part of the saved config
        rebuilt.load_state_dict(enc.state_dict(), strict=True)


def test_small_psp_for_a_small_domain_and_resizing():
    torch.manual_seed(0)
    enc = PSPEncoder(64, w_dim=24, input_size=64, **SMALL).eval()
    assert (enc.num_layers, enc.w_dim, enc.resolution) == (10, 24, 64)
    with torch.no_grad():
        enc.latent_avg.normal_()
        x = torch.rand(2, 3, 64, 64) * 2 - 1
        codes = enc(x)
        assert codes.shape == (2, 10, 24)
        assert torch.allclose(codes - enc.latent_avg, enc.encoder(x), atol=1e-6)
        # an image of twice the size is average-pooled to the encoder's input first
        big = x.repeat_interleave(2, -1).repeat_interleave(2, -2)
        assert torch.allclose(enc(big), codes, atol=1e-5)
    with pytest.raises(ValueError, match=r"takes images \[N, 3, H, W\]"):
        enc(torch.rand(1, 1, 64, 64))
    rebuilt = PSPEncoder(**enc.config)
    rebuilt.load_state_dict(enc.state_dict(), strict=True)


def test_resize_to_average_pools_integer_shrinks():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(resize_to(x, 2), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    assert resize_to(x, 4) is x
    assert resize_to(x, 8).shape[-1] == 8


def test_e4e_progressive_stages_add_one_offset_each():
    torch.manual_seed(0)
    enc = E4EEncoder(64, w_dim=16, input_size=64, **SMALL).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        full = enc(x)
        enc.set_progressive_stage(0)
        base = enc(x)
        # stage 0: w0 on every layer
        assert torch.allclose(base, base[:, :1].expand_as(base))
        for stage in (1, 3, 7, 9):
            enc.set_progressive_stage(stage)
            codes = enc(x)
            assert torch.allclose(codes[:, : stage + 1], full[:, : stage + 1], atol=1e-6)
            assert torch.allclose(codes[:, stage + 1:], base[:, stage + 1:], atol=1e-6)


@pytest.mark.parametrize("encoder_type", ["BackboneEncoder", "ResNetBackboneEncoder", "ProgressiveBackboneEncoder",
                                          "ResNetProgressiveBackboneEncoder"])
def test_restyle_step_adds_to_the_previous_codes(encoder_type):
    torch.manual_seed(0)
    enc = ReStyleEncoder(32, w_dim=16, input_size=32, encoder_type=encoder_type, **SMALL).eval()
    assert enc.num_layers == 8 and enc.progressive == ("Progressive" in encoder_type)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    prev = torch.randn(2, 8, 16)
    with torch.no_grad():
        enc.latent_avg.normal_()
        enc.avg_image.uniform_(-1, 1)
        first = enc(x)
        out = enc.encoder(torch.cat([x, enc.avg_image.expand(2, -1, -1, -1)], 1))
        assert torch.allclose(first, out + enc.latent_avg, atol=1e-6)
        second = enc.step(x, y, prev)
        assert torch.allclose(second - prev, enc.encoder(torch.cat([x, y], 1)), atol=1e-5)


def test_restyle_refuses_three_channel_input_and_unknown_types():
    with pytest.raises(ValueError, match="input_nc=6"):
        ReStyleEncoder(32, input_nc=3, input_size=32, **SMALL)
    with pytest.raises(ValueError, match="unknown ReStyle encoder_type 'Foo'"):
        ReStyleEncoder(32, encoder_type="Foo")
