"""NVlabs/stylegan2-ada-pytorch generators -> :class:`~idinvert_plugins.models.stylegan2.StyleGAN2Generator`.

Accepted inputs (already loaded safely):

* a plain ``G.state_dict()`` / ``G_ema.state_dict()`` (``torch.save`` of it, loaded with ``weights_only``);
* the dict :func:`idinvert_plugins.convert.safe_pickle.load_nvlabs_pkl` returns for an official ``.pkl``:
  ``{"G_ema": {"state_dict": ..., "init_kwargs": ...}, "G": ..., "D": ..., "training_set_kwargs": ...}``.
  Its ``init_kwargs`` supply what weights cannot tell (``conv_clamp``, the mapping's lr multiplier).

Only unconditional (``c_dim = 0``) generators with the default "skip" synthesis architecture are supported.

Key correspondence (our layout keeps NVlabs's names under two renamed parents)::

    mapping.fc{i}.*                      -> mapping_network.fc{i}.*
    mapping.w_avg                        -> w_avg
    synthesis.b4.const                   -> synthesis_network.const
    synthesis.b{r}.{conv0,conv1,torgb}.* -> synthesis_network.b{r}.{conv0,conv1,torgb}.*
    synthesis.b{r}[.conv*].resample_filter  (constant [1,3,3,1] filter; checked, then dropped)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from ..models.layers import setup_filter
from ..models.stylegan2 import RESAMPLE_FILTER, StyleGAN2Generator
from .base import CheckpointFormat, Converted

LICENSE_NOTE = (
    "NVIDIA Source Code License for StyleGAN2 with Adaptive Discriminator Augmentation (ADA): "
    "non-commercial use only (research and evaluation). Applies to NVIDIA's code and to models trained with it."
)

_LAYER_PARAMS = ("weight", "bias", "affine.weight", "affine.bias", "noise_strength", "noise_const")
_TORGB_PARAMS = ("weight", "bias", "affine.weight", "affine.bias")


def _is_nvlabs_state_dict(sd: Any) -> bool:
    return isinstance(sd, Mapping) and "mapping.fc0.weight" in sd and "synthesis.b4.const" in sd


def nvlabs_generator_to_ours(
    sd: Mapping[str, torch.Tensor],
    init_kwargs: Mapping[str, Any] | None = None,
    *,
    conv_clamp: float | None = None,
    mapping_lr_mul: float | None = None,
) -> Converted:
    """Convert an NVlabs ``Generator.state_dict()``; ``init_kwargs`` (from a pkl) fill in ``conv_clamp``
    and the mapping lr multiplier unless given explicitly."""
    sd = dict(sd.items())
    init_kwargs = dict(init_kwargs or {})
    mapping_kwargs = dict(init_kwargs.get("mapping_kwargs") or {})
    synthesis_kwargs = dict(init_kwargs.get("synthesis_kwargs") or {})

    embed = sorted(k for k in sd if k.startswith("mapping.embed."))
    if embed or int(init_kwargs.get("c_dim", 0) or 0) > 0:
        raise ValueError(
            "conditional NVlabs generators (c_dim > 0, keys mapping.embed.*) are not supported yet; "
            "only unconditional models convert"
        )
    architecture = synthesis_kwargs.get("architecture", "skip")
    if any(re.fullmatch(r"synthesis\.b\d+\.skip\.weight", k) for k in sd):
        architecture = "resnet"
    if architecture != "skip":
        raise ValueError(
            f"only the 'skip' synthesis architecture (config F) is supported, this generator uses {architecture!r}"
        )
    if not _is_nvlabs_state_dict(sd):
        raise ValueError("not an NVlabs generator state dict: 'mapping.fc0.weight' or 'synthesis.b4.const' missing")

    n_mapping = 0
    while f"mapping.fc{n_mapping}.weight" in sd:
        n_mapping += 1
    resolutions = [4]
    while f"synthesis.b{resolutions[-1] * 2}.conv1.weight" in sd:
        resolutions.append(resolutions[-1] * 2)
    resolution = resolutions[-1]
    for r in resolutions[:-1]:
        if f"synthesis.b{r}.torgb.weight" not in sd:
            raise ValueError(
                f"synthesis.b{r}.torgb.weight is missing: only the 'skip' synthesis architecture is supported "
                "(this looks like the 'orig' architecture, or the state dict is incomplete)"
            )

    z_dim = sd["mapping.fc0.weight"].shape[1]
    w_dim = sd[f"mapping.fc{n_mapping - 1}.weight"].shape[0]
    hidden = sd["mapping.fc0.weight"].shape[0] if n_mapping > 1 else None
    channels = {4: sd["synthesis.b4.const"].shape[0]}
    for r in resolutions[1:]:
        channels[r] = sd[f"synthesis.b{r}.conv1.weight"].shape[0]
    img_channels = sd[f"synthesis.b{resolution}.torgb.weight"].shape[0]
    for key, value, expected in (
        ("img_resolution", init_kwargs.get("img_resolution"), resolution),
        ("z_dim", init_kwargs.get("z_dim"), z_dim),
        ("w_dim", init_kwargs.get("w_dim"), w_dim),
        ("img_channels", init_kwargs.get("img_channels"), img_channels),
    ):
        if value is not None and int(value) != expected:
            raise ValueError(f"init_kwargs {key}={value} contradicts the weights ({expected})")

    if conv_clamp is None:
        conv_clamp = synthesis_kwargs.get("conv_clamp")
    if mapping_lr_mul is None:
        mapping_lr_mul = float(mapping_kwargs.get("lr_multiplier", 0.01))

    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(src: str, dst: str) -> None:
        if src not in sd:
            raise ValueError(f"NVlabs generator state dict is missing key {src!r}")
        used.add(src)
        out[dst] = sd[src]

    for i in range(n_mapping):
        take(f"mapping.fc{i}.weight", f"mapping_network.fc{i}.weight")
        take(f"mapping.fc{i}.bias", f"mapping_network.fc{i}.bias")
    take("mapping.w_avg", "w_avg")
    take("synthesis.b4.const", "synthesis_network.const")
    for r in resolutions:
        _check_filter(sd, f"synthesis.b{r}.resample_filter", used)
        for layer in ("conv0", "conv1") if r > 4 else ("conv1",):
            for p in _LAYER_PARAMS:
                take(f"synthesis.b{r}.{layer}.{p}", f"synthesis_network.b{r}.{layer}.{p}")
            _check_filter(sd, f"synthesis.b{r}.{layer}.resample_filter", used)
        for p in _TORGB_PARAMS:
            take(f"synthesis.b{r}.torgb.{p}", f"synthesis_network.b{r}.torgb.{p}")
    unexpected = sorted(set(sd) - used)
    if unexpected:
        raise ValueError(f"unexpected keys in NVlabs generator state dict: {unexpected}")

    args = dict(
        resolution=resolution,
        z_dim=z_dim,
        w_dim=w_dim,
        img_channels=img_channels,
        mapping_layers=n_mapping,
        mapping_hidden=None if hidden in (None, w_dim) else hidden,
        mapping_lr_mul=mapping_lr_mul,
        channels=channels,
        conv_clamp=conv_clamp,
    )
    net = StyleGAN2Generator(**args)
    net.load_state_dict(out, strict=True)  # validates every shape
    notes: dict[str, Any] = {"license": LICENSE_NOTE, "w_avg": "from mapping.w_avg"}
    if "synthesis_kwargs" not in init_kwargs:
        notes["conv_clamp"] = (
            f"conv_clamp={conv_clamp} (a bare state dict does not record it; official configs use 256, which only "
            "matters when activations exceed +-256)"
        )
    return Converted(
        kind="generator",
        architecture=StyleGAN2Generator.architecture,
        args=net.config,
        state_dict={k: v.detach().clone().float().contiguous() for k, v in net.state_dict().items()},
        source_format="nvlabs",
        notes=notes,
    )


def _check_filter(sd: Mapping[str, torch.Tensor], key: str, used: set[str]) -> None:
    if key not in sd:
        return
    used.add(key)
    f = sd[key].float()
    expected = setup_filter(RESAMPLE_FILTER)
    if f.shape != expected.shape or not torch.allclose(f / f.sum(), expected, atol=1e-6):
        raise ValueError(f"{key} is not the [1, 3, 3, 1] FIR filter this generator implements: {f.tolist()}")


def _pkl_generator(ckpt: Any) -> Mapping[str, Any] | None:
    """The ``G_ema`` entry of a :func:`load_nvlabs_pkl` result, if ``ckpt`` is one."""
    if isinstance(ckpt, Mapping) and isinstance(ckpt.get("G_ema"), Mapping):
        g = ckpt["G_ema"]
        if isinstance(g.get("state_dict"), Mapping):
            return g
    return None


class NVlabsFormat(CheckpointFormat):
    """NVlabs stylegan2-ada-pytorch: a G/G_ema state dict, or a ``.pkl`` read by ``load_nvlabs_pkl``."""

    name = "nvlabs"
    description = "NVlabs/stylegan2-ada-pytorch generators (.pkl via the restricted unpickler, or G_ema state dicts)"

    def sniff(self, ckpt: Any) -> bool:
        g = _pkl_generator(ckpt)
        return _is_nvlabs_state_dict(g["state_dict"] if g is not None else ckpt)

    def convert(
        self, ckpt: Any, *, conv_clamp: float | None = None, mapping_lr_mul: float | None = None
    ) -> list[Converted]:
        g = _pkl_generator(ckpt)
        if g is not None:
            converted = nvlabs_generator_to_ours(
                g["state_dict"], g.get("init_kwargs"), conv_clamp=conv_clamp, mapping_lr_mul=mapping_lr_mul
            )
            converted.notes["source"] = f"G_ema of an NVlabs pkl ({g.get('class_name', '?')})"
            if isinstance(ckpt.get("training_set_kwargs"), Mapping):
                converted.notes["training_set_kwargs"] = {
                    k: v for k, v in ckpt["training_set_kwargs"].items() if isinstance(v, str | int | float | bool)
                }
            return [converted]
        return [nvlabs_generator_to_ours(ckpt, conv_clamp=conv_clamp, mapping_lr_mul=mapping_lr_mul)]
