"""The toy faces' commands: ``python -m idinvert_plugins.toyfaces.commands {render,ood,figures,bench}``
(also ``python -m idinvert_plugins.data.toyfaces ...``): datasets, documentation grids and renderer timing."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .attributes import DEFAULT_RESOLUTION, OOD_KINDS, sample_attributes
from .dataset import render_batch, render_dataset
from .ood import render_ood, sample_ood_attributes
from .painter import render


def grid(images: np.ndarray, cols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile ``uint8 [N, H, W, 3]`` images into one image (for figures and quick looks)."""
    n, h, w, _ = images.shape
    rows = -(-n // cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), fill, np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        out[top:top + h, left:left + w] = images[k]
    return out


def make_figures(out_dir: str | os.PathLike, seed: int = 0) -> tuple[Path, Path]:
    """Write ``toyfaces_grid.png`` (48 training faces) and ``toyfaces_ood_grid.png`` (four of each OOD
    kind, one kind per column, labelled) at 64x64, shown at 2x with nearest-neighbour upscaling."""
    from PIL import ImageDraw

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images, _ = render_batch(seed, range(48), 64)
    sheet = Image.fromarray(grid(images, 12))
    sheet = sheet.resize((sheet.width * 2, sheet.height * 2), Image.Resampling.NEAREST)
    sheet.save(out / "toyfaces_grid.png", optimize=True)

    kinds = len(OOD_KINDS)
    ood = np.stack([render(sample_ood_attributes(seed, i), 64) for i in range(4 * kinds)])
    sheet = Image.fromarray(grid(ood, kinds))
    sheet = sheet.resize((sheet.width * 2, sheet.height * 2), Image.Resampling.NEAREST)
    labelled = Image.new("RGB", (sheet.width, sheet.height + 18), "white")
    labelled.paste(sheet, (0, 18))
    draw = ImageDraw.Draw(labelled)
    for k, kind in enumerate(OOD_KINDS):
        draw.text((4 + k * 2 * 66 + 2, 3), kind.replace("_", " "), fill=(0, 0, 0))
    labelled.save(out / "toyfaces_ood_grid.png", optimize=True)
    return out / "toyfaces_grid.png", out / "toyfaces_ood_grid.png"


def _benchmark(resolution: int, n: int) -> float:
    """CPU milliseconds per image of :func:`render` (attribute sampling excluded), median of three runs.
    CPU time rather than wall time, so a busy machine does not inflate it."""
    import time

    attrs = [sample_attributes(0, i) for i in range(n)]
    times = []
    for _ in range(3):
        start = time.process_time()
        for a in attrs:
            render(a, resolution)
        times.append((time.process_time() - start) / n * 1e3)
    return sorted(times)[1]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m idinvert_plugins.data.toyfaces {render,ood,figures,bench} ...``"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m idinvert_plugins.data.toyfaces",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, default_n in (("render", 70000), ("ood", 200)):
        what = "a dataset" if name == "render" else "the out-of-distribution set"
        p = sub.add_parser(name, help=f"write {what}")
        p.add_argument("out_dir")
        p.add_argument("--n", type=int, default=default_n)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION)
        p.add_argument("--workers", type=int, default=1)
    p = sub.add_parser("figures", help="write the documentation grids")
    p.add_argument("out_dir", nargs="?", default="docs/figures")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("bench", help="time the renderer (CPU ms per image, one process)")
    p.add_argument("--resolutions", type=int, nargs="+", default=[64, 256])
    p.add_argument("--n", type=int, default=200)
    args = parser.parse_args(argv)
    if args.command in ("render", "ood"):
        writer = render_dataset if args.command == "render" else render_ood
        print(writer(args.out_dir, args.n, args.seed, args.resolution, args.workers))
    elif args.command == "figures":
        for path in make_figures(args.out_dir, args.seed):
            print(path)
    else:
        for resolution in args.resolutions:
            n = args.n if resolution <= 64 else max(10, args.n // (resolution // 64) ** 2)
            print(f"{resolution}x{resolution}: {_benchmark(resolution, n):.2f} CPU ms/image")


# -- the ``idinvert data`` command (registered by idinvert_plugins.builtins.toyfaces via register_commands) ----
def add_data_command(cli: Any) -> None:
    """Add ``idinvert data render`` to the ``idinvert`` sub-parsers ``cli``."""
    p = cli.add_parser("data", help="the bundled toy-face domain",
                       description="The bundled toy-face domain: render its dataset or its out-of-distribution set.")
    p.set_defaults(func=lambda args: p.print_help() or 2)
    data_sub = p.add_subparsers(dest="data_command", required=True)
    r = data_sub.add_parser("render", help="render toy faces + attribute table")
    r.add_argument("--n", type=int, default=70_000)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--resolution", type=int, default=64)
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--ood", action="store_true", help="render the out-of-distribution set instead")
    r.add_argument("-o", "--output", required=True)
    r.set_defaults(func=cmd_data_render)


def cmd_data_render(args: Any) -> int:
    """``idinvert data render``: write a toy-face dataset (or, with ``--ood``, the out-of-distribution set)."""
    out = Path(args.output)
    if args.ood:
        render_ood(out, n=args.n, seed=args.seed, resolution=args.resolution)
    else:
        render_dataset(out, n=args.n, seed=args.seed, resolution=args.resolution, workers=args.workers)
    print(f"wrote {args.n} images to {out}")
    return 0


if __name__ == "__main__":
    main()
