"""The web app: its actions, its controls, the launched app driven through gradio_client, Space export."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

pytest.importorskip("gradio", reason="the app needs gradio (the [demo] / [test] extra)")
from app_fixtures import DIRECTION_NAMES, free_port, make_tiny_model, running_app  # noqa: E402
from conftest import REPO  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError as ClientAppError  # noqa: E402

from idinvert_plugins.app.examples import example_images  # noqa: E402
from idinvert_plugins.app.models import ModelRegistry, ModelSpec, load_bundle  # noqa: E402
from idinvert_plugins.app.session import (  # noqa: E402
    AppError,
    Session,
    apply_inversion,
    display,
    edit_directions,
    invert_image,
    read_image,
    run_editor,
)
from idinvert_plugins.images import to_uint8  # noqa: E402
from idinvert_plugins.inverters.base import encode  # noqa: E402
from idinvert_plugins.metrics import mse  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("app-model"))


@pytest.fixture(scope="module")
def bundle(model_dir):
    return load_bundle(ModelSpec(str(model_dir), label="tiny"))


@pytest.fixture(scope="module")
def tiny_app(model_dir):
    # a second menu entry: the same generator without its encoder
    with running_app(model_dir, [ModelSpec(str(model_dir), encoder=None, label="tiny-bare")]) as (demo, url):
        yield demo, url


@pytest.fixture(scope="module")
def app_url(tiny_app):
    return tiny_app[1]


@pytest.fixture(scope="module")
def examples() -> list[str]:
    return [p for p, _ in example_images(16)]


def png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the pixel data is a 16x16 image's): refused before decoding."""
    data = bytearray(png_bytes(Image.new("L", (16, 16))))
    ihdr = 8  # after the signature: length (4), b"IHDR" (4), then width and height
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4 : ihdr + 8 + 13]))
    data[ihdr + 8 + 13 : ihdr + 8 + 17] = struct.pack(">I", crc)
    return bytes(data)


def read_code(path: str) -> torch.Tensor:
    return load_file(path)["code"]


