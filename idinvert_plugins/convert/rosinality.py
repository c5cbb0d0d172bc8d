"""rosinality/stylegan2-pytorch generator checkpoints -> :class:`~idinvert_plugins.models.stylegan2.StyleGAN2Generator`.

Accepted inputs (already loaded safely, see :func:`idinvert_plugins.convert.safe_pickle.safe_load`):

* ``convert_weight.py`` output: ``{"g_ema": state_dict, "latent_avg": [512]}`` (optionally "g", "d");
* ``train.py`` checkpoints: ``{"g", "d", "g_ema", "g_optim", "d_optim", "args", "ada_aug_p"}`` (no latent_avg);
* a bare ``Generator.state_dict()``.

Everything the network needs is read from tensor names and shapes (rosinality hard-codes its channel
table, and checkpoints in the wild override it, so the table is never assumed). The mapping's lr
multiplier cannot be read from weights: rosinality always uses ``lr_mlp=0.01``; pass ``mapping_lr_mul``
to :meth:`RosinalityFormat.convert` otherwise.

Key correspondence (k = block index from 0, r = 8 * 2**k)::

    style.{i+1}.weight / .bias           -> mapping_network.fc{i}.weight / .bias
    input.input [1, C, 4, 4]             -> synthesis_network.const [C, 4, 4]
    conv1.*, noises.noise_0              -> synthesis_network.b4.conv1.*
    to_rgb1.*                            -> synthesis_network.b4.torgb.*
    convs.{2k}.*, noises.noise_{2k+1}    -> synthesis_network.b{r}.conv0.*      (x2 up-sampling conv)
    convs.{2k+1}.*, noises.noise_{2k+2}  -> synthesis_network.b{r}.conv1.*
    to_rgbs.{k}.*                        -> synthesis_network.b{r}.torgb.*
    (StyledConv) conv.weight [1,O,I,3,3] -> weight [O,I,3,3]; conv.modulation.* -> affine.*;
                 noise.weight [1] -> noise_strength []; activate.bias -> bias; noise_i [1,1,r,r] -> noise_const
    (ToRGB)      conv.weight [1,C,I,1,1] -> weight [C,I,1,1]; bias [1,C,1,1] -> bias [C]
    latent_avg                           -> w_avg
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..models.layers import setup_filter
from ..models.stylegan2 import RESAMPLE_FILTER, StyleGAN2Generator
from .base import CheckpointFormat, Converted

LICENSE_NOTE = (
    "rosinality/stylegan2-pytorch code is MIT-licensed; weights converted from NVIDIA's official StyleGAN2 "
    "models remain under the NVIDIA Source Code License-NC (non-commercial use only). Check the weights' origin."
)
W_AVG_SAMPLES = 10_000


def _is_generator_state_dict(sd: Any) -> bool:
    return isinstance(sd, Mapping) and "input.input" in sd and "style.1.weight" in sd


def rosinality_generator_to_ours(
    sd: Mapping[str, torch.Tensor],
    latent_avg: torch.Tensor | None = None,
    mapping_lr_mul: float = 0.01,
) -> Converted:
    """Convert a rosinality ``Generator.state_dict()`` (plus its ``latent_avg`` if known)."""
    sd = {k: v for k, v in sd.items()}
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in sd:
        n_mlp += 1
    if n_mlp == 0 or "input.input" not in sd:
        raise ValueError("not a rosinality generator state dict: 'style.1.weight' or 'input.input' is missing")
    n_up = 0
    while f"to_rgbs.{n_up}.conv.weight" in sd:
        n_up += 1
    resolution = 4 * 2**n_up

    # Shapes -> hyper-parameters.
    z_dim = sd["style.1.weight"].shape[1]
    w_dim = sd[f"style.{n_mlp}.weight"].shape[0]
    hidden = sd["style.1.weight"].shape[0] if n_mlp > 1 else None
    channels = {4: sd["input.input"].shape[1]}
    for k in range(n_up):
        channels[8 * 2**k] = _shape(sd, f"convs.{2 * k}.conv.weight", 5)[1]
    img_channels = _shape(sd, "to_rgb1.conv.weight", 5)[1]

    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in sd:
            raise KeyError(key)
        used.add(key)
        return sd[key]

    def styled_conv(src: str, dst: str, noise_key: str) -> None:
        out[f"{dst}.weight"] = take(f"{src}.conv.weight").squeeze(0)
        out[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        out[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        out[f"{dst}.noise_strength"] = take(f"{src}.noise.weight").reshape([])
        out[f"{dst}.bias"] = take(f"{src}.activate.bias")
        out[f"{dst}.noise_const"] = take(noise_key)[0, 0]
        _check_filter(sd, f"{src}.conv.blur.kernel", used)

    def to_rgb(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = take(f"{src}.conv.weight").squeeze(0)
        out[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        out[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        out[f"{dst}.bias"] = take(f"{src}.bias").reshape(-1)
        _check_filter(sd, f"{src}.upsample.kernel", used)

    try:
        for i in range(n_mlp):
            out[f"mapping_network.fc{i}.weight"] = take(f"style.{i + 1}.weight")
            out[f"mapping_network.fc{i}.bias"] = take(f"style.{i + 1}.bias")
        out["synthesis_network.const"] = take("input.input")[0]
        styled_conv("conv1", "synthesis_network.b4.conv1", "noises.noise_0")
        to_rgb("to_rgb1", "synthesis_network.b4.torgb")
        for k in range(n_up):
            r = 8 * 2**k
            styled_conv(f"convs.{2 * k}", f"synthesis_network.b{r}.conv0", f"noises.noise_{2 * k + 1}")
            styled_conv(f"convs.{2 * k + 1}", f"synthesis_network.b{r}.conv1", f"noises.noise_{2 * k + 2}")
            to_rgb(f"to_rgbs.{k}", f"synthesis_network.b{r}.torgb")
    except KeyError as exc:
        missing = exc.args[0]
        raise ValueError(f"rosinality generator state dict is missing key {missing!r}") from None
    unexpected = sorted(set(sd) - used)
    if unexpected:
        raise ValueError(f"unexpected keys in rosinality generator state dict: {unexpected}")

    args = dict(
        resolution=resolution,
        z_dim=z_dim,
        w_dim=w_dim,
        img_channels=img_channels,
        mapping_layers=n_mlp,
        mapping_hidden=None if hidden in (None, w_dim) else hidden,
        mapping_lr_mul=mapping_lr_mul,
        channels=channels,
        conv_clamp=None,
    )
    net = StyleGAN2Generator(**args)
    notes: dict[str, Any] = {"license": LICENSE_NOTE, "noise": "stored noises.noise_* buffers -> noise_const"}
    if latent_avg is not None:
        out["w_avg"] = latent_avg.reshape(-1).float()
        notes["w_avg"] = "from the checkpoint's latent_avg"
    else:
        net.load_state_dict({**out, "w_avg": torch.zeros(w_dim)}, strict=True)
        out["w_avg"] = net.eval().compute_w_avg(n=W_AVG_SAMPLES)
        notes["w_avg"] = (
            f"the checkpoint has no latent_avg: w_avg computed as the mean mapping output of {W_AVG_SAMPLES} "
            "random z (seed 0)"
        )
    net.load_state_dict(out, strict=True)  # validates every shape
    return Converted(
        kind="generator",
        architecture=StyleGAN2Generator.architecture,
        args=net.config,
        state_dict={k: v.detach().clone().float().contiguous() for k, v in net.state_dict().items()},
        source_format="rosinality",
        notes=notes,
    )


def _shape(sd: Mapping[str, torch.Tensor], key: str, ndim: int) -> torch.Size:
    if key not in sd:
        raise ValueError(f"rosinality generator state dict is missing key {key!r}")
    if sd[key].ndim != ndim:
        raise ValueError(f"{key} should have {ndim} dimensions, got shape {list(sd[key].shape)}")
    return sd[key].shape


def _check_filter(sd: Mapping[str, torch.Tensor], key: str, used: set[str]) -> None:
    """Blur/upsample kernels are constants; accept them only if they are the [1,3,3,1] filter (any gain)."""
    if key not in sd:
        return
    used.add(key)
    k = sd[key].float()
    expected = setup_filter(RESAMPLE_FILTER)
    if k.shape != expected.shape or not torch.allclose(k / k.sum(), expected, atol=1e-6):
        raise ValueError(f"{key} is not the [1, 3, 3, 1] FIR filter this generator implements: {k.tolist()}")


class RosinalityFormat(CheckpointFormat):
    """rosinality/stylegan2-pytorch: ``convert_weight.py`` / ``train.py`` checkpoints or a bare G state dict."""

    name = "rosinality"
    description = "rosinality/stylegan2-pytorch StyleGAN2 checkpoints (.pt: g_ema [+ latent_avg], train.py files)"

    def sniff(self, ckpt: Any) -> bool:
        if isinstance(ckpt, Mapping) and "g_ema" in ckpt:
            return _is_generator_state_dict(ckpt["g_ema"])
        return _is_generator_state_dict(ckpt)

    def convert(self, ckpt: Any, *, mapping_lr_mul: float = 0.01) -> list[Converted]:
        if isinstance(ckpt, Mapping) and "g_ema" in ckpt:
            sd, latent_avg = ckpt["g_ema"], ckpt.get("latent_avg")
            others = sorted(k for k in ckpt if k not in ("g_ema", "latent_avg"))
        else:
            sd, latent_avg, others = ckpt, None, []
        if not _is_generator_state_dict(sd):
            raise ValueError("not a rosinality checkpoint: expected 'g_ema' with keys 'style.1.weight', 'input.input'")
        if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
            latent_avg = torch.as_tensor(latent_avg)
        converted = rosinality_generator_to_ours(sd, latent_avg, mapping_lr_mul=mapping_lr_mul)
        if others:
            converted.notes["ignored_entries"] = others
        if isinstance(ckpt, Mapping) and isinstance(ckpt.get("args"), Mapping):
            converted.notes["train_args"] = {
                k: v for k, v in ckpt["args"].items() if isinstance(v, str | int | float | bool) or v is None
            }
        return [converted]

