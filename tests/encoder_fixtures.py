"""Rebuild the official pSp / e4e / ReStyle checkpoints of ``../shared/fixtures/encoders/`` from their manifests.

The generation rule is the fixtures README's: one fresh CPU generator per tensor, seeded by ``init.seed``;
``normal``: ``randn * std + mean``, ``uniform``: ``rand * (high - low) + low``, ``const``: ``full``. The
decoder entries carry no values (``init`` null); :func:`checkpoint` fills them with a stand-in when asked (a
small seeded normal: the parity tests never run the decoder, the conversion tests need some weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

ENCODERS = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "encoders"
FIXTURES = ("psp_ffhq1024", "psp_256", "e4e_ffhq1024", "restyle_psp_resnet34_512", "restyle_e4e_irse50_1024")
#: the README's suggested tolerance for encoder outputs and codes
ATOL = 1e-4


def encoders_dir() -> Path:
    if not ENCODERS.is_dir():
        pytest.skip(f"encoder fixtures not found at {ENCODERS} (they live in ../shared next to the repo)")
    return ENCODERS


def manifest(name: str) -> dict[str, Any]:
    return json.loads((encoders_dir() / f"{name}_manifest.json").read_text())


def io(name: str) -> dict[str, np.ndarray]:
    with np.load(encoders_dir() / f"{name}_io.npz") as z:
        return {k: z[k] for k in z.files}


_DTYPES = {"float32": torch.float32, "int64": torch.int64, "float64": torch.float64}


def make_tensor(shape: list[int], dtype: str, init: dict[str, Any]) -> torch.Tensor:
    """One tensor by the README's rule."""
    g = torch.Generator().manual_seed(init["seed"])
    dt = _DTYPES[dtype]
    if init["dist"] == "normal":
        t = torch.randn(shape, generator=g) * init["std"] + init["mean"]
    elif init["dist"] == "uniform":
        t = torch.rand(shape, generator=g) * (init["high"] - init["low"]) + init["low"]
    elif init["dist"] == "const":
        t = torch.full(shape, init["value"], dtype=dt)
    else:
        raise ValueError(init)
    return t.to(dt)


def checkpoint(name: str, *, decoder: bool = False, extras: bool = False) -> dict[str, Any]:
    """The checkpoint dict the official coach saves: ``state_dict`` (encoder entries rebuilt; decoder entries
    filled with a seeded stand-in when ``decoder``), ``opts``, ``latent_avg`` and, with ``extras``, dummies for
    the training leftovers the manifest lists (``global_step``, ``optimizer``, ...)."""
    m = manifest(name)
    sd: dict[str, torch.Tensor] = {}
    g = torch.Generator().manual_seed(1)
    for entry in m["state_dict"]:
        if entry["init"] is not None:
            sd[entry["name"]] = make_tensor(entry["shape"], entry["dtype"], entry["init"])
        elif decoder:
            sd[entry["name"]] = torch.randn(entry["shape"], generator=g) * 0.05
    if decoder:
        _decoder_standin(sd)
    la = m["checkpoint"]["latent_avg"]
    ckpt: dict[str, Any] = {}
    for key in m["checkpoint"]["top_level_keys_in_order"]:
        if key == "state_dict":
            ckpt[key] = sd
        elif key == "opts":
            ckpt[key] = dict(m["checkpoint"]["opts"])
        elif key == "latent_avg":
            ckpt[key] = make_tensor(la["shape"], la["dtype"], la["init"])
        elif extras:
            ckpt[key] = {"global_step": 1000, "best_val_loss": 0.5}.get(key, {"state": {}, "param_groups": []})
    return ckpt