def decode_png(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# -- actions (no server) ------------------------------------------------------------------------------------
def test_bundle_finds_encoder_directions_and_describes_itself(bundle):
    assert bundle.encoder is not None
    assert sorted(bundle.directions) == sorted(DIRECTION_NAMES)
    assert not any(p.requires_grad for p in bundle.generator.parameters())  # shared read-only across sessions
    text = bundle.describe()
    assert "16x16 px" in text and "encoder: yes" in text and "age, smile" in text


def test_invert_reports_progress_mse_and_time(bundle, examples):
    calls = []
    inv = invert_image(bundle, examples[0], "idinvert", 4, progress=lambda i, n, d: calls.append((i, n, d)))
    assert [c[:2] for c in calls] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert "IDInvert" in calls[-1][2] and "loss" in calls[-1][2]
    G = bundle.generator
    with torch.no_grad():
        again = G.synthesis(inv.code[None], noise_mode="const")[0]
    assert torch.allclose(again, inv.image, atol=1e-5)
    assert inv.mse == pytest.approx(float(mse(inv.image.clamp(-1, 1)[None], inv.target[None])[0]), rel=1e-6)
    assert inv.seconds > 0 and inv.code.shape == (G.num_layers, G.w_dim)
    assert f"MSE {inv.mse:.4f}" in inv.summary() and "4 iterations" in inv.summary()


def test_encoder_only_is_the_encoder_code(bundle, examples):
    inv = invert_image(bundle, examples[1], "encoder")
    x = read_image(examples[1], 16)[0][None]
    with torch.no_grad():
        expected = encode(bundle.encoder, bundle.generator, x)[0]
    assert torch.allclose(inv.code, expected, atol=1e-6)


def test_without_an_encoder_idinvert_starts_from_the_average(model_dir, examples):
    bare = load_bundle(ModelSpec(str(model_dir), encoder=None))
    assert bare.encoder is None and any("No encoder" in n for n in bare.notes)
    with pytest.raises(AppError, match="needs this model's encoder.*choose IDInvert or Image2StyleGAN"):
        invert_image(bare, examples[0], "encoder")
    inv = invert_image(bare, examples[0], "idinvert", 0)  # 0 steps: exactly the starting point
    G = bare.generator
    assert torch.allclose(inv.code, G.w_avg.expand(G.num_layers, -1))
    assert any("average code" in n for n in inv.notes)


def test_direction_sliders_add_up(bundle, examples):
    session = Session(model="tiny")
    apply_inversion(session, invert_image(bundle, examples[0], "encoder"), "tiny")
    image = edit_directions(bundle, session, {"age": 2.0, "smile": -1.5})
    n = {k: d.vector for k, d in bundle.directions.items()}
    expected = session.code + 2.0 * n["age"] - 1.5 * n["smile"]
    assert torch.allclose(session.result_code, expected, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(image, bundle.generator.synthesis(expected[None], noise_mode="const")[0], atol=1e-5)
    with pytest.raises(AppError, match="no direction"):
        edit_directions(bundle, session, {"beard": 1.0})
    with pytest.raises(AppError, match="Invert an image first"):
        edit_directions(bundle, Session(model="tiny"), {"age": 1.0})


def test_read_image_converts_and_explains(tmp_path):
    wide = write(tmp_path / "wide.png", png_bytes(Image.new("RGB", (40, 20), (200, 10, 10))))
    img, notes = read_image(wide, 16)
    assert img.shape == (3, 16, 16) and "centred 20x20 square" in " ".join(notes)
    grey16 = write(tmp_path / "g16.png", png_bytes(Image.fromarray(np.full((16, 16), 65535, np.uint16))))
    img, notes = read_image(grey16, 16)
    assert np.all(to_uint8(img) == 255) and "16-bit greyscale" in notes[0]
    cmyk = write(tmp_path / "c.jpg", png_bytes(Image.new("CMYK", (16, 16), (0, 0, 0, 0)), "JPEG", quality=100))
    img, notes = read_image(cmyk, 16)
    assert to_uint8(img).min() >= 250 and "CMYK, converted to RGB" in notes[0]


@pytest.mark.parametrize("kind, message", [
    ("text", "not an image file that can be read; use PNG or JPEG"),
    ("gif", r"animated \(2 frames\)"),
    ("tiny", "1x1: too small"),
    ("huge", r"too large \(10000x9000\)"),
    ("none", "No image: upload one"),
])
def test_bad_images_raise_readable_errors(tmp_path, kind, message):
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    data = {
        "text": b"this is not an image",
        "gif": png_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "tiny": png_bytes(Image.new("RGB", (1, 1))),
        "huge": huge_png_header(10000, 9000),
    }
    source = write(tmp_path / f"bad-{kind}.png", data[kind]) if kind in data else None
    with pytest.raises(AppError, match=message) as info:
        read_image(source, 16)
    assert str(tmp_path) not in str(info.value)  # no server paths in messages


# -- controls from declared parameters -----------------------------------------------------------------------
def test_controls_are_drawn_from_any_editors_params(bundle):
    import gradio as gr

    from idinvert_plugins.app.controls import DecodeContext, build_controls, components_of, decode_controls
    from idinvert_plugins.params import Param

    params = (
        Param("amount", "float", default=0.25, min=0.0, max=1.0, step=0.05),
        Param("count", "int", default=None, min=0, max=10, step=1),
        Param("flip", "bool", default=True),
        Param("auto", "bool", default=None),
        Param("mode", "choice", default="b", choices=("a", "b")),
        Param("layers", "layers"),
        Param("other", "code"),
        Param("direction", "direction", required=True),
    )
    with gr.Blocks():
        controls = build_controls("demo", params, bundle.generator, direction_names=list(bundle.directions))
    kinds = [type(c).__name__ for c in components_of(controls)]
    assert kinds == ["Slider", "Textbox", "Checkbox", "Radio", "Dropdown", "Slider", "Slider", "Radio", "Number",
                     "Dropdown"]
    session = Session(model="tiny")
    ctx = DecodeContext(bundle, session)
    L = bundle.generator.num_layers
    values = decode_controls(controls, [0.5, "", False, "off", "a", 1, 3, "average face", 0, "smile"], ctx)
    assert values["amount"] == 0.5 and "count" not in values and values["flip"] is False and values["auto"] is False
    assert values["mode"] == "a" and values["layers"] == (1, 3)
    assert torch.equal(values["other"], bundle.generator.w_avg.expand(1, L, -1))
    assert values["direction"] is bundle.directions["smile"]
    full = decode_controls(controls, [0.5, "4", True, "default", "b", 0, L, "random face", 7, "age"], ctx)
    assert full["count"] == 4 and "auto" not in full and "layers" not in full  # full range = all layers
    G = bundle.generator
    assert torch.allclose(full["other"], G.to_wplus(G.mapping(G.sample_z(1, seed=7))))
    with pytest.raises(AppError, match="'many' is not a number"):
        decode_controls(controls, [0.5, "many", True, "default", "b", 0, L, "random face", 7, "age"], ctx)
    with pytest.raises(AppError, match="layer range .3, 2. is empty"):
        decode_controls(controls, [0.5, 4, True, "default", "b", 3, 2, "average face", 0, "age"], ctx)
    with pytest.raises(AppError, match="invert a second image first"):
        decode_controls(controls, [0.5, 4, True, "default", "b", 0, L, "second image", 0, "age"], ctx)


def test_directions_are_grouped_and_labelled_from_the_summary():
    from idinvert_plugins.app.controls import (
        ATTRIBUTES,
        UNSUPERVISED,
        WEAK,
        SlotPlan,
        assign_slots,
        group_directions,
    )
    from idinvert_plugins.editors.directions import Direction

    def direction(name: str, source: str = "interfacegan-logistic", attribute: str | None = None, **extra):
        return Direction(torch.ones(4), name=name, source=source, attribute=attribute, extra=extra)

    directions = {
        "smile": direction("smile", attribute="smile"),
        "eyeglasses": direction("eyeglasses", attribute="eyeglasses"),
        "yaw": direction("yaw", attribute="yaw", crosstalk={"clean": True, "success": 0.91, "worst": 0.4,
                                                            "worst_attribute": "age", "step": 2.0}),
        "my-edit": direction("my-edit", source="random"),  # a lone dash is no categorical family
        "hair_color-red": direction("hair_color-red", attribute="hair_color"),
        "hair_color-black": direction("hair_color-black", attribute="hair_color"),
        "background-blue": direction("background-blue", attribute="background"),
        "sefa_01": direction("sefa_01", source="sefa"),
        "ganspace_00": direction("ganspace_00", source="ganspace"),
    }
    rows = {
        "smile": {"note": "split at the median of 20000 scores", "accuracy": 0.67, "majority": None,
                  "crosstalk": {"clean": False, "success": 0.95, "worst": 0.93, "worst_attribute": "hair_color",
                                "step": 3.0}},
        "eyeglasses": {"majority": 0.82, "accuracy": 0.93,
                       "crosstalk": {"clean": True, "success": 0.97, "worst": 0.21, "worst_attribute": "skin_tone",
                                     "step": 3.0}},
        "hair_color-red": {"attribute": "hair_color", "crosstalk": {"clean": True, "success": 0.9, "worst": 0.1,
                                                                    "worst_attribute": "age", "step": 3.0}},
        "hair_color-black": {"attribute": "hair_color", "accuracy": 0.9, "majority": 0.81},
        "background-blue": {"attribute": "background", "crosstalk": {"clean": False, "success": 0.3, "worst": None,
                                                                     "worst_attribute": "age", "step": 3.0}},
        "sefa_01": {"source": "sefa", "note": "eigenvalue 22.3"},
        "my-edit": {"crosstalk": {"clean": False, "success": 0.875, "worst": 0.12, "worst_attribute": "age",
                                  "step": 3.0}},  # little cross-talk, but too few faces move the intended way
    }
    groups = group_directions(directions, rows)
    assert [g.key for g in groups] == [ATTRIBUTES, "background", "hair_color", UNSUPERVISED]
    assert [[s.name for s in g.sliders] for g in groups] == [
        ["eyeglasses", "my-edit", "smile", "yaw"], ["background-blue"], ["hair_color-black", "hair_color-red"],
        ["ganspace_00", "sefa_01"]]
    sliders = {s.name: s for g in groups for s in g.sliders}
    assert sliders["smile"].label == "smile · weak: drags other attributes"
    assert sliders["eyeglasses"].label == "eyeglasses · clean"
    assert sliders["yaw"].label == "yaw · clean"  # from the file's own metadata when summary.json has no row
    assert sliders["hair_color-black"].label == "hair_color-black · not measured"
    assert sliders["my-edit"].label == "my-edit · weak: works on 88% of faces" and sliders["my-edit"].status == WEAK
    assert sliders["smile"].info == ("continuous attribute; moves the intended way for 95% of faces at step 3; "
                                     "worst cross-talk 0.93x the target's change (hair_color)")
    assert sliders["eyeglasses"].info.startswith("binary attribute; moves the intended way for 97% of faces")
    assert sliders["hair_color-black"].info == ("black vs the other hair_color classes; held-out accuracy 0.90 "
                                                "(majority 0.81)")
    assert sliders["sefa_01"].info == "SeFa component, no target attribute; eigenvalue 22.3"
    assert sliders["background-blue"].info == ("blue vs the other background classes; moves the intended way for 30% "
                                               "of faces at step 3; the target does not move the intended way on "
                                               "average")
    assert groups[0].header() == "Attributes (binary and continuous): 4 directions (2 clean, 2 weak)"
    assert groups[2].header() == ("hair_color (categorical: one direction per class): 2 directions "
                                  "(1 clean, 1 not measured)")

    plan = SlotPlan.fitting([groups], min_per_group=2)
    assert (plan.groups, plan.per_group) == (5, 4)  # the largest group fits one slot; one spare group slot
    shown = assign_slots(groups, plan)
    assert shown.slot("sefa_01") == 3 * 4 + 1 and shown.names[4:8] == ["background-blue", None, None, None]
    assert shown.opened == [True, False, False, False, False] and shown.headers[4] is None and not shown.left_out
    small = assign_slots(groups, SlotPlan(3, 2))  # a pool built for smaller models: groups split, rest listed
    assert small.headers[0].endswith("part 1 of 2") and small.headers[1].endswith("part 2 of 2")
    assert small.names == ["eyeglasses", "my-edit", "smile", "yaw", "background-blue", None]
    assert small.left_out == ["hair_color-black", "hair_color-red", "ganspace_00", "sefa_01"]
    with pytest.raises(KeyError, match="no slider for direction 'sefa_01'"):
        small.slot("sefa_01")
    from idinvert_plugins.app.ui import _directions_note

    note = _directions_note(small)  # the page says what it cannot show, and how to make room
    assert "**9 directions** in 2 groups" in note
    assert "**4 directions have no slider** (hair_color-black, hair_color-red, ganspace_00, sefa_01)" in note
    assert "Start the app with this model first in `--model`" in note
    assert "**9 directions** in 4 groups (3 clean, 3 weak, 3 not measured)" in _directions_note(shown)


def test_mask_from_painted_layer(tmp_path):
    from idinvert_plugins.app.controls import mask_from_editor

    layer = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    layer.paste((255, 0, 0, 255), (64, 128, 128, 192))  # columns 64..127, rows 128..191
    path = tmp_path / "layer.png"
    layer.save(path)
    mask = mask_from_editor({"background": None, "layers": [{"path": str(path)}], "composite": None}, 16)
    expected = torch.zeros(16, 16)
    expected[8:12, 4:8] = 1
    assert torch.equal(mask, expected)
    assert mask_from_editor({"layers": []}, 16) is None and mask_from_editor(None, 16) is None


def test_plugin_editor_runs_through_the_generic_path(bundle, examples):
    from idinvert_plugins import get_editor
    from idinvert_plugins.app.session import edit_context

    ctx = edit_context(bundle)  # semantic diffusion takes the model's encoder from it: init E(stitched)
    assert ctx.encoder is bundle.encoder and ctx.generator is bundle.generator
    assert "encoder" in get_editor("diffuse").uses and get_editor("diffuse").encoder is None

    session = Session(model="tiny")
    apply_inversion(session, invert_image(bundle, examples[0], "encoder"), "tiny")
    result = run_editor(bundle, session, get_editor("toward-average"), {"strength": 1.0, "layers": (0, 2)})
    G = bundle.generator
    assert torch.allclose(result.codes[0, :2], G.w_avg.expand(2, -1))
    assert torch.equal(result.codes[0, 2:], session.code[2:])


# -- the launched app over HTTP ------------------------------------------------------------------------------
def test_invert_edit_and_downloads_over_the_api(app_url, bundle, examples):
    client = Client(app_url, verbose=False)
    seen, recon, metrics, before, edited, png, code_file = client.predict(
        "tiny", handle_file(examples[2]), "idinvert", 3, api_name="/invert")
    G = bundle.generator
    code = read_code(code_file)
    assert code.shape == (G.num_layers, G.w_dim)
    with torch.no_grad():
        rendered = to_uint8(G.synthesis(code[None], noise_mode="const")[0])
    assert np.array_equal(decode_png(png), rendered)  # the download is the model-size reconstruction
    assert np.array_equal(decode_png(recon), display(G.synthesis(code[None], noise_mode="const")[0].detach()))
    assert decode_png(recon).shape == (256, 256, 3) and decode_png(seen).shape == (256, 256, 3)
    target = read_image(examples[2], 16)[0]
    error = float(mse(torch.tensor(rendered).permute(2, 0, 1)[None] / 127.5 - 1, target[None])[0])
    reported = float(re.search(r"MSE ([0-9.]+)", metrics).group(1))
    assert reported == pytest.approx(error, abs=2e-3) and "3 iterations" in metrics

    edited_view, png2, code_file2 = client.predict(1.5, -2.0, api_name="/edit")
    n = {k: d.vector for k, d in bundle.directions.items()}
    assert torch.allclose(read_code(code_file2), code + 1.5 * n["age"] - 2.0 * n["smile"], atol=1e-5)
    assert not np.array_equal(decode_png(edited_view), decode_png(recon))
    reset = client.predict(api_name="/reset_edit")
    assert torch.allclose(read_code(reset[-1]), code, atol=1e-6)


def test_interpolate_strip_frame_and_style_mix(app_url, bundle, examples):
    client = Client(app_url, verbose=False)
    first = read_code(client.predict("tiny", handle_file(examples[0]), "encoder", 0, api_name="/invert")[-1])
    with pytest.raises(ClientAppError, match="invert a second image first"):
        client.predict("second image", 0, 5, api_name="/interpolate")
    client.predict(handle_file(examples[3]), "encoder", 0, api_name="/invert_second")
    second = encode(bundle.encoder, bundle.generator, read_image(examples[3], 16)[0][None])[0].detach()
    strip_png, frame_update, frame_png, _, last_code = client.predict("second image", 0, 5, api_name="/interpolate")
    assert frame_update["maximum"] == 4 and frame_update["value"] == 4
    assert decode_png(strip_png).shape[1] == 5 * 128 + 4 * 4  # five 128-px tiles with 4-px gaps
    assert torch.allclose(read_code(last_code), second, atol=1e-5)
    _, _, mid_code = client.predict(2, api_name="/frame")
    assert torch.allclose(read_code(mid_code), (first + second) / 2, atol=1e-5)

    _, _, mixed = client.predict("second image", 0, 3, api_name="/style_mix")
    mixed = read_code(mixed)
    assert torch.allclose(mixed[:3], first[:3], atol=1e-6) and torch.allclose(mixed[3:], second[3:], atol=1e-5)


def test_diffuse_with_a_painted_mask_and_a_plugin_editor(app_url, bundle, examples, tmp_path):
    client = Client(app_url, verbose=False)
    first = read_code(client.predict("tiny", handle_file(examples[0]), "encoder", 0, api_name="/invert")[-1])
    layer = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    layer.paste((255, 0, 0, 255), (64, 64, 192, 192))
    layer_path = tmp_path / "mask-layer.png"
    layer.save(layer_path)
    editor_value = {"background": handle_file(examples[4]), "layers": [handle_file(str(layer_path))],
                    "composite": None}
    _, png, code_file = client.predict(handle_file(examples[4]), editor_value, 8, 8, 6, 3, 0.01, "",
                                       api_name="/diffuse")
    diffused = read_code(code_file)
    assert diffused.shape == first.shape and not torch.allclose(diffused, first)
    assert decode_png(png).shape == (16, 16, 3)
    empty = {"background": handle_file(examples[4]), "layers": [], "composite": None}  # nothing painted: the box
    boxed = read_code(client.predict(handle_file(examples[4]), empty, 8, 8, 6, 3, 0.01, "", api_name="/diffuse")[-1])
    assert not torch.allclose(boxed, diffused, atol=1e-4)

    _, _, toward = client.predict(1.0, 0, 6, api_name="/toward_average")  # from hooks/toward_average.py
    G = bundle.generator
    assert torch.allclose(read_code(toward), G.w_avg.expand(G.num_layers, -1), atol=1e-6)


def test_bad_uploads_give_messages_and_the_app_keeps_serving(app_url, examples, tmp_path):
    client = Client(app_url, verbose=False)
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    bad = {
        "notes.png": (b"plain text, not an image", "not an image file that can be read"),
        "huge.png": (huge_png_header(12000, 12000), r"too large \(12000x12000\)"),
        "anim.gif": (png_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:]), "animated"),
        "dot.png": (png_bytes(Image.new("RGB", (1, 1))), "1x1: too small"),
    }
    for name, (data, message) in bad.items():
        with pytest.raises(ClientAppError, match=message):
            client.predict("tiny", handle_file(write(tmp_path / name, data)), "encoder", 0, api_name="/invert")
    with pytest.raises(ClientAppError, match="Invert an image first"):
        Client(app_url, verbose=False).predict(1.0, api_name="/edit")
    converted = {
        "deep.png": (png_bytes(Image.fromarray(np.full((20, 20), 30000, np.uint16))), "16-bit greyscale"),
        "print.jpg": (png_bytes(Image.new("CMYK", (20, 20), (0, 80, 80, 0)), "JPEG"), "CMYK, converted to RGB"),
    }
    for name, (data, note) in converted.items():
        metrics = client.predict("tiny", handle_file(write(tmp_path / name, data)), "encoder", 0,
                                 api_name="/invert")[2]
        assert "MSE" in metrics and note in metrics
    assert "MSE" in client.predict("tiny", handle_file(examples[0]), "encoder", 0, api_name="/invert")[2]


