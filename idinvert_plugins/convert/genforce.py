"""Converter for genforce / official IDInvert (PyTorch) StyleGAN checkpoints.

The released ``styleganinv_*_generator.pth`` and ``styleganinv_*_encoder.pth`` files are plain state dicts
of genforce's ``StyleGANGeneratorNet`` and ``StyleGANEncoderNet``. Every hyperparameter that shapes the
networks is read from the tensor names and shapes (resolution, channel table, mapping width and depth,
``repeat_w``, which up-sampling layers are fused, z/w sizes, encoder widths, BatchNorm on/off); the few that
leave no trace in the weights (``final_tanh``, the encoder's ``use_wscale``) take the values of the
released models and can be overridden.

Dropped on conversion: the toRGB layers of the lower resolutions and ``synthesis.lod`` (dead with the level
of detail at 0), the blur kernels (a fixed filter, checked), and ``truncation.truncation`` (turned into the
recommended ``truncation_psi`` / ``truncation_layers``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .base import CheckpointFormat, Converted

SOURCE_FORMAT = "genforce"

#: Generator arguments that the weights cannot tell and callers may set.
GENERATOR_OVERRIDES = ("final_tanh", "truncation_psi", "truncation_layers")

_BLUR_KERNEL = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
_BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _strip_module_prefix(sd: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the ``module.`` prefix that (Distributed)DataParallel adds to every key."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return dict(sd)


def is_genforce_generator(sd: Any) -> bool:
    """True for a genforce ``StyleGANGeneratorNet`` state dict."""
    return isinstance(sd, Mapping) and _has_keys(sd, "mapping.dense0.fc.weight", "synthesis.layer0.const")


def is_genforce_encoder(sd: Any) -> bool:
    """True for a genforce ``StyleGANEncoderNet`` (IDInvert domain-guided encoder) state dict."""
    if not isinstance(sd, Mapping) or not _has_keys(sd, "block0.conv.weight"):
        return False
    keys = _strip_module_prefix(sd)
    return any(re.fullmatch(r"block\d+\.fc\.weight", k) for k in keys)


def _has_keys(sd: Mapping[str, Any], *names: str) -> bool:
    keys = set(_strip_module_prefix(sd))
    return all(n in keys for n in names)


def _check_keys(sd: Mapping[str, Any], expected: set[str], what: str) -> None:
    """Raise a ValueError naming the missing and unexpected keys, if any."""
    missing = sorted(expected - set(sd))
    unexpected = sorted(set(sd) - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        raise ValueError(f"not a valid genforce {what} state dict ({'; '.join(parts)})")


def _tensor(sd: Mapping[str, Any], key: str) -> torch.Tensor:
    if key not in sd:
        raise ValueError(f"genforce checkpoint is missing key {key!r}")
    value = sd[key]
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"genforce checkpoint entry {key!r} is a {type(value).__name__}, not a tensor")
    return value


def _check_shapes(
    state_dict: dict[str, torch.Tensor], source_keys: dict[str, str], module: torch.nn.Module
) -> None:
    """Compare converted tensors with the shapes the rebuilt network expects (naming the source key)."""
    expected = module.state_dict()
    for key, tensor in state_dict.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"genforce key {source_keys[key]!r} has shape {list(tensor.shape)}, but the inferred "
                f"architecture expects {list(expected[key].shape)}"
            )


# -- generator ---------------------------------------------------------------------------------------------


def _infer_channel_table(channels: dict[int, int], mapping_hidden: int) -> tuple[int, int]:
    """A ``(channel_base, channel_max)`` pair with ``min(channel_base // r, channel_max) == channels[r]``.

    genforce builds its table from ``fmaps_base`` / ``fmaps_max`` only, so such a pair always exists.
    When the table never reaches its cap, ``fmaps_max`` is read from the mapping width, which genforce ties
    to it; the base is the smallest that fits (equivalent to the original one).
    """
    table = {r: channels[r] for r in sorted(channels)}
    candidates = [mapping_hidden] if mapping_hidden > max(table.values()) else []
    for channel_max in [*candidates, max(table.values())]:
        channel_base = max(channel_max * r if c == channel_max else c * r for r, c in table.items())
        if all(min(channel_base // r, channel_max) == c for r, c in table.items()):
            return channel_base, channel_max
    raise ValueError(f"channel table {table} is not of the form min(base // res, max)")


def _infer_truncation(coefs: torch.Tensor | None, num_layers: int) -> tuple[float, int]:
    """Read psi and the number of truncated layers from genforce's ``truncation.truncation`` buffer
    (psi on layers < truncation_layers, 1 elsewhere). Where the buffer allows it (or is unreadable) the
    official values 0.7 / 8 are returned."""
    default_psi, default_layers = 0.7, 8
    if not isinstance(coefs, torch.Tensor) or coefs.numel() != num_layers:
        return default_psi, default_layers
    values = [round(float(v), 6) for v in coefs.flatten()]
    if all(v == 1.0 for v in values):
        return 1.0, 0
    psi = values[0]
    n = next((i for i, v in enumerate(values) if v != psi), len(values))
    if any(v != 1.0 for v in values[n:]):
        return default_psi, default_layers
    if n == num_layers and default_layers >= num_layers:
        n = default_layers  # every layer truncated: any count >= num_layers gives this buffer
    return psi, n


def _infer_fused_scale(fused: dict[int, bool]) -> bool | str:
    from ..models.stylegan import AUTO_FUSED_MIN_RES

    if all(f == (r >= AUTO_FUSED_MIN_RES) for r, f in fused.items()):
        return "auto"
    if all(fused.values()):
        return True
    if not any(fused.values()):
        return False
    table = {r: fused[r] for r in sorted(fused)}
    raise ValueError(f"fused up-sampling pattern {table} matches neither fused_scale='auto', True nor False")


def _generator_key_map(
    args: dict[str, Any], num_layers: int, fused: dict[int, bool]
) -> dict[str, tuple[str, Callable]]:
    """our key -> (genforce key, transform of the genforce tensor into ours)."""
    same: Callable[[torch.Tensor], torch.Tensor] = lambda t: t  # noqa: E731
    m: dict[str, tuple[str, Callable]] = {}
    for i in range(args["mapping_layers"]):
        m[f"mapping_network.layers.{i}.weight"] = (f"mapping.dense{i}.fc.weight", same)
        m[f"mapping_network.layers.{i}.bias"] = (f"mapping.dense{i}.wscale.bias", same)
    m["w_avg"] = ("truncation.w_avg", same)
    m["synthesis_network.const"] = ("synthesis.layer0.const", same)
    for i in range(num_layers):
        ours, theirs = f"synthesis_network.layers.{i}", f"synthesis.layer{i}"
        res = 4 * 2 ** (i // 2)
        if i % 2 == 1:
            m[f"{ours}.conv.weight"] = (f"{theirs}.conv.weight", same)
        elif i > 0 and fused[res]:
            # TF layout [k, k, in, out] -> [out, in, k, k]
            m[f"{ours}.conv.weight"] = (f"{theirs}.weight", lambda t: t.permute(3, 2, 0, 1))
        elif i > 0:
            m[f"{ours}.conv.weight"] = (f"{theirs}.conv.weight", same)
        m[f"{ours}.noise"] = (f"{theirs}.epilogue.apply_noise.noise", same)
        m[f"{ours}.noise_weight"] = (f"{theirs}.epilogue.apply_noise.weight", same)
        m[f"{ours}.bias"] = (f"{theirs}.epilogue.bias", same)
        m[f"{ours}.style.weight"] = (f"{theirs}.epilogue.style_mod.dense.fc.weight", same)
        m[f"{ours}.style.bias"] = (f"{theirs}.epilogue.style_mod.dense.wscale.bias", same)
    last = num_layers // 2 - 1
    m["synthesis_network.to_rgb.weight"] = (f"synthesis.output{last}.conv.weight", same)
    m["synthesis_network.to_rgb.bias"] = (f"synthesis.output{last}.bias", same)
    return m


def genforce_generator_to_ours(sd: Mapping[str, Any], **overrides: Any) -> Converted:
    """Convert a genforce ``StyleGANGeneratorNet`` state dict to a :class:`StyleGANGenerator` one.

    ``overrides`` may set ``final_tanh`` (default True, as in every released IDInvert model),
    ``truncation_psi`` and ``truncation_layers`` (default: read from the ``truncation.truncation`` buffer).
    """
    from ..models.stylegan import StyleGANGenerator

    unknown = sorted(set(overrides) - set(GENERATOR_OVERRIDES))
    if unknown:
        raise ValueError(f"unknown override(s) {unknown}; allowed: {list(GENERATOR_OVERRIDES)}")
    sd = _strip_module_prefix(sd)

    num_mapping = 0
    while f"mapping.dense{num_mapping}.fc.weight" in sd:
        num_mapping += 1
    if num_mapping == 0:
        raise ValueError("genforce checkpoint is missing key 'mapping.dense0.fc.weight'")
    num_layers = 0
    while f"synthesis.layer{num_layers}.epilogue.bias" in sd:
        num_layers += 1
    if num_layers < 2 or num_layers % 2:
        raise ValueError(
            f"genforce generator has {num_layers} synthesis layers (synthesis.layer*.epilogue.bias); "
            "expected an even number >= 2"
        )
    resolution = 2 ** (num_layers // 2 + 1)

    first = _tensor(sd, "mapping.dense0.fc.weight")
    final = _tensor(sd, f"mapping.dense{num_mapping - 1}.fc.weight")
    z_dim = first.shape[1]
    w_dim = _tensor(sd, "synthesis.layer0.epilogue.style_mod.dense.fc.weight").shape[1]
    mapping_hidden = first.shape[0] if num_mapping > 1 else w_dim  # unused with a single layer
    if final.shape[0] == w_dim:
        repeat_w = True
    elif final.shape[0] == w_dim * num_layers:
        repeat_w = False
    else:
        raise ValueError(
            f"last mapping layer mapping.dense{num_mapping - 1}.fc.weight emits {final.shape[0]} values; "
            f"expected w_dim ({w_dim}) or num_layers * w_dim ({num_layers * w_dim})"
        )

    channels = {
        4 * 2**b: _tensor(sd, f"synthesis.layer{2 * b}.epilogue.bias").shape[0]
        for b in range(num_layers // 2)
    }
    channel_base, channel_max = _infer_channel_table(channels, mapping_hidden)
    fused = {4 * 2**b: f"synthesis.layer{2 * b}.weight" in sd for b in range(1, num_layers // 2)}
    fused_scale = _infer_fused_scale(fused) if fused else "auto"
    img_channels = _tensor(sd, f"synthesis.output{num_layers // 2 - 1}.conv.weight").shape[0]
    psi, trunc_layers = _infer_truncation(sd.get("truncation.truncation"), num_layers)

    lod = sd.get("synthesis.lod")
    if isinstance(lod, torch.Tensor) and float(lod) != 0.0:
        raise ValueError(
            f"synthesis.lod is {float(lod)}: this is a progressive-growing snapshot below full resolution, "
            "which is not supported (only lod 0, as in all released models)"
        )

    args: dict[str, Any] = dict(
        resolution=resolution, z_dim=z_dim, w_dim=w_dim, img_channels=img_channels,
        mapping_layers=num_mapping, mapping_hidden=mapping_hidden, mapping_lr_mul=0.01,
        channel_base=channel_base, channel_max=channel_max, repeat_w=repeat_w,
        final_tanh=True, fused_scale=fused_scale, truncation_psi=psi, truncation_layers=trunc_layers,
    )  # fmt: skip
    args.update(overrides)

    key_map = _generator_key_map(args, num_layers, fused)
    blur_keys = {f"synthesis.layer{2 * b}.blur.kernel" for b in range(1, num_layers // 2)}
    extra = {"truncation.truncation", "synthesis.lod"} | blur_keys
    extra |= {f"synthesis.output{b}.{p}" for b in range(num_layers // 2) for p in ("conv.weight", "bias")}
    _check_keys(sd, {theirs for theirs, _ in key_map.values()} | extra, "StyleGAN generator")
    for key in sorted(blur_keys):
        kernel = _tensor(sd, key)
        if (
            kernel.ndim != 4
            or kernel.shape[1:] != (1, 3, 3)
            or not torch.allclose(kernel.float().cpu(), _BLUR_KERNEL.expand(kernel.shape[0], 1, 3, 3))
        ):
            raise ValueError(f"{key} is not the [1, 2, 1] x [1, 2, 1] / 16 blur filter this model implements")

    state_dict = {ours: fn(_tensor(sd, theirs)).contiguous() for ours, (theirs, fn) in key_map.items()}
    with torch.device("meta"):
        reference = StyleGANGenerator(**args)
    _check_shapes(state_dict, {ours: theirs for ours, (theirs, _) in key_map.items()}, reference)
    notes = {
        "dropped": "toRGB of lower resolutions (dead at lod 0), blur kernels, truncation.truncation, lod"
    }
    return Converted("generator", StyleGANGenerator.architecture, args, state_dict, SOURCE_FORMAT, notes)


# -- encoder -----------------------------------------------------------------------------------------------


def _bn_map(ours: str, theirs: str) -> dict[str, str]:
    return {f"{ours}.{s}": f"{theirs}.bn.{s}" for s in _BN_SUFFIXES}


def genforce_encoder_to_ours(sd: Mapping[str, Any], use_wscale: bool = False) -> Converted:
    """Convert a genforce ``StyleGANEncoderNet`` state dict to an :class:`IDInvertEncoder` one.

    ``use_wscale`` leaves no trace in the weights; the released encoders use False.
    """
    from ..models.idinvert_encoder import IDInvertEncoder

    sd = _strip_module_prefix(sd)
    num_blocks = 0
    while any(k.startswith(f"block{num_blocks}.") for k in sd):
        num_blocks += 1
    if num_blocks < 3:
        raise ValueError(f"genforce encoder has {num_blocks} blocks (block*.); expected at least 3")
    head = f"block{num_blocks - 1}"
    first = _tensor(sd, "block0.conv.weight")
    fc = _tensor(sd, f"{head}.fc.weight")
    resolution = 2**num_blocks
    num_layers = 2 * (num_blocks - 1)
    if fc.shape[0] % num_layers:
        raise ValueError(f"{head}.fc.weight has {fc.shape[0]} outputs, not a multiple of {num_layers} layers")
    w_dim = fc.shape[0] // num_layers
    use_bn = "block0.bn.bn.weight" in sd

    widths = [first.shape[0]] + [
        _tensor(sd, f"block{i}.conv2.weight").shape[0] for i in range(1, num_blocks - 1)
    ]
    channel_base = widths[0]
    capped = [w for i, w in enumerate(widths) if i > 0 and w < widths[i - 1] * 2]
    channel_max = capped[0] if capped else max(1024, widths[-1])

    args: dict[str, Any] = dict(
        resolution=resolution, num_layers=num_layers, w_dim=w_dim, img_channels=first.shape[1],
        channel_base=channel_base, channel_max=channel_max, use_bn=use_bn, use_wscale=use_wscale,
    )  # fmt: skip
    with torch.device("meta"):
        reference = IDInvertEncoder(**args)

    key_map: dict[str, str] = {"blocks.0.weight": "block0.conv.weight"}
    if use_bn:
        key_map |= _bn_map("blocks.0.bn", "block0.bn")
    for i, block in enumerate(reference.blocks[1:], start=1):
        if block.shortcut is not None:
            key_map[f"blocks.{i}.shortcut.weight"] = f"block{i}.conv.weight"
            if use_bn:
                key_map |= _bn_map(f"blocks.{i}.shortcut.bn", f"block{i}.bn")
        for j in (1, 2):
            key_map[f"blocks.{i}.conv{j}.weight"] = f"block{i}.conv{j}.weight"
            key_map[f"blocks.{i}.conv{j}.bias"] = f"block{i}.wscale{j}.bias"
            if use_bn:
                key_map |= _bn_map(f"blocks.{i}.conv{j}.bn", f"block{i}.bn{j}")
    key_map["head.weight"] = f"{head}.fc.weight"
    if use_bn:
        key_map |= _bn_map("head.bn", f"{head}.bn")

    _check_keys(sd, set(key_map.values()), "IDInvert encoder")
    state_dict = {ours: _tensor(sd, theirs).contiguous() for ours, theirs in key_map.items()}
    _check_shapes(state_dict, key_map, reference)
    return Converted("encoder", IDInvertEncoder.architecture, args, state_dict, SOURCE_FORMAT)


# -- the registered format ---------------------------------------------------------------------------------


class GenforceFormat(CheckpointFormat):
    """genforce / official IDInvert PyTorch ``.pth`` state dicts (StyleGAN generator or IDInvert encoder)."""

    name = "genforce"
    description = (
        "genforce/idinvert_pytorch StyleGAN v1 generator (styleganinv_*_generator.pth) or domain-guided "
        "encoder (styleganinv_*_encoder.pth) state dict"
    )

    def sniff(self, ckpt: Any) -> bool:
        return is_genforce_generator(ckpt) or is_genforce_encoder(ckpt)

    def convert(self, ckpt: Any, **overrides: Any) -> list[Converted]:
        """One :class:`Converted` network. ``overrides`` (generator only): see :data:`GENERATOR_OVERRIDES`."""
        if is_genforce_generator(ckpt):
            return [genforce_generator_to_ours(ckpt, **overrides)]
        if is_genforce_encoder(ckpt):
            if overrides:
                raise ValueError(f"overrides {sorted(overrides)} apply to generators only")
            return [genforce_encoder_to_ours(ckpt)]
        raise ValueError(
            "not a genforce checkpoint: expected a StyleGAN generator state dict (mapping.dense0.fc.weight, "
            "synthesis.layer0.const) or an IDInvert encoder state dict (block0.conv.weight, block*.fc.weight)"
        )
