"""Helpers shared by the command modules (:mod:`.cli` and :mod:`.cli_edit`): seed lists, the help of
``--feature-net``, a command's pipeline from its options, and inverting image files with a pipeline. A module of
their own, so that neither command module imports the other for them."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def parse_seeds(text: str) -> list[int]:
    """``"0-3,7,10-11"`` -> ``[0, 1, 2, 3, 7, 10, 11]``."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad seed list {text!r}: use e.g. 0-15 or 1,5,9") from None
    if not seeds:
        raise argparse.ArgumentTypeError("empty seed list")
    return seeds


FEATURE_NET_HELP = ("perceptual network of the optimisers: auto (default: the model's pipeline.json feature_net; "
                    "without one, that of the domain its name belongs to, else none), none, a classifier "
                    "(classifier:NAME_OR_FOLDER) or vgg16-conv43:PATH")


def pipeline_from_args(name: str | Path, args: argparse.Namespace, generator=None):
    """The :class:`~idinvert_plugins.pipeline.Pipeline` of generator ``name`` with the command's ``--encoder``,
    ``--feature-net`` and ``--directions`` options (absent or ``auto``: the pipeline's own); ``generator``: the
    generator already loaded from ``name``."""
    from .pipeline import AUTO, Pipeline

    return Pipeline.from_pretrained(name, encoder=getattr(args, "encoder", None) or AUTO,
                                    feature_net=getattr(args, "feature_net", None) or AUTO,
                                    directions=tuple(getattr(args, "directions", None) or ()),
                                    device=getattr(args, "device", None) or "cpu", generator=generator)


def composed_method(pipe, method: str | None, embed: str | None, refine: str | None):
    """The inverter to run: ``--method NAME`` (a registered one), or an unnamed composition of ``--embed NAME``
    (default: ``encoder`` when the pipeline has an encoder, else ``mean``) and ``--refine A,B`` (default: none).
    Returns ``(name, inverter)``."""
    from .inverters.stages import Composition, get_embedder, get_refiner
    from .plugins import get_plugins

    if embed is None and refine is None:
        method = method or pipe.default_method
        return method, get_plugins().get("inverter", method)
    if method is not None:
        raise ValueError("give either --method NAME or --embed/--refine (a composition), not both")
    embed = embed or ("encoder" if pipe.encoder is not None else "mean")
    refiners = tuple(r.strip() for r in (refine or "").split(",") if r.strip())
    composition = Composition(f"{embed}+{'+'.join(refiners)}" if refiners else embed, get_embedder(embed),
                              tuple(get_refiner(r) for r in refiners))
    return composition.name, composition


def invert_images(pipe, paths: Sequence[str | Path], *, method: str | None = None, steps: int | None = None,
                  crop: bool = False, bf16: bool = False, embed: str | None = None, refine: str | None = None,
                  options: dict | None = None):
    """Load ``paths`` at the generator's resolution and invert them with ``method`` (default: the pipeline's
    ``default_method``), with the encoder and perceptual network of ``pipe`` (a
    :class:`~idinvert_plugins.pipeline.Pipeline`; shared by ``invert``, ``edit``, ``interpolate``, ``mix`` and
    ``diffuse``). ``bf16`` sets the optimisers' ``autocast`` option. Returns ``(images [N, 3, R, R],
    InversionResult)``."""
    from .hub import encoder_name
    from .pipeline import PIPELINE_NAME

    method, inverter = composed_method(pipe, method, embed, refine)
    if bf16 and "autocast" not in {p.name for p in getattr(inverter, "params", ())}:
        raise ValueError(f"--bf16 applies to optimising inverters with an 'autocast' option (idinvert, "
                         f"image2stylegan); {method!r} has none: leave --bf16 out")
    role = getattr(inverter, "encoder_role", None)
    if getattr(inverter, "requires_encoder", False) and pipe.encoder_for(inverter) is None and role:
        from .inverters.psp_family import encoder_key_hint

        raise ValueError(f"--method {method} needs its {role} encoder and {pipe.name!r} has none: "
                         f"{encoder_key_hint(role)}")
    if getattr(inverter, "requires_encoder", False) and pipe.encoder_for(inverter) is None:
        tried = (f" (its {PIPELINE_NAME} names none)" if pipe.source == "pipeline.json" and "encoder" in pipe.config
                 else f" ({encoder_name(pipe.name)!r} does not resolve)")
        raise ValueError(f"--method {method} needs a domain-guided encoder{tried}: pass --encoder NAME_OR_FOLDER "
                         "(e.g. one converted with `idinvert convert styleganinv_ffhq256_encoder.pth`), or use "
                         "--method image2stylegan")
    images = pipe.images(paths, crop=crop)
    declared = {p.name for p in inverter.params}
    options = dict(options or {})
    if steps is not None and "steps" in declared:
        options.setdefault("steps", steps)
    if bf16:
        options["autocast"] = True
    return images, pipe.invert(images, inverter, progress=True, **options)