def test_four_concurrent_clients_keep_their_own_state(app_url, bundle, examples):
    G, E = bundle.generator, bundle.encoder
    n = {k: d.vector for k, d in bundle.directions.items()}

    def session(i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        client = Client(app_url, verbose=False)
        method, steps = ("idinvert", 2) if i == 0 else ("encoder", 0)
        inverted = read_code(client.predict("tiny", handle_file(examples[i]), method, steps, api_name="/invert")[-1])
        edited = read_code(client.predict(float(i + 1), api_name="/edit")[-1])
        again = read_code(client.predict(float(i + 1), 1.0, api_name="/edit")[-1])
        return inverted, edited, again

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(session, range(4)))
    for i, (inverted, edited, again) in enumerate(results):
        if i:  # encoder-only: exactly this client's image's code
            x = read_image(examples[i], 16)[0][None]
            assert torch.allclose(inverted, encode(E, G, x)[0].detach(), atol=1e-5)
        assert torch.allclose(edited, inverted + (i + 1) * n["age"], atol=1e-5)
        assert torch.allclose(again, inverted + (i + 1) * n["age"] + n["smile"], atol=1e-5)
    assert len({tuple(r[0].flatten()[:4].tolist()) for r in results}) == 4


def test_switching_models_resets_the_session(tiny_app, examples):
    demo, app_url = tiny_app
    client = Client(app_url, verbose=False)
    client.predict("tiny", handle_file(examples[0]), "encoder", 0, api_name="/invert")
    out = client.predict("tiny-bare", api_name="/select_model")  # the API leaves out the group (layout) updates
    info, note, sliders = out[0], out[1], out[7:-2]
    assert len(sliders) == len(demo.direction_slots("tiny-bare")) and demo.direction_slots("tiny-bare")[:3] == [
        "age", "smile", None]
    assert "**2 directions** in 1 group (2 not measured)" in note
    assert "**tiny-bare**" in info and "encoder: none" in info and "No encoder" in info
    assert [s["label"] for s in sliders[:2]] == ["age · not measured", "smile · not measured"]
    assert all(s["visible"] for s in sliders[:2])
    assert not any(s["visible"] for s in sliders[2:])  # slots beyond the model's directions are hidden
    on_model = next(f for f in demo.fns.values() if f.api_name == "select_model").fn
    groups = [u for u in on_model(Session(model="tiny"), "tiny-bare")[8:] if isinstance(u, dict) and "open" in u]
    assert groups[0]["label"] == "Attributes (binary and continuous): 2 directions (2 not measured)"
    assert groups[0]["visible"] and groups[0]["open"] and not any(g["visible"] for g in groups[1:])
    with pytest.raises(ClientAppError, match="Invert an image first"):
        client.predict(1.0, api_name="/edit")  # the code inverted with the other model is gone
    with pytest.raises(ClientAppError, match="needs this model's encoder"):
        client.predict("tiny-bare", handle_file(examples[0]), "encoder", 0, api_name="/invert")
    metrics = client.predict("tiny-bare", handle_file(examples[0]), "idinvert", 2, api_name="/invert")[2]
    assert "started from the average code" in metrics


