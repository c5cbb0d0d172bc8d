"""``idinvert restore``: restoration by inversion from the command line (:mod:`.inverters.restoration`).

    idinvert restore toyfaces-stylegan2-64 low16.png --task superres -o out/      # a 16x16 input, x4
    idinvert restore toyfaces-stylegan2-64 gray.png --task colorize -o out/
    idinvert restore toyfaces-stylegan2-64 holed.png --task inpaint --hole hole.png -o out/
    idinvert restore toyfaces-stylegan2-64 face.png --task superres --degrade -o out/  # make the input first

Inputs are read at their own size: a super-resolution input must be ``R/factor`` pixels square (``--degrade``
makes it from a full-size image, and then the ground truth is known and PSNRs are printed). The method is the
task's refiner after an embedder (``--embed``; default ``encoder`` when the model has one, else ``mean``), with
``--set KEY=VALUE`` options as ``idinvert invert``. Written per image: ``STEM.png`` (the render of the restored
code), ``STEM_consistent.png`` (the render corrected to match the observation exactly:
:func:`~idinvert_plugins.inverters.restoration.consistent`), ``STEM.safetensors`` (the latent) and
``STEM_strip.png`` (observation, simple baseline, restoration, consistent restoration, and the ground truth with
``--degrade``). Registered by the built-in inversion plugin through ``register_commands``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .cli_common import FEATURE_NET_HELP

TASK_HELP = ("superres: x4 (--factor) super-resolution of a low-resolution image; colorize: color for a grayscale "
             "image; inpaint: fill the hole given by --hole")


def add_restore_command(cli: Any) -> None:
    """Add ``idinvert restore`` to the ``idinvert`` sub-parsers ``cli``."""
    from .inverters.restoration import FACTORS, TASKS

    p = cli.add_parser("restore", help="restore images by inversion: super-resolution, colorization, inpainting",
                       description=__doc__.split("\n\n")[0] + " " + TASK_HELP)
    p.add_argument("name", help="generator: a named model, Hub id or folder")
    p.add_argument("images", nargs="+")
    p.add_argument("--task", required=True, choices=list(TASKS), help=TASK_HELP)
    p.add_argument("--factor", type=int, default=4, choices=FACTORS, help="super-resolution factor (default 4)")
    p.add_argument("--hole", help="inpainting: image whose white pixels are missing (at any size; resized)")
    p.add_argument("--degrade", action="store_true",
                   help="the images are clean: degrade them first (low-res, grayscale or holed), restore, and print "
                        "PSNR against them next to the simple baseline")
    p.add_argument("--embed", metavar="NAME", help="first stage (default: encoder if the model has one, else mean)")
    p.add_argument("--encoder", help="domain-guided encoder (name or folder; default: the model's)")
    p.add_argument("--feature-net", default="auto", help=FEATURE_NET_HELP)
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the refiner's, 300)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="an option of the refiner or embedder (repeatable): lr=0.02, noise=true, l_feat=0")
    p.add_argument("--device", default="cpu")
    p.add_argument("-o", "--output", required=True, help="folder for STEM.png, STEM_consistent.png, "
                                                         "STEM_strip.png and STEM.safetensors")
    p.add_argument("--force", action="store_true", help="overwrite files already in the output folder")
    p.set_defaults(func=cmd_restore)


def _observation(task: str, path: str, resolution: int, factor: int, degrade: bool):
    """``(observation [1, C, r, r], truth [1, C, R, R] or None)`` of one input file."""
    from .images import load_image, open_image
    from .inverters.restoration import degrade as make_degraded

    if degrade:
        truth = load_image(path, resolution, crop=True)[None]
        return truth, truth
    if task == "superres":
        low = resolution // factor
        size = open_image(path).size
        if size != (low, low):
            raise ValueError(f"{path}: a x{factor} super-resolution input for a {resolution}px model must be "
                             f"{low}x{low}, got {size[0]}x{size[1]} (resize it, or pass --degrade to restore a "
                             "full-size image from its own downsampling)")
        return load_image(path)[None], None
    observed = load_image(path, resolution, crop=True)[None]
    if task == "colorize":
        observed = make_degraded("colorize", observed)
    return observed, None


def cmd_restore(args: argparse.Namespace) -> int:
    import torch

    from .cli_common import composed_method, pipeline_from_args
    from .codes import save_latent
    from .images import save_image, save_strip
    from .inverters.masked import load_mask
    from .inverters.restoration import baseline, consistent, degrade, prepare_input
    from .metrics import psnr
    from .params import parse_assignments

    if args.task == "inpaint" and not args.hole:
        raise ValueError("--task inpaint needs --hole FILE (an image whose white pixels are missing)")
    if args.hole and args.task != "inpaint":
        raise ValueError(f"--hole is for --task inpaint, not {args.task}")
    pipe = pipeline_from_args(args.name, args)
    R = pipe.resolution
    out = Path(args.output)
    paths = [Path(p) for p in args.images]
    targets = [out / f"{p.stem}{suffix}" for p in paths for suffix in
               (".png", "_consistent.png", "_strip.png", ".safetensors")]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.force:
        raise ValueError(f"{existing[0]} exists{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''}: "
                         "choose another --output folder or pass --force to overwrite")
    observations, truths = zip(*(_observation(args.task, str(p), R, args.factor, args.degrade) for p in paths))
    observed = torch.cat(observations).to(pipe.device)
    known = None
    if args.task == "inpaint":
        known = 1.0 - load_mask(args.hole, torch.zeros(1, 3, R, R, device=pipe.device), "--hole")
    if args.degrade:
        observed = degrade(args.task, observed, factor=args.factor, known=known)
    inputs = prepare_input(args.task, observed, R, factor=args.factor)
    options = parse_assignments(args.set)
    if args.steps is not None:
        options.setdefault("steps", args.steps)
    if args.task == "superres":
        options.setdefault("factor", args.factor)
    if args.task == "inpaint":
        options["hole"] = 1.0 - known
    method, inverter = composed_method(pipe, None, args.embed, args.task)
    result = pipe.invert(inputs, inverter, progress=True, **options)
    restored = result.images.detach().clamp(-1, 1)
    fixed = consistent(args.task, restored, observed, factor=args.factor, known=known).clamp(-1, 1)
    simple = baseline(args.task, observed, factor=args.factor, known=known)
    shown = prepare_input(args.task, observed, R, factor=args.factor)  # the observation at full size
    out.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(paths):
        save_image(restored[i], out / f"{path.stem}.png")
        save_image(fixed[i], out / f"{path.stem}_consistent.png")
        save_latent(result.latent[i], out / f"{path.stem}.safetensors", generator=pipe.name, method=method)
        tiles = [shown[i], simple[i], restored[i], fixed[i]]
        line = f"{path.name}: {args.task} with {method} -> {out / path.stem}.png, _consistent.png, .safetensors"
        if truths[i] is not None:
            truth = truths[i].to(restored)
            tiles.append(truth[0])
            scores = {name: float(psnr(img[i:i + 1], truth)[0]) for name, img in
                      (("baseline", simple), ("restored", restored), ("consistent", fixed))}
            line += "  PSNR " + ", ".join(f"{k} {v:.2f} dB" for k, v in scores.items())
        save_strip(torch.stack(tiles), out / f"{path.stem}_strip.png")
        print(line)
    print(f"{len(paths)} image(s) restored in {result.seconds:.2f} s; strips: observation | baseline | restored | "
          f"consistent{' | ground truth' if args.degrade else ''}")
    return 0


__all__ = ["add_restore_command", "cmd_restore"]
