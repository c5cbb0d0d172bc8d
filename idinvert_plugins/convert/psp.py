"""Official pSp, e4e and ReStyle checkpoints -> a pipeline folder (generator + encoder + ``pipeline.json``).

What the official coaches save (eladrich/pixel2style2pixel, omertov/encoder4editing, yuval-alaluf/restyle-encoder;
facts in ``../shared/research/encoders-and-real-photos.md`` and ``../shared/fixtures/encoders/README.md``)::

    {"state_dict": {"encoder.*": ..., "decoder.*": ...},   # the wrapper's state_dict: encoder, then a rosinality G
     "opts": {...},                                         # vars(opts): a plain dict
     "latent_avg": [n_styles, 512],                         # when start_from_latent_avg (ReStyle: always)
     # e4e / ReStyle-e4e training files also: global_step, optimizer, best_val_loss,
     # discriminator_state_dict, discriminator_optimizer_state_dict}

The file is read by the restricted loader (:func:`~.safe_pickle.safe_load`: no code runs, CUDA tensors land on the
CPU). Which converter applies is decided by ``opts["encoder_type"]``:

* ``psp``: ``GradualStyleEncoder`` (pSp files without the key are pSp) -> :class:`~..models.psp.PSPEncoder`;
* ``e4e``: ``Encoder4Editing`` -> :class:`~..models.e4e.E4EEncoder`;
* ``restyle``: ``BackboneEncoder``, ``ResNetBackboneEncoder``, ``ProgressiveBackboneEncoder``,
  ``ResNetProgressiveBackboneEncoder`` -> :class:`~..models.restyle.ReStyleEncoder`.

The mapping is strict, unlike the official ReStyle loader (``strict=False``): the hyper-parameters ``opts`` imply
(number of styles from ``output_size`` / ``stylegan_size``, ``input_nc``, the backbone) are checked against the
tensors first, then every ``encoder.*`` tensor must be used and none may be missing (both listed by name). The
decoder goes through the rosinality generator conversion (:mod:`.rosinality`); the training leftovers
(optimizer, discriminator, step counters) are ignored and listed in the notes. ``latent_avg`` is
``[n_styles, 512]`` (``[1, 512]`` / ``[512]`` are repeated to every layer); a file without it but with
``start_from_latent_avg`` gets the decoder's average code, as e4e does (``mean_latent``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from ..models.e4e import E4EEncoder
from ..models.psp import PSPEncoder, StyleEncoderBase, n_styles_for, resize_to
from ..models.restyle import ENCODER_TYPES as RESTYLE_TYPES
from ..models.restyle import ReStyleEncoder
from .base import CheckpointFormat, Converted
from .rosinality import rosinality_generator_to_ours

#: official ``encoder_type`` -> the format (converter) that handles it
FAMILY_OF_TYPE: dict[str, str] = {"GradualStyleEncoder": "psp", "Encoder4Editing": "e4e",
                                  **{t: "restyle" for t in RESTYLE_TYPES}}
#: encoder types of the official repositories that this library does not implement
UNSUPPORTED_TYPES = ("BackboneEncoderUsingLastLayerIntoW", "BackboneEncoderUsingLastLayerIntoWPlus",
                     "SingleStyleCodeEncoder")
#: state_dict prefixes of related methods whose files look alike (for a clear refusal)
OTHER_METHODS = {"hypernet.": "HyperStyle", "encoder_firststage.": "E2Style", "residue.": "HFGI",
                 "grid_align.": "HFGI"}
TOP_LEVEL_KNOWN = ("state_dict", "opts", "latent_avg")
LICENSE_NOTE = ("pSp / e4e / ReStyle code is MIT-licensed; their released encoders were trained with NVIDIA's "
                "StyleGAN2 FFHQ (or other) generators whose weights are under the NVIDIA Source Code License-NC "
                "(non-commercial use only). Check the weights' origin.")


class PSPFamilyError(ValueError):
    """A pSp-family checkpoint that cannot be converted; the message says what is wrong and what to do."""


def _opts(ckpt: Any) -> Mapping[str, Any] | None:
    opts = ckpt.get("opts") if isinstance(ckpt, Mapping) else None
    return opts if isinstance(opts, Mapping) else None


def is_psp_family(ckpt: Any) -> bool:
    """A dict with ``state_dict`` (holding ``encoder.*`` tensors) and an ``opts`` dict: a pSp / e4e / ReStyle
    (or related: HyperStyle, E2Style, HFGI) training checkpoint."""
    if not isinstance(ckpt, Mapping) or _opts(ckpt) is None or not isinstance(ckpt.get("state_dict"), Mapping):
        return False
    return any(isinstance(k, str) and k.split(".", 1)[0] in ("encoder", "hypernet", "encoder_firststage", "decoder")
               for k in ckpt["state_dict"])


def detect_family(ckpt: Any) -> tuple[str | None, str]:
    """``(format, encoder_type)`` of a pSp-family checkpoint: format ``"psp"``, ``"e4e"``, ``"restyle"`` or None
    (not one this library converts; ``encoder_type`` then says what it is)."""
    if not is_psp_family(ckpt):
        return None, ""
    keys = [k for k in ckpt["state_dict"] if isinstance(k, str)]
    for prefix, method in OTHER_METHODS.items():
        if any(k.startswith(prefix) for k in keys):
            return None, method
    opts = _opts(ckpt) or {}
    encoder_type = opts.get("encoder_type")
    if encoder_type is None:  # early pSp files: GradualStyleEncoder was the only choice
        encoder_type = "GradualStyleEncoder"
    return FAMILY_OF_TYPE.get(str(encoder_type)), str(encoder_type)


def _describe_other(ckpt: Any) -> str:
    if isinstance(ckpt, Mapping):
        keys = list(ckpt)[:6]
        if "g_ema" in ckpt:
            return f"a rosinality StyleGAN2 checkpoint (top-level keys {keys}): convert it with --format rosinality"
        if "state_dict" in ckpt and _opts(ckpt) is None:
            return f"a dict with 'state_dict' but no 'opts' dict (top-level keys {keys})"
        return f"a dict with top-level keys {keys}"
    return f"a {type(ckpt).__name__}"


def split_state_dict(sd: Mapping[str, Any], name: str) -> dict[str, torch.Tensor]:
    """The official ``get_keys``: entries whose name starts with ``name`` followed by ``.``, prefix stripped
    (``encoder_firststage.*`` is not ``encoder``)."""
    prefix = name + "."
    return {k[len(prefix):]: v for k, v in sd.items() if isinstance(k, str) and k.startswith(prefix)}


def _n_styles_in(enc: Mapping[str, torch.Tensor]) -> int:
    found = {int(m.group(1)) for k in enc if (m := re.match(r"styles\.(\d+)\.", k))}
    return max(found) + 1 if found else 0


def infer_backbone(enc: Mapping[str, torch.Tensor], resnet: bool) -> dict[str, Any]:
    """``stages``, ``widths`` and ``stem`` of the body, read from the tensors: a stage starts at unit 0 and at
    every unit whose first conv changes the width (IR-SE50: (3, 4, 14, 3) units of (64, 128, 256, 512) after a
    64-channel stem; ResNet-34: (3, 4, 6, 3))."""
    conv = "conv1.weight" if resnet else "res_layer.1.weight"
    units = sorted({int(m.group(1)) for k in enc if (m := re.match(r"body\.(\d+)\.", k))})
    if not units or units != list(range(len(units))):
        raise PSPFamilyError(f"the encoder's body units are not numbered 0..n-1 (found {units[:5]}...): damaged file")
    stages: list[int] = []
    widths: list[int] = []
    for u in units:
        key = f"body.{u}.{conv}"
        if key not in enc:
            raise PSPFamilyError(f"missing encoder tensor encoder.{key}: the file is damaged, or from a modified model")
        depth, in_ch = int(enc[key].shape[0]), int(enc[key].shape[1])
        if u == 0 or depth != in_ch:
            stages.append(1)
            widths.append(depth)
        else:
            stages[-1] += 1
    if len(stages) != 4:
        raise PSPFamilyError(f"the encoder body has {len(stages)} stages (units per stage {stages}), the official "
                             "backbones have 4")
    stem_key = "conv1.weight" if resnet else "input_layer.0.weight"
    return {"stages": stages, "widths": widths, "stem": int(enc[stem_key].shape[0])}


def _input_size_in(enc: Mapping[str, torch.Tensor], first_style_spatial_div: int = 16) -> int | None:
    convs = {int(m.group(1)) for k in enc if (m := re.match(r"styles\.0\.convs\.(\d+)\.weight$", k))}
    return first_style_spatial_div * 2 ** len(convs) if convs else None


class _PSPFamilyFormat(CheckpointFormat):
    """Shared logic of the three converters; ``name`` is the family."""

    encoder_cls: type[StyleEncoderBase] = PSPEncoder

    def sniff(self, ckpt: Any) -> bool:
        family, what = detect_family(ckpt)
        # unconverted relatives (HyperStyle, E2Style, pSp's W encoders) land on "psp", which refuses them clearly
        return family == self.name or (self.name == "psp" and family is None and bool(what))

    def convert(self, ckpt: Any, **overrides: Any) -> list[Converted]:
        family, encoder_type = detect_family(ckpt)
        if not is_psp_family(ckpt):
            raise PSPFamilyError(f"not a pSp / e4e / ReStyle checkpoint: expected a dict with 'state_dict' "
                                 f"(encoder.* and decoder.* tensors) and 'opts'; this is {_describe_other(ckpt)}")
        if family is None:
            if encoder_type in ("HyperStyle", "E2Style", "HFGI"):
                raise PSPFamilyError(f"this is a {encoder_type} checkpoint (its state_dict has the "
                                     f"{[p for p, m in OTHER_METHODS.items() if m == encoder_type][0]}* tensors of "
                                     "that method), not pSp, e4e or ReStyle: it is not supported yet")
            raise PSPFamilyError(f"opts encoder_type {encoder_type!r} is not an encoder this library implements "
                                 f"(pSp: GradualStyleEncoder; e4e: Encoder4Editing; ReStyle: "
                                 f"{', '.join(RESTYLE_TYPES)})" + (" - the W-space variants of pSp/e4e are not "
                                                                    "supported" if encoder_type in UNSUPPORTED_TYPES
                                                                    else ""))
        if family != self.name:
            raise PSPFamilyError(f"this is {'an' if family == 'e4e' else 'a'} {family} checkpoint (opts encoder_type "
                                 f"{encoder_type!r}), not {self.name}: convert it with --format {family} (or leave "
                                 "--format out)")
        opts = dict(_opts(ckpt) or {})
        opts.update(overrides)
        sd = ckpt["state_dict"]
        enc_sd = split_state_dict(sd, "encoder")
        dec_sd = split_state_dict(sd, "decoder")
        others = sorted({k.split(".", 1)[0] for k in sd if isinstance(k, str)} - {"encoder", "decoder"})
        if not enc_sd:
            raise PSPFamilyError("the checkpoint's state_dict has no encoder.* tensors: nothing to convert")
        ignored = [k for k in ckpt if k not in TOP_LEVEL_KNOWN] + [f"state_dict.{p}.*" for p in others]

        # -- hyper-parameters from opts, checked against the tensors
        size_key = "stylegan_size" if family == "e4e" else "output_size"
        output_size = int(opts.get(size_key, opts.get("output_size", opts.get("stylegan_size", 1024))))
        n_styles = n_styles_for(output_size)
        in_tensors = _n_styles_in(enc_sd)
        if in_tensors != n_styles:
            raise PSPFamilyError(f"opts do not match the tensors: opts {size_key}={output_size} means {n_styles} "
                                 f"styles, the state dict holds {in_tensors} (encoder.styles.0..{in_tensors - 1}); a "
                                 f"{2 ** ((in_tensors + 2) // 2)} px model? Fix opts[{size_key!r}]")
        w_dim = int(enc_sd["styles.0.linear.weight"].shape[0]) if "styles.0.linear.weight" in enc_sd else 512
        input_size = _input_size_in(enc_sd) or 256
        args: dict[str, Any] = dict(resolution=output_size, num_layers=n_styles, w_dim=w_dim, input_size=input_size)
        if family == "restyle":
            args.update(encoder_type=encoder_type, n_iters=int(opts.get("n_iters_per_batch", 5)))
        first_conv = "conv1.weight" if "ResNet" in encoder_type else "input_layer.0.weight"
        if first_conv not in enc_sd:
            has = "conv1.weight (a ResNet stem)" if "conv1.weight" in enc_sd else (
                "input_layer.0.weight (an IR-SE stem)" if "input_layer.0.weight" in enc_sd else "neither stem")
            raise PSPFamilyError(f"opts do not match the tensors: opts encoder_type {encoder_type!r} has "
                                 f"encoder.{first_conv}, the state dict has {has}")
        input_nc = int(enc_sd[first_conv].shape[1])
        expected_nc = int(opts.get("input_nc", 6 if family == "restyle" else 3))
        if family == "e4e":
            expected_nc = 3
        if input_nc != expected_nc:
            raise PSPFamilyError(f"opts do not match the tensors: opts input_nc={expected_nc}, but "
                                 f"encoder.{first_conv} reads {input_nc} channels")
        args.update(infer_backbone(enc_sd, resnet="ResNet" in encoder_type))
        if family == "psp":
            args["input_nc"] = input_nc
        start = bool(opts.get("start_from_latent_avg", True))
        args["start_from_latent_avg"] = start
        try:
            with torch.device("meta"):  # the layout only: no weights are initialised (200M+ parameters officially)
                encoder = self.encoder_cls(**args)
        except ValueError as exc:
            raise PSPFamilyError(f"cannot build the {encoder_type} these opts describe: {exc}") from None

        # -- strict mapping: every tensor used, none missing, shapes equal
        expected = {k[len("encoder."):]: v for k, v in encoder.state_dict().items() if k.startswith("encoder.")}
        missing = [k for k in expected if k not in enc_sd]
        extra = [k for k in enc_sd if k not in expected]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)} encoder tensor(s): {_listing(missing)}")
            if extra:
                parts.append(f"{len(extra)} unexpected encoder tensor(s): {_listing(extra)}")
            raise PSPFamilyError(f"the state dict does not match the official {encoder_type} ({'; '.join(parts)}); "
                                 "the file is damaged, or from a modified model")
        bad = [f"{k} {list(enc_sd[k].shape)} (expected {list(v.shape)})" for k, v in expected.items()
               if tuple(enc_sd[k].shape) != tuple(v.shape)]
        if bad:
            raise PSPFamilyError(f"encoder tensors of the wrong shape for the official {encoder_type} with these opts: "
                                 f"{_listing(bad)}")

        # -- the generator
        notes: dict[str, Any] = {"license": LICENSE_NOTE, "encoder_type": encoder_type,
                                 "dataset_type": opts.get("dataset_type")}
        latent_avg = ckpt.get("latent_avg")
        if latent_avg is not None:
            latent_avg = torch.as_tensor(latent_avg).float()
            if latent_avg.shape[-1] != w_dim or latent_avg.ndim > 2 or (
                    latent_avg.ndim == 2 and latent_avg.shape[0] not in (1, n_styles)):
                raise PSPFamilyError(f"latent_avg has shape {list(latent_avg.shape)}; expected [{n_styles}, {w_dim}] "
                                     f"(or [1, {w_dim}] / [{w_dim}])")
            latent_avg = latent_avg.reshape(-1, w_dim).expand(n_styles, -1).clone()
        converted: list[Converted] = []
        if dec_sd:
            row = latent_avg[0] if latent_avg is not None and torch.equal(latent_avg, latent_avg[:1].expand_as(
                latent_avg)) else None
            try:
                generator = rosinality_generator_to_ours(dec_sd, row)
            except ValueError as exc:
                raise PSPFamilyError(f"the decoder.* tensors are not a rosinality StyleGAN2 generator: {exc}") from None
            g_res = generator.args["resolution"]
            if g_res != output_size:
                raise PSPFamilyError(f"opts do not match the tensors: opts {size_key}={output_size}, the decoder "
                                     f"renders {g_res} px")
            generator.source_format = self.name
            generator.notes["decoder"] = f"decoder.* of a {family} checkpoint ({len(dec_sd)} tensors)"
            if row is None and latent_avg is not None:
                generator.notes["w_avg"] = ("the checkpoint's latent_avg rows differ (not one repeated code): w_avg "
                                            "is the mean mapping output of random z, as for a file without it")
            converted.append(generator)
        if latent_avg is None:
            if start:
                if not converted:
                    raise PSPFamilyError("start_from_latent_avg is set but the checkpoint has neither latent_avg nor "
                                         "a decoder to compute it from")
                w_avg = converted[0].state_dict["w_avg"]
                latent_avg = w_avg.reshape(1, -1).expand(n_styles, -1).clone()
                notes["latent_avg"] = "absent from the file: the decoder's average code (as e4e's mean_latent)"
            else:
                latent_avg = torch.zeros(n_styles, w_dim)
        state = {f"encoder.{k}": v.detach().float() if v.is_floating_point() else v.detach()
                 for k, v in enc_sd.items()}
        state["latent_avg"] = latent_avg
        if family == "restyle":
            state["avg_image"] = torch.zeros(3, input_size, input_size)
            if converted:
                state["avg_image"] = average_image(converted[0], latent_avg, input_size)
                notes["avg_image"] = "G(latent_avg) with constant noise, pooled to the encoder's input size"
        missing = sorted(set(encoder.state_dict()) - set(state))
        assert not missing, missing  # the encoder entries were checked above; latent_avg / avg_image are set here
        if ignored:
            notes["ignored_entries"] = ignored
        if opts.get("dataset_type") == "cars_encode":
            notes["cars"] = ("the official cars models read 192x256 crops; this library feeds square images, so "
                             "results differ from the official ones")
        enc = Converted(kind="encoder", architecture=encoder.architecture, args=encoder.config,
                        state_dict={k: state[k].contiguous() for k in encoder.state_dict()},
                        source_format=self.name, notes=notes)
        if converted:
            enc.subfolder = "encoder"
            converted[0].pipeline = {"generator": ".", "encoder": "encoder/", "encoders": {self.name: "encoder/"},
                                     "default_method": self.name,
                                     "description": f"converted {family} checkpoint ({encoder_type}): the "
                                                    "generator from decoder.*, the encoder in encoder/"}
        converted.append(enc)
        return converted


def average_image(generator: Converted, latent_avg: torch.Tensor, size: int) -> torch.Tensor:
    """ReStyle's average image: the converted generator's rendering of ``latent_avg`` (constant noise, as the
    official ``randomize_noise=False``), pooled to ``size`` (``face_pool``) -> ``[3, size, size]``."""
    from ..models.stylegan2 import StyleGAN2Generator

    G = StyleGAN2Generator(**generator.args).eval()
    G.load_state_dict(generator.state_dict, strict=True)
    with torch.no_grad():
        image = G.synthesis(latent_avg[None].float(), noise_mode="const")
    return resize_to(image, size)[0].float()


def _listing(names: list[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names) - n} more)" if len(names) > n else "")


class PSPFormat(_PSPFamilyFormat):
    name = "psp"
    description = "pSp checkpoints (pixel2style2pixel: state_dict encoder.*/decoder.*, opts, latent_avg)"
    encoder_cls = PSPEncoder


class E4EFormat(_PSPFamilyFormat):
    name = "e4e"
    description = "e4e checkpoints (encoder4editing: Encoder4Editing + decoder, opts, latent_avg)"
    encoder_cls = E4EEncoder


class ReStyleFormat(_PSPFamilyFormat):
    name = "restyle"
    description = "ReStyle checkpoints (restyle-encoder: 6-channel iterative encoders, IR-SE50 or ResNet-34)"
    encoder_cls = ReStyleEncoder


__all__ = ["E4EFormat", "PSPFamilyError", "PSPFormat", "ReStyleFormat", "average_image", "detect_family",
           "is_psp_family", "split_state_dict"]
