"""Editing plugins: manipulation (InterFaceGAN), conditional directions, learned / GANSpace / SeFa directions,
direction files, and semantic diffusion."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import reference_dir, tiny_stylegan, tiny_stylegan2

from idinvert_plugins.editors.diffusion import Diffuse, box_mask, diffuse
from idinvert_plugins.editors.directions import (
    Direction,
    ganspace_directions,
    orthogonalize,
    sefa_directions,
)
from idinvert_plugins.editors.interfacegan import learn_direction
from idinvert_plugins.editors.manipulate import Manipulate
from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder


def random_direction(dim: int, seed: int, **kwargs) -> Direction:
    return Direction(torch.randn(dim, generator=torch.Generator().manual_seed(seed)), **kwargs)


# -- manipulation ----------------------------------------------------------------------------------------

def test_manipulation_moves_exactly_along_the_direction_on_the_selected_layers():
    G = tiny_stylegan2()
    codes = G.mapping(G.sample_z(3, seed=1)).detach()
    n = random_direction(G.w_dim, 0, name="smile", layers=[1, 2])
    out = Manipulate()(G, codes, direction=n, strength=2.5, render=False).codes
    diff = out - G.to_wplus(codes)
    assert diff.shape == (3, G.num_layers, G.w_dim)
    torch.testing.assert_close(diff[:, 1:3], (2.5 * n.vector).expand(3, 2, -1), atol=1e-6, rtol=0)
    assert diff[:, [0, *range(3, G.num_layers)]].abs().max() == 0
    # the editor's own layer range intersects with the direction's layers
    out = Manipulate()(G, codes, direction=n, strength=1.0, layers=(2, 4), render=False).codes
    assert (out - G.to_wplus(codes))[:, [0, 1, 3]].abs().max() == 0


def test_manipulation_renders_and_checks_strength_range():
    G = tiny_stylegan2()
    codes = G.mapping(G.sample_z(2, seed=1)).detach()
    res = Manipulate()(G, codes, direction=random_direction(G.w_dim, 0), strength=1.0, steps=3)
    assert res.codes.shape == (2, 3, G.num_layers, G.w_dim)
    assert res.images.shape == (2, 3, 3, 16, 16)
    with pytest.raises(ValueError, match=r"'strength'=11.0 is outside \[-10.0, 10.0\]"):
        Manipulate()(G, codes, direction=random_direction(G.w_dim, 0), strength=11)
    with pytest.raises(ValueError, match="has w_dim 7, the generator 32"):
        Manipulate()(G, codes, direction=torch.ones(7), strength=1)


def test_manipulation_reproduces_the_official_editor():
    io = np.load(reference_dir("idinvert") / "idinvert_stylegan64_io.npz")
    wp, boundary = torch.from_numpy(io["wp"]), torch.from_numpy(io["boundary"])
    n = Direction(boundary, layers=io["manipulate_layers"].tolist())
    assert n.per_layer and n.vector.shape == (10, 512)
    stub = SimpleNamespace(num_layers=10, w_dim=512)
    out = Manipulate().edit(stub, wp, direction=n, strength=3.0, steps=7)
    np.testing.assert_allclose(out.numpy(), io["manipulated_codes"], atol=1e-5, rtol=0)


def test_conditional_direction_is_orthogonal_to_the_conditions():
    a, b, c = (random_direction(32, s, name=f"d{s}") for s in range(3))
    cond = orthogonalize(a, [b, c])
    assert abs(float(cond.vector.norm()) - 1) < 1e-6
    assert abs(float(cond.vector @ b.vector)) < 1e-6 and abs(float(cond.vector @ c.vector)) < 1e-6
    assert float(cond.vector @ a.vector) > 0.5  # still mostly the original attribute
    # per-layer conditions make a per-layer result, orthogonal layer by layer
    per_layer = Direction(torch.randn(4, 32, generator=torch.Generator().manual_seed(9)))
    cond = orthogonalize(a, per_layer)
    assert cond.per_layer
    assert (cond.vector * per_layer.vector).sum(-1).abs().max() < 1e-6
    torch.testing.assert_close(cond.vector.norm(dim=-1), torch.ones(4))
    with pytest.raises(ValueError, match="lies in the span of the conditions"):
        orthogonalize(a, [a])


def test_manipulate_condition_on_uses_the_orthogonalised_direction():
    G = tiny_stylegan2()
    codes = G.mapping(G.sample_z(1, seed=2)).detach()
    a, b = random_direction(G.w_dim, 0), random_direction(G.w_dim, 1)
    out = Manipulate()(G, codes, direction=a, strength=3.0, condition_on=[b], render=False).codes
    moved = (out - G.to_wplus(codes))[0]
    assert (moved @ b.vector).abs().max() < 1e-5
    torch.testing.assert_close(moved, 3.0 * orthogonalize(a, b).vector.expand_as(moved), atol=1e-6, rtol=0)


# -- directions -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["logistic", "svm"])
def test_learned_direction_recovers_the_true_normal(method):
    gen = torch.Generator().manual_seed(0)
    normal = torch.randn(16, generator=gen)
    normal /= normal.norm()
    codes = torch.randn(600, 16, generator=gen)
    margin = codes @ normal
    keep = margin.abs() > 0.2  # linearly separable with a margin
    codes, scores = codes[keep], margin[keep] + 0.1 * torch.rand(int(keep.sum()), generator=gen)
    n = learn_direction(codes, (scores > 0).float(), method=method, holdout=0.2, seed=1, attribute="x")
    assert n.accuracy is not None and n.accuracy > 0.95
    assert float(n.vector @ normal) > 0.9
    assert n.source == f"interfacegan-{method}" and n.attribute == "x"
    # continuous scores: split at the median
    n2 = learn_direction(codes, margin[keep], method=method, seed=1)
    assert float(n2.vector @ normal) > 0.9


def test_learn_direction_rejects_bad_input():
    with pytest.raises(ValueError, match="single class"):
        learn_direction(torch.randn(10, 4), torch.ones(10))
    with pytest.raises(ValueError, match="method must be 'logistic' or 'svm'"):
        learn_direction(torch.randn(10, 4), torch.ones(10), method="tree")


def test_direction_save_load_round_trip(tmp_path):
    n = Direction(torch.randn(3, 8), name="age", attribute="age", layers=[2, 0], accuracy=0.97, source="test",
                  extra={"note": "x"})
    back = Direction.load(n.save(tmp_path / "age.safetensors"))
    assert torch.equal(back.vector, n.vector)
    assert back.metadata() == n.metadata() and back.layers == [0, 2]
    bad = tmp_path / "boundary.npy"
    np.save(bad, np.zeros((1, 3, 8), np.float32))
    with pytest.raises(ValueError, match="is not a safetensors direction file"):
        Direction.load(bad)
    with pytest.raises(FileNotFoundError, match="no direction file"):
        Direction.load(tmp_path / "missing.safetensors")


def test_ganspace_directions_are_orthonormal_and_ordered_by_variance():
    for G in (tiny_stylegan2(), tiny_stylegan()):  # v1 with repeat_w=False: layer 0 of W+
        dirs = ganspace_directions(G, n_samples=2000, k=6, seed=0)
        V = torch.stack([d.vector for d in dirs])
        torch.testing.assert_close(V @ V.T, torch.eye(6), atol=1e-5, rtol=0)
        variances = [d.extra["variance"] for d in dirs]
        assert variances == sorted(variances, reverse=True)
        # the reported variance is the variance of the samples projected on the direction
        with torch.no_grad():
            w = G.mapping(G.sample_z(2000, seed=0))
        w = w[:, 0] if w.ndim == 3 else w
        assert abs(float((w @ V[0]).var()) - variances[0]) < 1e-3 * variances[0]


def test_sefa_directions_are_the_top_eigenvectors_of_the_style_weights():
    G = tiny_stylegan2()
    layers = [1, 2, 3]
    dirs = sefa_directions(G, k=4, layers=layers)
    # A by hand: the conv affines of W+ layers 1-3 (b8.conv0, b8.conv1, b16.conv0; the torgb layers that share
    # those ws are not used), rows unit-normalised
    sn = G.synthesis_network
    A = torch.cat([sn.b8.conv0.affine.weight, sn.b8.conv1.affine.weight, sn.b16.conv0.affine.weight])
    A = A.detach().double()
    A = A / A.norm(dim=1, keepdim=True)
    values, vectors = torch.linalg.eigh(A.T @ A)
    V = torch.stack([d.vector for d in dirs]).double()
    torch.testing.assert_close(V @ V.T, torch.eye(4, dtype=torch.float64), atol=1e-5, rtol=0)
    for i, d in enumerate(dirs):
        assert abs(float(d.vector.double() @ vectors[:, -1 - i])) > 1 - 1e-5
        assert d.extra["eigenvalue"] == pytest.approx(float(values[-1 - i]))
        assert d.layers == layers
    # StyleGAN v1: the scale half of each AdaIN style layer
    G1 = tiny_stylegan()
    d1 = sefa_directions(G1, k=1, layers=[0])[0]
    W = G1.synthesis_network.layers[0].style.weight.detach().double()
    W = W[: W.shape[0] // 2]
    W = W / W.norm(dim=1, keepdim=True)
    assert abs(float(d1.vector.double() @ torch.linalg.eigh(W.T @ W)[1][:, -1])) > 1 - 1e-5


# -- semantic diffusion ---------------------------------------------------------------------------------

def test_diffusion_fits_the_target_region_better_than_the_encoder():
    torch.manual_seed(0)
    G = tiny_stylegan()
    E = IDInvertEncoder(resolution=16, num_layers=G.num_layers, w_dim=G.w_dim, channel_base=8, channel_max=16).eval()
    with torch.no_grad():
        target = G.synthesis(G.mapping(G.sample_z(1, seed=3)))[0]
        contexts = G.synthesis(G.mapping(G.sample_z(2, seed=4)))
    mask = box_mask(16, 8, 9, 6)
    assert mask.sum() == 36 and mask[0, 0, 6, 5] == 1 and mask[0, 0, 5, 5] == 0
    stitched = target * mask + contexts * (1 - mask)

    def region_error(codes):
        with torch.no_grad():
            return ((G.synthesis(codes) - stitched) * mask).pow(2).flatten(1).mean(1)

    with torch.no_grad():
        baseline = region_error(E(stitched).view(2, G.num_layers, G.w_dim))
    torch.set_num_threads(1)
    codes = diffuse(G, target, contexts, mask, encoder=E, steps=10, lr=0.01)
    assert codes.shape == (2, G.num_layers, G.w_dim)
    assert (region_error(codes) < baseline).all()


def test_diffuse_editor_blends_into_context_codes():
    G = tiny_stylegan()
    codes = G.mapping(G.sample_z(2, seed=4)).detach()
    with torch.no_grad():
        target = G.synthesis(G.mapping(G.sample_z(1, seed=3)))[0]
    res = Diffuse()(G, codes, target=target, crop_size=6, steps=5, render=True)
    assert res.codes.shape == codes.shape and res.images.shape == (2, 3, 16, 16)
    assert not torch.equal(res.codes, codes)
    with pytest.raises(ValueError, match="parameter 'target' is required"):
        Diffuse()(G, codes)
    with pytest.raises(ValueError, match="needs an encoder"):
        diffuse(G, target, G.synthesis(codes).detach(), box_mask(16, 8, 8, 4))


def test_editors_are_registered():
    from idinvert_plugins.plugins import get_plugins

    plugins = get_plugins()
    assert {"manipulate", "diffuse"} <= set(plugins.names("editor"))
    assert isinstance(plugins.get("editor", "manipulate"), Manipulate)