BUNDLED = "toyfaces-stylegan2-64"


@pytest.fixture(scope="module")
def bundled_app():
    """The app on the bundled generator (its real directions folder: 32 directions in 5 groups)."""
    from idinvert_plugins.app import build_app, launch_options

    demo = build_app([ModelSpec(BUNDLED)], include_bundled=False)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True, **launch_options())
    try:
        yield demo, url
    finally:
        demo.close()


def _expected_group(name: str) -> str:
    if re.fullmatch(r"(sefa|ganspace)_\d+", name):
        return "Unsupervised components (SeFa, GANSpace)"
    if "-" in name:
        return f"{name.split('-')[0]} (categorical: one direction per class)"
    return "Attributes (binary and continuous)"


def test_bundled_model_every_direction_has_a_labelled_slider_in_its_group(bundled_app):
    demo, _ = bundled_app
    folder = REPO / "weights" / BUNDLED / "directions"
    files = sorted(p.stem for p in folder.glob("*.safetensors"))
    summary = json.loads((folder / "summary.json").read_text())["directions"]
    slots = demo.direction_slots()
    assert sorted(n for n in slots if n) == files and len(files) > 24  # the old page drew 24 sliders at most

    # the page as drawn: every slider visible, labelled from summary.json, inside a visible group of its kind
    config = demo.config
    components = {c["id"]: c for c in config["components"]}
    parents: dict[int, int] = {}

    def walk(node: dict) -> None:
        for child in node.get("children", []):
            parents[child["id"]] = node["id"]
            walk(child)

    walk(config["layout"])

    def accordion_of(component_id: int) -> dict:
        while components.get(component_id, {}).get("type") != "accordion":
            component_id = parents[component_id]
        return components[component_id]["props"]

    seen: dict[str, list[str]] = {}
    for c in config["components"]:
        elem = c["props"].get("elem_id") or ""
        if c["type"] != "slider" or not re.fullmatch(r"direction-\d+", elem):
            continue
        name = slots[int(elem.split("-")[1])]
        if name is None:
            assert c["props"]["visible"] is False
            continue
        crosstalk = summary[name].get("crosstalk") or {}
        clean, worst, success = crosstalk.get("clean"), crosstalk.get("worst"), crosstalk.get("success")
        status = "not measured" if clean is None else "clean" if clean else "weak: drags other attributes"
        if clean is False and worst is not None and worst <= 0.5 and success < 0.9:
            status = f"weak: works on {success:.0%} of faces"
        assert c["props"]["label"] == f"{name} · {status}" and c["props"]["visible"] is True
        group = accordion_of(c["id"])
        assert group["visible"] is True and group["label"].startswith(_expected_group(name) + ": ")
        seen.setdefault(group["label"], []).append(name)
    assert sorted(n for names in seen.values() for n in names) == files
    for label, names in seen.items():
        assert names == sorted(names) and f": {len(names)} direction" in label  # sorted by name, counted
    assert len(seen) == 5  # attributes, background, hair_color, hair_style, unsupervised
    opened = [label for label in seen if next(c for c in config["components"] if c["type"] == "accordion"
                                                 and c["props"]["label"] == label)["props"]["open"]]
    assert opened == [next(iter(seen))] and opened[0].startswith("Attributes")  # the rest start collapsed


