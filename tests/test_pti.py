"""Pivotal Tuning Inversion (inverters/pti.py): the pivot is kept, the generator is tuned on the image, the
latent carries the offsets of the tuned layers, edits keep them; shared tuning; the locality regulariser."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_stylegan2

from idinvert_plugins import get_inverter
from idinvert_plugins.codes import load_latent, save_latent
from idinvert_plugins.inverters import Composition
from idinvert_plugins.inverters.pti import PivotalTuning
from idinvert_plugins.latent import Latent, render


def _setup(n=2):
    """A generator and targets it cannot reach exactly: renders of another generator's codes."""
    G = tiny_stylegan2(seed=0)
    other = tiny_stylegan2(seed=1)
    with torch.no_grad():
        x = other.synthesis(other.to_wplus(other.mapping(other.sample_z(n, seed=5))))
        pivots = G.to_wplus(G.mapping(G.sample_z(n, seed=6)))
    return G, x, Latent(pivots)


def _mse(G, latent, x):
    with torch.no_grad():
        return (render(G, latent) - x).pow(2).flatten(1).mean(1)


def test_pti_tunes_the_generator_around_the_pivot(tmp_path):
    G, x, pivot = _setup()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    method = Composition("pivot+pti", "mean", (PivotalTuning(),))
    result = method.invert(G, x, init_codes=pivot, steps=40, lr=3e-3)
    latent = result.latent
    assert torch.equal(latent.wp, pivot.wp)
    assert torch.all(_mse(G, latent, x) < 0.5 * _mse(G, pivot, x))
    offsets = latent.parts["weights"]
    assert offsets and all(k.startswith("synthesis_network.") for k in offsets)
    assert all(v.shape[0] == 2 for v in offsets.values())  # one tuned generator per image
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())
    assert len(result.losses) == 40 and result.losses[-1]["pix"][0] < result.losses[0]["pix"][0]
    # per image: image 0 rendered with its own offsets equals the batch render's first image
    torch.testing.assert_close(render(G, latent[0]), render(G, latent)[:1], atol=1e-5, rtol=0)
    path = save_latent(latent[1], tmp_path / "p.safetensors", generator="tiny", method="pti")
    assert torch.equal(render(G, load_latent(path, G)), render(G, latent[1]))


def test_edits_move_the_pivot_and_keep_the_tuned_weights():
    G, x, pivot = _setup(n=1)
    latent = Composition("p", "mean", (PivotalTuning(),)).invert(G, x, init_codes=pivot, steps=20, lr=3e-3).latent
    from idinvert_plugins.editors.manipulate import Manipulate

    n = torch.randn(G.w_dim)
    edited = Manipulate()(G, latent, direction=n, strength=2.0)
    assert set(edited.latent.parts) == {"weights"}
    torch.testing.assert_close(edited.codes, latent.wp + 2.0 * n / n.norm(), atol=1e-5, rtol=0)
    assert torch.equal(edited.images, render(G, latent.with_wp(edited.codes)))


def test_shared_tuning_fits_several_images_with_one_generator():
    G, x, pivot = _setup(n=2)
    result = Composition("p", "mean", (PivotalTuning(),)).invert(G, x, init_codes=pivot, steps=40, lr=3e-3,
                                                                  shared=True)
    offsets = result.latent.parts["weights"]
    assert all(v.shape[0] == 1 for v in offsets.values())
    assert torch.all(_mse(G, result.latent, x) < 0.7 * _mse(G, pivot, x))
    assert result.info["shared"] is True


def test_locality_regulariser_keeps_other_codes_closer_to_the_original():
    G, x, pivot = _setup(n=1)
    probe = G.to_wplus(G.mapping(G.sample_z(8, seed=11))).detach()

    def drift(l_locality):
        latent = Composition("p", "mean", (PivotalTuning(),)).invert(
            G, x, init_codes=pivot, steps=30, lr=3e-3, l_locality=l_locality, locality_alpha=1.0).latent
        tuned = Latent(probe, {"weights": latent.parts["weights"]})
        with torch.no_grad():
            return float((render(G, tuned) - G.synthesis(probe)).pow(2).mean())

    assert drift(10.0) < 0.8 * drift(0.0)


def test_pti_is_a_registered_method_with_a_w_pivot():
    pti = get_inverter("pti")
    assert pti.embedder.name == "w" and [r.name for r in pti.refiners] == ["pti"]
    G, x, _ = _setup(n=1)
    result = pti.invert(G, x, **{"w.steps": 5, "pti.steps": 5})
    wp = result.latent.wp
    assert torch.allclose(wp, wp[:, :1].expand_as(wp))  # a W pivot: all layers equal
    with pytest.raises(ValueError, match="already carries generator weight offsets"):
        Composition("again", "mean", (PivotalTuning(),)).invert(G, x, init_codes=result.latent, steps=1)
