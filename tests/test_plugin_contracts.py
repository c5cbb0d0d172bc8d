"""Methods beyond W+ as one-file plugins (tests/plugins/): a refiner of noise maps + W+, a refiner that tunes
the generator, an editor of S-space channels. Each registers through the hooks from a plugins directory, runs
from Python and the command line, and its latent round-trips through a code file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_stylegan, tiny_stylegan2

from idinvert_plugins import plugins
from idinvert_plugins.cli import main
from idinvert_plugins.codes import load_latent, save_latent
from idinvert_plugins.inverters import Composition
from idinvert_plugins.latent import Latent, render

PLUGINS = Path(__file__).parent / "plugins"


def _with_noise_strength(make):
    """Tiny generators start with zero noise strength (as untrained ones do); trained ones use their noise."""
    def build():
        G = make()
        with torch.no_grad():
            for name, p in G.named_parameters():
                if name.endswith(("noise_strength", "noise_weight")):
                    p.fill_(0.3)
        return G
    return build


GENERATORS = {"stylegan2": _with_noise_strength(tiny_stylegan2), "stylegan": _with_noise_strength(tiny_stylegan)}


@pytest.fixture
def registry():
    plugins.configure([PLUGINS])
    reg = plugins.get_plugins()
    assert not reg.problems, reg.problems
    return reg


def _targets(G, n=2, seed=3):
    with torch.no_grad():
        z = G.sample_z(n, seed=seed)
        return G.synthesis(G.to_wplus(G.mapping(z))).detach()


def _start(G, x, seed=7):
    """A pivot near, not at, the targets' codes (a stand-in for an encoder's output)."""
    with torch.no_grad():
        return Latent(G.to_wplus(G.mapping(G.sample_z(len(x), seed=seed))))


def _pix(G, latent, x):
    with torch.no_grad():
        return float((render(G, latent) - x).pow(2).mean())


def test_the_plugins_register_every_kind(registry):
    assert "noise-wplus" in registry.names("refiner") and "tune-generator" in registry.names("refiner")
    assert {"encoder+noise", "encoder+tune"} <= set(registry.names("inverter"))
    assert "scale-channels" in registry.names("editor")
    sources = {r.name: r.source for r in registry.registered("refiner")}
    assert sources["noise-wplus"].endswith("noise_refiner.py")


@pytest.mark.parametrize("arch", sorted(GENERATORS))
def test_noise_refiner_fits_better_and_round_trips(registry, arch, tmp_path):
    G = GENERATORS[arch]()
    x = _targets(G)
    start = _start(G, x)
    method = Composition("start+noise", "mean", ("noise-wplus",))
    result = method.invert(G, x, init_codes=start, steps=15)
    latent = result.latent
    assert set(latent.parts) == {"noise"} and set(latent.parts["noise"]) == set(G.noise_shapes())
    assert _pix(G, latent, x) < 0.7 * _pix(G, start, x)
    # the noise part matters: without it the render is a different image
    assert not torch.allclose(render(G, latent), render(G, latent.without("noise")))
    path = save_latent(latent[1], tmp_path / "a.safetensors", generator="tiny", method="start+noise")
    back = load_latent(path, G)
    assert back.info["method"] == "start+noise" and set(back.parts) == {"noise"}
    assert torch.equal(render(G, back), render(G, latent[1]))


@pytest.mark.parametrize("arch", sorted(GENERATORS))
def test_tuning_refiner_keeps_offsets_of_tuned_layers_only_and_round_trips(registry, arch, tmp_path):
    G = GENERATORS[arch]()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    x = _targets(G, n=1)
    start = _start(G, x)
    result = Composition("start+tune", "mean", ("tune-generator",)).invert(G, x, init_codes=start, steps=15)
    latent = result.latent
    offsets = latent.parts["weights"]
    assert offsets and all(k.startswith("synthesis_network.") for k in offsets)
    assert not any(k.startswith("mapping_network.") for k in offsets)
    assert torch.equal(latent.wp, start.wp)  # the pivot is kept
    assert _pix(G, latent, x) < 0.7 * _pix(G, start, x)
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())  # the shared G is untouched
    path = save_latent(latent, tmp_path / "t.safetensors", generator="tiny")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        stored = [k for k in f.keys() if k.startswith("weights/")]
        assert stored and all(f.get_tensor(k).dtype == torch.float16 for k in stored)
        assert f.metadata()["parts"] == "weights"
    assert torch.equal(render(G, load_latent(path, G)), render(G, latent))
    # a W+ editor moves the pivot and keeps the tuned weights
    edited = registry.get("editor", "interpolate")(G, latent, target=torch.zeros_like(latent.wp), steps=3)
    assert set(edited.latent.parts) == {"weights"}
    assert edited.codes.shape == (1, 3, *latent.wp.shape[1:])
    assert torch.equal(edited.images, render(G, latent.with_wp(edited.codes)))
    assert not torch.allclose(edited.images, render(G, Latent(edited.codes)))


@pytest.mark.parametrize("arch", sorted(GENERATORS))
def test_channel_editor_edits_s_space_and_round_trips(registry, arch, tmp_path):
    G = GENERATORS[arch]()
    latent = _start(G, _targets(G, n=2))
    editor = registry.get("editor", "scale-channels")
    result = editor(G, latent, layer=1, first=0, count=8, scale=3.0)
    name = list(G.style_modules())[1]
    offset = result.latent.parts["styles"][name]
    s = G.styles(latent.wp)[name].detach()
    torch.testing.assert_close(offset[:, :8], 2.0 * s[:, :8])
    assert torch.all(offset[:, 8:] == 0)
    assert torch.equal(result.codes, latent.wp)  # only S changed
    assert float((result.images - render(G, latent).detach()).abs().max()) > 1e-3
    path = save_latent(result.latent[0], tmp_path / "s.safetensors")
    assert torch.equal(render(G, load_latent(path, G)), render(G, result.latent[0]))
    with pytest.raises(ValueError, match="out of range"):
        editor(G, latent, layer=99)


def test_plugins_run_from_the_command_line(tmp_path, capsys):
    from app_fixtures import make_tiny_model

    from idinvert_plugins.images import save_image

    folder = make_tiny_model(tmp_path / "models")
    G = tiny_stylegan2()
    save_image(_targets(G, n=1)[0], tmp_path / "a.png")
    common = ["--plugins-dir", str(PLUGINS)]
    assert main([*common, "plugins"]) == 0
    listing = capsys.readouterr().out
    assert "noise-wplus" in listing and "scale-channels" in listing and "encoder+tune" in listing

    out = tmp_path / "inv"
    assert main([*common, "invert", str(folder), str(tmp_path / "a.png"), "--encoder",
                 str(tmp_path / "models" / "tiny-encoder"), "--method", "encoder+noise", "--set", "steps=3",
                 "-o", str(out)]) == 0
    assert "noise" in capsys.readouterr().out
    noise_latent = load_latent(out / "a.safetensors", G)
    assert set(noise_latent.parts) == {"noise"}

    out2 = tmp_path / "inv2"
    assert main([*common, "invert", str(folder), str(tmp_path / "a.png"), "--encoder",
                 str(tmp_path / "models" / "tiny-encoder"), "--embed", "encoder", "--refine", "tune-generator",
                 "--set", "tune-generator.steps=2", "-o", str(out2)]) == 0
    tuned = load_latent(out2 / "a.safetensors", G)
    assert set(tuned.parts) == {"weights"} and tuned.info["method"] == "encoder+tune-generator"

    edited = tmp_path / "e.safetensors"
    assert main([*common, "edit", "--code", str(out2 / "a.safetensors"), "--model", str(folder), "--editor",
                 "scale-channels", "--set", "layer=2", "--set", "scale=0", "--save-code", str(edited),
                 "-o", str(tmp_path / "e.png")]) == 0
    back = load_latent(edited, G)
    assert set(back.parts) == {"weights", "styles"}
    from idinvert_plugins.images import load_image

    png = load_image(tmp_path / "e.png", G.resolution)
    assert float((png - render(G, back)[0].detach().clamp(-1, 1)).abs().max()) < 2 / 255 + 1e-6


def test_plugins_run_in_the_app(tmp_path, registry):
    """The app offers the plugins' methods and editor: invert with a tuning method over HTTP, scale channels in
    the More editors tab, download: the code file holds the weights and styles parts and re-renders the PNG."""
    from app_fixtures import make_tiny_model, running_app
    from gradio_client import Client, handle_file

    from idinvert_plugins.images import load_image, save_image, to_uint8

    folder = make_tiny_model(tmp_path / "models")
    G = tiny_stylegan2()
    save_image(_targets(G, n=1)[0], tmp_path / "a.png")
    with running_app(folder) as (_, url):
        client = Client(url, verbose=False)
        *_, png, code_file = client.predict("tiny", handle_file(str(tmp_path / "a.png")), "encoder+tune", 3,
                                            api_name="/invert")
        tuned = load_latent(code_file, G)
        assert set(tuned.parts) == {"weights"}
        *_, png2, code_file2 = client.predict(2, 0, 8, 0.0, api_name="/scale_channels")
        edited = load_latent(code_file2, G)
        assert set(edited.parts) == {"weights", "styles"} and torch.equal(edited.wp, tuned.wp)
        with torch.no_grad():
            expected = to_uint8(render(G, edited)[0])
        shown = (load_image(png2, G.resolution) + 1) * 127.5
        assert float((shown - torch.tensor(expected).permute(2, 0, 1).float()).abs().max()) <= 1.0
        assert not torch.equal(load_image(png, G.resolution), load_image(png2, G.resolution))
        *_, code_file3 = client.predict("tiny", handle_file(str(tmp_path / "a.png")), "encoder+noise", 3,
                                        api_name="/invert")
        assert set(load_latent(code_file3, G).parts) == {"noise"}