def test_bundled_model_sliders_deep_in_the_list_edit_the_image(bundled_app):
    demo, url = bundled_app
    bundle = demo.registry.get(BUNDLED)
    G = bundle.generator
    face = example_images(64)[0][0]
    client = Client(url, verbose=False)
    out = client.predict(BUNDLED, handle_file(face), "encoder", 0, api_name="/invert")
    recon, code = decode_png(out[1]), read_code(out[-1])
    slots = demo.direction_slots()
    for name in ("yaw", "sefa_03", "hair_style-bun"):
        values = [0.0] * len(slots)
        values[slots.index(name)] = 3.0
        edited, _, code_file = client.predict(*values, api_name="/edit")
        expected = code + 3.0 * bundle.directions[name].offsets(G.num_layers, G.w_dim)
        assert torch.allclose(read_code(code_file), expected, atol=1e-5), name
        change = np.abs(decode_png(edited).astype(float) - recon).mean()
        assert change > 2.0, f"{name}: the edited image barely differs from the reconstruction ({change:.2f})"
    assert slots.index("sefa_03") >= 24  # beyond the old 24-slider cap


def test_cli_has_the_app_and_space_commands():
    from idinvert_plugins.app.commands import cmd_app, cmd_space_export
    from idinvert_plugins.cli import build_parser

    args = build_parser().parse_args(["app", "--model", "m", "--port", "7999", "--host", "0.0.0.0"])
    assert args.func is cmd_app and args.model == ["m"] and args.port == 7999 and args.host == "0.0.0.0"
    args = build_parser().parse_args(["space", "export", "out-dir"])
    assert args.func is cmd_space_export and args.model == "toyfaces-stylegan2-64" and args.encoder == "auto"


