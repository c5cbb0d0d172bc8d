"""Reading VGG16 weight files into :class:`~idinvert_plugins.models.vgg.VGG16Features`.

Two layouts are accepted: torchvision's ``features.{idx}.weight`` (e.g. ``vgg16-397923af.pth``) and the official
IDInvert ``vgg16.pth``'s ``layer{idx}.weight``; ``.pth``/``.pt`` files are read with the restricted unpickler
(:mod:`.safe_pickle`, never running code from the file), ``.safetensors`` directly, and a model folder of kind
``feature`` through the registry. The network itself lives in :mod:`idinvert_plugins.models.vgg`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..models.vgg import CLASSIFIER_KEYS, CONV_INDICES, LAYER_INDEX, VGG16_LAYERS, VGG16Features

# -- state dicts -----------------------------------------------------------------------------------------------

_TORCHVISION_KEY = re.compile(r"features\.(\d+)\.(weight|bias)")
_IDINVERT_KEY = re.compile(r"layer(\d+)\.(weight|bias)")


def detect_vgg16_layout(state: Mapping[str, Any]) -> str:
    """``"torchvision"`` (``features.{idx}.*``) or ``"idinvert"`` (``layer{idx}.*``); a clear error otherwise."""
    keys = [k.removeprefix("module.") for k in state]
    if any(_TORCHVISION_KEY.fullmatch(k) for k in keys):
        return "torchvision"
    if any(_IDINVERT_KEY.fullmatch(k) for k in keys):
        return "idinvert"
    sample = ", ".join(sorted(keys)[:6]) or "(no keys)"
    raise ValueError(
        "not a VGG16 state dict: expected torchvision keys 'features.{idx}.weight' or the official IDInvert "
        f"keys 'layer{{idx}}.weight' (idx in {list(CONV_INDICES)}), got {sample}"
    )


def vgg16_state_dict_to_ours(state: Mapping[str, Any], output_layer: str = "relu4_3") -> dict[str, torch.Tensor]:
    """Turn a VGG16 state dict in torchvision or IDInvert layout into :class:`VGG16Features` keys.

    Strict: every conv of the trunk up to ``output_layer`` must be present with VGG16's shapes; keys that
    are not VGG16 parameters are an error. Parameters of later layers (``conv5_*``, torchvision's
    ``classifier.*``) are legitimate parts of a full VGG16 and are dropped.
    """
    if output_layer not in LAYER_INDEX:
        raise ValueError(f"unknown VGG16 layer {output_layer!r}; choose one of {list(LAYER_INDEX)}")
    layout = detect_vgg16_layout(state)
    pattern = _TORCHVISION_KEY if layout == "torchvision" else _IDINVERT_KEY
    last = LAYER_INDEX[output_layer]
    shapes = {idx: (c_out, c_in) for idx, _, kind, c_in, c_out in VGG16_LAYERS if kind == "conv"}

    ours: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    wrong: list[str] = []
    for raw_key, value in state.items():
        key = raw_key.removeprefix("module.")
        m = pattern.fullmatch(key)
        if m is None:
            if not (layout == "torchvision" and key in CLASSIFIER_KEYS):
                unknown.append(raw_key)
            continue
        idx, param = int(m[1]), m[2]
        if idx not in shapes:
            unknown.append(raw_key)
            continue
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"VGG16 entry {raw_key!r} is a {type(value).__name__}, not a tensor")
        c_out, c_in = shapes[idx]
        expected = (c_out, c_in, 3, 3) if param == "weight" else (c_out,)
        if tuple(value.shape) != expected:
            wrong.append(f"{raw_key}: {list(value.shape)} (VGG16: {list(expected)})")
        if idx <= last:
            ours[f"features.{idx}.{param}"] = value
    missing = [
        f"{'features.' if layout == 'torchvision' else 'layer'}{idx}.{p}"
        for idx in CONV_INDICES if idx <= last for p in ("weight", "bias")
        if f"features.{idx}.{p}" not in ours
    ]  # fmt: skip
    problems = []
    if missing:
        problems.append(f"missing {missing}")
    if unknown:
        more = f" ({len(unknown)} in all)" if len(unknown) > 8 else ""
        problems.append(f"unexpected keys {sorted(unknown)[:8]}{more}")
    if wrong:
        problems.append(f"wrong shapes {wrong[:8]}")
    if problems:
        raise ValueError(f"VGG16 weights ({layout} layout) do not fit a VGG16 trunk up to {output_layer}: "
                         + "; ".join(problems))
    return ours


def load_vgg16(path: str | Any, output_layer: str = "relu4_3") -> VGG16Features:
    """Build a :class:`VGG16Features` from a weights file, in eval mode.

    ``path``: a ``.safetensors`` file (torchvision or IDInvert keys), a ``.pth``/``.pt`` state dict (read
    with the restricted unpickler, never running code from the file, e.g. the official IDInvert
    ``vgg16.pth`` or torchvision's ``vgg16-397923af.pth``), or a model folder of kind ``feature`` written by
    :func:`idinvert_plugins.save_pretrained`.
    """
    from ..hub import CONFIG_NAME, ModelNotFoundError, load_model, load_safetensors

    path = Path(path).expanduser()
    if path.is_dir() and (path / CONFIG_NAME).is_file():
        model = load_model(path, kind="feature")
        if not isinstance(model, VGG16Features):
            raise ValueError(f"{path} holds a {type(model).__name__}, not VGG16 features")
        return model
    if not path.is_file():
        raise ModelNotFoundError(f"VGG16 weights file {path} does not exist. No VGG16 weights ship with "
                                 "idinvert-plugins; point to your own copy (.safetensors or .pth)")
    if path.suffix == ".safetensors":
        state: Any = load_safetensors(path)
    else:
        from .safe_pickle import safe_load

        state = safe_load(path)
        if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]
        if not isinstance(state, Mapping):
            raise ValueError(f"{path} holds a {type(state).__name__}, not a VGG16 state dict")
    try:
        ours = vgg16_state_dict_to_ours(state, output_layer)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    model = VGG16Features(output_layer=output_layer)
    model.load_state_dict({k: v.float() for k, v in ours.items()}, strict=True)
    return model.eval()


__all__ = ["detect_vgg16_layout", "load_vgg16", "vgg16_state_dict_to_ours"]
