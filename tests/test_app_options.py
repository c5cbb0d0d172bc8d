"""The app's *Options of the method* (app/inverter_options.py): every method's declared parameters as controls,
stored per session and passed to the inverter; the beyond-W+ methods (Image2StyleGAN++, inpainting, restoration)
and the StyleSpace editor run in the app with their declared controls."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("gradio", reason="the app needs gradio (the [demo] / [test] extra)")
import gradio as gr  # noqa: E402
from app_fixtures import make_tiny_model, running_app  # noqa: E402
from conftest import tiny_stylegan2  # noqa: E402

from idinvert_plugins import get_inverter  # noqa: E402
from idinvert_plugins.app.controls import DecodeContext  # noqa: E402
from idinvert_plugins.app.inverter_options import build_option_panels, option_params, slug  # noqa: E402
from idinvert_plugins.app.models import ModelSpec, load_bundle  # noqa: E402
from idinvert_plugins.app.session import AppError, Session, invert_image  # noqa: E402
from idinvert_plugins.codes import load_latent  # noqa: E402
from idinvert_plugins.images import save_image  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("options-model"))


def raw_values(method: str, **given):
    """What the page sends for ``method``'s option controls: each control's untouched value, or ``given``."""
    values = []
    for p in option_params(get_inverter(method)):
        if p.kind in ("float", "int"):
            values.append(given.get(p.name, "" if p.default is None else p.default))
        elif p.kind == "bool":
            values.append(given.get(p.name, "default" if p.default is None else p.default))
        elif p.kind == "choice":
            values.append(given.get(p.name, p.default))
        elif p.kind in ("image", "mask"):
            values.append(given.get(p.name))
        else:
            raise AssertionError(f"no raw value for a {p.kind} control")
    return values


def test_option_panels_draw_every_declared_parameter_and_decode_them(model_dir):
    bundle = load_bundle(ModelSpec(str(model_dir), label="tiny"))
    methods = ["idinvert", "image2stylegan++", "superres", "inpaint", "crossover", "pti"]
    with gr.Blocks():
        panels = build_option_panels(methods, "idinvert", bundle.generator)
    for m in methods:
        assert [c.param.name for c in panels.controls[m]] == [p.name for p in option_params(get_inverter(m))]
    kinds = {c.param.name: c.param.kind for c in panels.controls["crossover"]}
    assert kinds["other"] == "image" and kinds["region"] == "mask" and "steps" not in kinds
    assert [type(c.components[0]).__name__ for c in panels.controls["inpaint"] if c.param.name == "hole"] == \
        ["ImageEditor"]
    session = Session(model="tiny")
    ctx = DecodeContext(bundle, session)
    assert panels.decode(session, "superres", ctx) == {}  # untouched: the declared defaults
    session.inverter_options["superres"] = raw_values("superres", factor=2, noise=True, lr=0.02)
    options = panels.decode(session, "superres", ctx)
    assert options["factor"] == 2 and options["noise"] is True and options["lr"] == 0.02
    assert "l_feat" not in options  # an empty number box: the method's default
    assert [u["visible"] for u in panels.visibility("inpaint")] == [m == "inpaint" for m in panels.groups]
    # decoded options reach the inverter; a method that cannot run without one says what is missing
    save_image(torch.zeros(3, 16, 16), model_dir.parent / "grey.png")
    inv = invert_image(bundle, str(model_dir.parent / "grey.png"), "image2stylegan++", 2,
                       options={"switch_every": 1})
    assert set(inv.parts) == {"noise"}
    with pytest.raises(AppError, match="needs the hole"):
        invert_image(bundle, str(model_dir.parent / "grey.png"), "inpaint", 1)
    hole = torch.zeros(16, 16)
    hole[4:8, 4:8] = 1
    assert invert_image(bundle, str(model_dir.parent / "grey.png"), "inpaint", 1, options={"hole": hole}).mse >= 0


def test_beyond_wplus_methods_and_stylespace_over_http(model_dir, tmp_path):
    from gradio_client import Client, handle_file

    G = tiny_stylegan2()
    with torch.no_grad():
        x = G.synthesis(G.to_wplus(G.mapping(G.sample_z(1, seed=4))))[0]
    save_image(x, tmp_path / "a.png")
    with running_app(model_dir) as (_, url):
        client = Client(url, verbose=False)
        # Image2StyleGAN++ with its options set on the page: alternate every step
        client.predict(*raw_values("image2stylegan++", switch_every=1), api_name=f"/options_{slug('image2stylegan++')}")
        *_, code = client.predict("tiny", handle_file(str(tmp_path / "a.png")), "image2stylegan++", 4,
                                  api_name="/invert")
        latent = load_latent(code, G)
        assert set(latent.parts) == {"noise"} and latent.info.get("method") in (None, "image2stylegan++")
        # super-resolution x2 from its options
        client.predict(*raw_values("superres", factor=2), api_name="/options_superres")
        *_, metrics, _, _, _, code2 = client.predict("tiny", handle_file(str(tmp_path / "a.png")), "superres", 3,
                                                     api_name="/invert")
        assert "MSE" in metrics and load_latent(code2, G).wp.shape == (1, G.num_layers, G.w_dim)
        # StyleSpace in More editors: style 2, channel 3, +6 std; only the styles part changes
        *_, code3 = client.predict(2, 3, 6.0, api_name="/stylespace")
        edited = load_latent(code3, G)
        assert set(edited.parts) == {"styles"} and torch.equal(edited.wp, load_latent(code2, G).wp)
        from gradio_client.exceptions import AppError as ClientAppError

        client.predict(*raw_values("superres", factor=3), api_name="/options_superres")  # what /invert reads
        with pytest.raises(ClientAppError, match="'factor'=3 is not one of"):
            client.predict("tiny", handle_file(str(tmp_path / "a.png")), "superres", 1, api_name="/invert")
        with pytest.raises(ClientAppError, match="needs the hole"):
            client.predict("tiny", handle_file(str(tmp_path / "a.png")), "inpaint", 1, api_name="/invert")