# -- launching and packaging --------------------------------------------------------------------------------
def test_registry_explains_a_missing_model(monkeypatch):
    import idinvert_plugins.app.models as models

    monkeypatch.setattr(models, "bundled_generators", lambda: [])
    with pytest.raises(FileNotFoundError, match="--model"):
        ModelRegistry([])
    registry = ModelRegistry([ModelSpec("no-such-model-anywhere")], include_bundled=False)
    with pytest.raises(ValueError, match="not served by this app"):
        registry.get("other")


def _output_until_serving(proc: subprocess.Popen) -> list[str]:
    """The app's output lines up to the one announcing its URL (or the first 200)."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "serving" in line or len(lines) > 200:
            break
    return lines


def test_gradio_app_py_launches_offline_and_prints_the_url(model_dir):
    import urllib.request

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("GRADIO_ANALYTICS_ENABLED", None)
    proc = subprocess.Popen([sys.executable, str(REPO / "gradio_app.py"), "--model", str(model_dir), "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=REPO)
    try:
        lines = _output_until_serving(proc)
        assert f"http://127.0.0.1:{port}" in lines[-1], "".join(lines)
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode()
        assert "gradio" in page.lower()
        config = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=30).read())
        assert config["analytics_enabled"] is False and config["enable_queue"] is True
        assert "gradio.live" not in "".join(lines)  # no share link
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_readme_main_command_serves_the_bundled_default_model_offline():
    """`idinvert app` with no options (the README's main job) serves the bundled toyfaces-stylegan2-64, with
    the Hub switched off, and its Invert runs on that model."""
    import urllib.request

    from idinvert_plugins.app.models import DEFAULT_MODEL

    assert DEFAULT_MODEL == "toyfaces-stylegan2-64"
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "idinvert_plugins.cli", "app", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    try:
        lines = _output_until_serving(proc)
        url = f"http://127.0.0.1:{port}"
        assert url in lines[-1] and DEFAULT_MODEL in "".join(lines), "".join(lines)
        assert "gradio" in urllib.request.urlopen(url + "/", timeout=30).read().decode().lower()
        page_config = json.loads(urllib.request.urlopen(url + "/config", timeout=30).read())
        assert DEFAULT_MODEL in json.dumps(page_config)  # the model menu's value
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_gradio_app_py_bad_model_is_a_clear_error(capsys):
    from idinvert_plugins.app.launcher import main

    assert main(["--model", "/no/such/model-folder", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "no such folder '/no/such/model-folder'" in err and "the Hub was not asked" in err


def test_space_export_writes_a_runnable_space(model_dir, tmp_path):
    from idinvert_plugins.app.hf_space import read_space_header
    from idinvert_plugins.cli import main as cli

    out = tmp_path / "space"
    assert cli(["space", "export", str(out), "--model", str(model_dir)]) == 0
    header = read_space_header(out / "README.md")
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py"
    import gradio

    assert header["sdk_version"] == gradio.__version__ and header["license"] == "mit"
    assert {"title", "emoji", "colorFrom", "colorTo", "short_description"} <= set(header)
    assert (out / "models" / "tiny" / "model.safetensors").is_file()
    assert sorted(p.stem for p in (out / "models" / "tiny" / "directions").glob("*.safetensors")) == ["age", "smile"]
    assert (out / "models" / "tiny-encoder" / "config.json").is_file()
    requirements = (out / "requirements.txt").read_text()
    assert f"torch=={torch.__version__.split('+')[0]}" in requirements and "safetensors" in requirements
    assert "gradio" not in requirements.split("\n", 1)[1]  # Spaces installs gradio from sdk_version
    assert (out / "hooks" / "toward_average.py").is_file()
    assert str(tmp_path) not in (out / "README.md").read_text() + (out / "app.py").read_text()
    # the exported app builds with the copied library and models, away from this checkout
    script = ("import app, idinvert_plugins; "
              "print(idinvert_plugins.__file__); "
              "print(sorted(d.api_name for d in app.demo.fns.values() if d.api_name))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDINVERT_")}
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run([sys.executable, "-c", script], cwd=out, capture_output=True, text=True, timeout=300,
                         env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    first, second = run.stdout.strip().splitlines()[-2:]
    assert first.startswith(str(out))
    for endpoint in ("invert", "edit", "interpolate", "diffuse", "style_mix", "toward_average"):
        assert f"'{endpoint}'" in second
    assert cli(["space", "export", str(out), "--model", str(model_dir)]) == 2  # refuses to overwrite
