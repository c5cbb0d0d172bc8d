"""StyleSpace (editors/stylespace.py): an S-channel edit changes only that channel's style; the strength unit;
locating channels with gradients of attribute readings; Attribute Dependency; the editor from the CLI."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_stylegan, tiny_stylegan2

from idinvert_plugins import get_editor
from idinvert_plugins.codes import load_latent, save_latent
from idinvert_plugins.editors.stylespace import (
    StyleChannelEdit,
    attribute_dependency,
    locate_channels,
    style_names,
    style_std,
)
from idinvert_plugins.latent import Latent, render

pytestmark = pytest.mark.usefixtures("one_thread")


def _codes(G, n=2, seed=3):
    with torch.no_grad():
        return G.to_wplus(G.mapping(G.sample_z(n, seed=seed)))


def _rendered_styles(G, latent):
    """The style vectors the synthesis layers actually receive while ``latent`` renders (S offsets included)."""
    paths = G.style_module_paths()
    every = Latent(latent.wp, {"styles": {k: torch.zeros(1, v.shape[1]) for k, v in G.styles(latent.wp).items()}})
    with torch.no_grad():
        render(G, every)  # installs the render's output hooks first, so ours sees their result
    seen, handles = {}, []
    for name, path in paths.items():
        def hook(module, args, output, name=name):
            seen[name] = output.detach().clone()
        handles.append(G.get_submodule(path).register_forward_hook(hook))
    try:
        with torch.no_grad():
            render(G, latent)
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.mark.parametrize("make", [tiny_stylegan2, tiny_stylegan], ids=["stylegan2", "stylegan"])
def test_a_channel_edit_changes_only_that_channels_style(make, tmp_path):
    G = make()
    latent = Latent(_codes(G))
    editor = StyleChannelEdit()
    result = editor(G, latent, style=2, channel=5, strength=8.0)
    name = style_names(G)[2]
    before, after = _rendered_styles(G, latent), _rendered_styles(G, result.latent)
    for layer in before:
        diff = after[layer] - before[layer]
        if layer != name:
            assert torch.equal(diff, torch.zeros_like(diff)), layer
        else:
            expected = torch.zeros_like(diff)
            expected[:, 5] = 8.0 * style_std(G)[name][5]
            torch.testing.assert_close(diff, expected, atol=1e-5, rtol=0)
    assert torch.equal(result.codes, latent.wp)
    with torch.no_grad():
        assert float((result.images - render(G, latent)).abs().max()) > 1e-4
    # a second edit of the same layer adds up; the part survives a code file
    again = editor(G, result.latent, style=2, channel=5, strength=-8.0)
    torch.testing.assert_close(again.latent.parts["styles"][name], torch.zeros(1, diff.shape[1]), atol=1e-6, rtol=0)
    path = save_latent(result.latent[0], tmp_path / "s.safetensors")
    assert torch.equal(render(G, load_latent(path, G)), render(G, result.latent[0]))
    with pytest.raises(ValueError, match="out of range: this generator has"):
        editor(G, latent, style=len(style_names(G)))
    with pytest.raises(ValueError, match="channel 999 is out of range"):
        editor(G, latent, style=0, channel=999)


def test_the_strength_unit_is_the_channels_standard_deviation_over_samples():
    G = tiny_stylegan2()
    std = style_std(G, n=300, seed=4, batch=128)
    with torch.no_grad():
        s = G.styles(G.to_wplus(G.mapping(torch.cat([G.sample_z(128, seed=4), G.sample_z(128, seed=132),
                                                     G.sample_z(44, seed=260)]))))
    for name in style_names(G):
        torch.testing.assert_close(std[name], s[name].std(0), rtol=1e-4, atol=1e-6)
    assert style_std(G, n=300, seed=4, batch=128) is std  # cached


def _style_reader(G, readings):
    """A differentiable 'classifier' that reads chosen style channels of the render: ``readings`` maps an
    attribute to ``[(layer, channel, weight), ...]``; its reading is the weighted sum of those rendered styles."""
    seen = {}
    paths = G.style_module_paths()
    with torch.no_grad():
        wp = _codes(G, 1)
        render(G, Latent(wp, {"styles": {k: torch.zeros(1, v.shape[1]) for k, v in G.styles(wp).items()}}))
    for name in {layer for terms in readings.values() for layer, _, _ in terms}:
        G.get_submodule(paths[name]).register_forward_hook(
            lambda module, args, output, name=name: seen.__setitem__(name, output))

    def score(images):
        return {a: sum(w * seen[layer][:, c] for layer, c, w in terms) + 0 * images.sum((1, 2, 3))
                for a, terms in readings.items()}
    return score


def test_locating_channels_finds_the_channels_an_attribute_reads():
    G = tiny_stylegan2()
    names = style_names(G)
    a_layer, b_layer = names[1], names[3]
    score = _style_reader(G, {"a": [(a_layer, 4, 2.0)],
                              "b": [(b_layer, 7, 1.0), (a_layer, 4, 0.1)],
                              "c1": [(b_layer, 2, 1.0)], "c2": [(b_layer, 2, -1.0)]})
    families = {"a": "a", "b": "b", "c1": "c", "c2": "c"}
    std = style_std(G, n=200)
    found = locate_channels(G, _codes(G, 6), score, families=families, std=std, top=3, batch=3)
    top = found["a"][0]
    assert (top.style, top.index, top.channel) == (a_layer, 1, 4)
    assert top.effect == pytest.approx(2.0 * float(std[a_layer][4]), rel=1e-4)
    assert top.consistency == 1.0 and top.specificity == pytest.approx(20.0, rel=1e-3) and top.worst == "b"
    assert len(found["a"]) == 1  # every other channel moves nothing
    assert [(e.style, e.channel) for e in found["b"]] == [(b_layer, 7)]
    # a channel shared by two readings of one family is specific to that family
    assert (found["c1"][0].style, found["c1"][0].channel) == (b_layer, 2) and found["c2"][0].effect < 0
    # a channel moving two families equally is specific to neither
    score2 = _style_reader(G, {"a": [(a_layer, 4, 1.0)], "b": [(a_layer, 4, 1.0)]})
    assert locate_channels(G, _codes(G, 4), score2, families={"a": "a", "b": "b"}, std=std, batch=4) == \
        {"a": [], "b": []}


def test_attribute_dependency():
    before = {"t": torch.tensor([0.0, 1.0]), "u": torch.tensor([0.0, 0.0]), "v": torch.tensor([1.0, 1.0]),
              "t2": torch.tensor([0.0, 0.0])}
    after = {"t": torch.tensor([2.0, 2.0]), "u": torch.tensor([1.0, -1.0]), "v": torch.tensor([1.0, 4.0]),
             "t2": torch.tensor([5.0, 5.0])}
    families = {"t": "t", "t2": "t", "u": "u", "v": "v"}
    change, dependency = attribute_dependency(before, after, "t", families=families, scales={"t": 2.0, "v": 3.0})
    torch.testing.assert_close(change, torch.tensor([1.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(dependency, torch.tensor([0.5, 1.0], dtype=torch.float64))  # t2: same family


def test_stylespace_editor_is_registered_and_runs_from_the_command_line(tmp_path, capsys):
    from app_fixtures import make_tiny_model

    from idinvert_plugins.cli import main

    assert isinstance(get_editor("stylespace"), StyleChannelEdit)
    folder = make_tiny_model(tmp_path / "models")
    G = tiny_stylegan2()
    save_latent(Latent(_codes(G, 1)), tmp_path / "c.safetensors")
    assert main(["edit", "--code", str(tmp_path / "c.safetensors"), "--model", str(folder), "--editor",
                 "stylespace", "--set", "style=3", "--set", "channel=2", "--set", "strength=6",
                 "--save-code", str(tmp_path / "e.safetensors"), "-o", str(tmp_path / "e.png")]) == 0
    edited = load_latent(tmp_path / "e.safetensors", G)
    name = style_names(G)[3]
    assert set(edited.parts["styles"]) == {name}
    assert int(edited.parts["styles"][name].ne(0).sum()) == 1
    assert main(["plugins"]) == 0
    assert "stylespace" in capsys.readouterr().out