def _decoder_standin(sd: dict[str, torch.Tensor]) -> None:
    """Make the stand-in decoder well behaved: modulation biases 1 (as rosinality initialises them), blur
    kernels the [1, 3, 3, 1] filter, noise strengths 0."""
    from idinvert_plugins.models.layers import setup_filter

    for k, v in sd.items():
        if not k.startswith("decoder."):
            continue
        if k.endswith("modulation.bias"):
            v.fill_(1.0)
        elif k.endswith(".kernel"):
            v.copy_(setup_filter([1, 3, 3, 1]) * (4.0 if ".upsample." in k else 1.0))
        elif k.endswith("noise.weight"):
            v.zero_()
        elif k.endswith("conv.weight"):
            v.normal_(0, 1)


def latent_avg(name: str) -> torch.Tensor:
    la = manifest(name)["checkpoint"]["latent_avg"]
    return make_tensor(la["shape"], la["dtype"], la["init"])


def check_rebuilt(name: str, ckpt: dict[str, Any]) -> None:
    """Every rebuilt tensor against the manifest's ``check`` (float64 sums and first values)."""
    sd = ckpt["state_dict"]
    for entry in manifest(name)["state_dict"]:
        if entry["init"] is None:
            continue
        t = sd[entry["name"]]
        check = entry["check"]
        assert list(t.shape) == entry["shape"], entry["name"]
        assert abs(t.double().sum().item() - check["sum"]) <= 1e-6 * max(1.0, check["abs_sum"]), entry["name"]
        assert t.flatten()[:3].tolist() == check["first"][: t.numel()], entry["name"]


def family_of(name: str) -> str:
    return name.split("_")[0]


def run_parity(name: str) -> dict[str, float]:
    """Convert the rebuilt official checkpoint with this library's converter (picked automatically), run the
    encoder and compare every stored output with the official one; returns the max |differences|."""
    from idinvert_plugins.convert import pick_converter
    from idinvert_plugins.plugins import get_plugins

    data = io(name)
    ckpt = checkpoint(name)
    check_rebuilt(name, ckpt)
    converter = pick_converter(ckpt)
    assert converter.name == family_of(name)
    (converted,) = converter.convert(ckpt)  # no decoder tensors in the fixture: the encoder alone
    cls = get_plugins().get("encoder", converted.architecture)
    with torch.device("meta"):
        model = cls(**converted.args).eval()
    model.load_state_dict(converted.state_dict, strict=True, assign=True)
    assert torch.equal(model.latent_avg, torch.from_numpy(data["latent_avg"]))

    feats: dict[str, torch.Tensor] = {}
    body = model.encoder.body
    taps = {"feat_c1_s0": 6, "feat_c2_s0": 20, "feat_c3_s0": 23} if len(body) == 24 else \
        {"feat_layer2_s0": 6, "feat_layer3_s0": 12, "feat_layer4_s0": 15}
    def keep(key: str):
        def hook(_module, _inputs, output):
            feats.setdefault(key, output[0].detach())
        return hook

    hooks = [body[i].register_forward_hook(keep(key)) for key, i in taps.items() if key in data]
    images = torch.from_numpy(data["images"])
    diffs: dict[str, float] = {}

    def compare(key: str, value: torch.Tensor) -> None:
        ref = torch.from_numpy(data[key])
        assert value.shape == ref.shape, key
        diffs[key] = float((value - ref).abs().max())

    with torch.no_grad():
        if "codes" in data:
            codes = model(images)
            compare("codes", codes)
            compare("encoder_out", codes - model.latent_avg)
        else:
            avg = torch.from_numpy(data["avg_image"])
            first = model.step(images, avg.expand(2, -1, -1, -1))
            for h in hooks:
                h.remove()
            second = model.step(images, torch.from_numpy(data["recon"]), first)
            compare("codes_iter0", first)
            compare("encoder_out_iter0", first - model.latent_avg)
            compare("codes_iter1", second)
            compare("encoder_out_iter1", second - first)
    for h in hooks:
        h.remove()
    for key, value in feats.items():
        compare(key, value)
    assert set(feats) == {k for k in taps if k in data}
    return diffs
