"""Beyond W+ on a bundled generator: reconstruction and editability of PTI and Image2StyleGAN++ next to IDInvert and
Image2StyleGAN, and restoration by inversion against simple baselines.

1. Reconstruction: ``idinvert bench``'s harness (:func:`~idinvert_plugins.evaluation.bench.bench_generator`) runs
   ``--methods`` at their default settings on the first ``--n`` held-out test faces: MSE, PSNR, SSIM, FD and SWD
   of the reconstructions, seconds per image, and the edit metrics (every shipped attribute direction moved by
   its documented step, the parts of each latent kept: PTI's tuned weights, Image2StyleGAN++'s noise maps).
2. Restoration: the first ``--restore-n`` held-out faces are degraded (x4 area downsampling; BT.601 grayscale; a
   centred hole of 25 % of the area) and restored by the encoder's code refined through the degradation
   (``superres``, ``colorize``, ``inpaint``, default settings); PSNR against the clean faces of the restored
   render and of the render made consistent with the observation (:func:`~idinvert_plugins.inverters.
   restoration.consistent`), next to the simple baselines (bicubic upsampling; the grayscale input; the hole
   filled with the mean colour of the known pixels).

The tables are printed; with ``--write`` they replace the generator's own section of
``docs/results-beyond-wplus.md`` (between ``<!-- beyond_wplus.py GENERATOR: begin/end -->``; a missing section is
appended), its entry of ``docs/results-beyond-wplus.json`` (keyed by generator) and its restoration strip
(``docs/figures/beyond-wplus-restoration-GENERATOR.png``: observation | baseline | restored | consistent | truth),
so a run on one generator leaves the other generators' numbers alone (:func:`write_results`).

Methods are inverter names, including compositions from ``--plugins-dir`` (default ``benchmarks/bench_plugins``:
``pti@encoder``, PTI around the encoder's code, the PTI that runs on a StyleGAN v1, which has no single W space
for the official W pivot).

    OMP_NUM_THREADS=1 python benchmarks/beyond_wplus.py --n 4 --restore-n 4 --ablation --write
    OMP_NUM_THREADS=1 python benchmarks/beyond_wplus.py --generator toyfaces-stylegan-64 --n 4 --restore-n 4 \\
        --methods idinvert,image2stylegan,pti@encoder,image2stylegan++ --ablation --write
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import torch

from idinvert_plugins.evaluation.bench import BenchConfig, bench_generator
from idinvert_plugins.evaluation.inversions import load_test_images
from idinvert_plugins.images import save_strip
from idinvert_plugins.inverters.restoration import baseline, centre_hole, consistent, degrade, prepare_input
from idinvert_plugins.metrics import psnr
from idinvert_plugins.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results-beyond-wplus.md"
RESULTS = ROOT / "docs" / "results-beyond-wplus.json"
FIGURES = ROOT / "docs" / "figures"
COLUMNS = (("mse", "MSE", "{:.4f}"), ("psnr", "PSNR dB", "{:.2f}"), ("ssim", "SSIM", "{:.3f}"),
           ("fd", "FD", "{:.1f}"), ("swd", "SWD", "{:.1f}"), ("seconds_per_image", "s/img", "{:.1f}"),
           ("edit_success", "edit success", "{:.2f}"), ("fd_edited", "FD edited", "{:.1f}"))
TASKS = {"superres": "x4 super-resolution", "colorize": "colorization", "inpaint": "inpainting, 25 % hole"}


def markers(generator: str) -> tuple[str, str]:
    """The begin and end markers of one generator's generated section of the page."""
    return f"<!-- beyond_wplus.py {generator}: begin -->", f"<!-- beyond_wplus.py {generator}: end -->"


def figure_path(generator: str, figures: Path = FIGURES) -> Path:
    """Where the restoration strip of one generator goes."""
    return figures / f"beyond-wplus-restoration-{generator}.png"


def write_results(generator: str, results: dict, body: str, page: Path = PAGE, results_json: Path = RESULTS) -> None:
    """Put one generator's results in the JSON (keyed by generator) and its section in the page (between its
    markers, appended under a heading if the page has none yet), leaving every other generator's entry and section
    as they were. ``body``: the section's markdown without the markers. A JSON in the old one-generator layout
    (a top-level ``generator`` key) is kept under that generator."""
    data = json.loads(results_json.read_text()) if results_json.is_file() else {}
    if "generator" in data and "generators" not in data:
        data = {"generators": {data["generator"]: data}}
    data.setdefault("generators", {})[generator] = results
    results_json.write_text(json.dumps(data, indent=1, default=str) + "\n")
    begin, end = markers(generator)
    section = f"{begin}\n\n{body.strip()}\n\n{end}"
    text = page.read_text() if page.is_file() else "# Beyond W+\n"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, text, count=1, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n### {generator}\n\n{section}\n"
    page.write_text(text)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def value(row: dict, key: str) -> float | None:
    v = (row.get("values") or row.get("metrics") or row).get(key)
    if isinstance(v, dict):
        v = v.get("mean", v.get("value"))
    return None if v is None else float(v)


def reconstruction(pipe: Pipeline, args: argparse.Namespace) -> tuple[dict, list[str]]:
    cfg = BenchConfig(n=args.n, methods=tuple(args.methods.split(",")), batch=args.batch)
    res = bench_generator(pipe, cfg=cfg, cache_dir=args.cache, name=args.generator, progress=False)
    lines = ["| method | " + " | ".join(label for _, label, _ in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for key, row in res["rows"].items():
        cells = []
        for metric, _, fmt in COLUMNS:
            v = value(row, metric)
            cells.append("-" if v is None else fmt.format(v))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return res, lines


def ablation(pipe: Pipeline, args: argparse.Namespace) -> tuple[dict, str]:
    """Image2StyleGAN++ with its noise maps left alone (``noise=false``: W+ through the same loop, same steps) on
    the same faces: how much of its gain over Image2StyleGAN the noise maps bring."""
    from idinvert_plugins.metrics import mse, ssim

    x = load_test_images(args.n, pipe.resolution).images
    t0 = time.perf_counter()
    result = pipe.invert(x, "image2stylegan++", noise=False)
    seconds = (time.perf_counter() - t0) / len(x)
    recon = result.images.detach().clamp(-1, 1)
    row = {"mse": float(mse(recon, x).mean()), "psnr": float(psnr(recon, x).mean()),
           "ssim": float(ssim(recon, x).mean()), "seconds_per_image": seconds}
    line = (f"| image2stylegan++, noise=false (ablation) | {row['mse']:.4f} | {row['psnr']:.2f} | {row['ssim']:.3f} "
            f"| - | - | {seconds:.1f} | - | - |")
    log(f"ablation: image2stylegan++ without noise maps: MSE {row['mse']:.4f}")
    return row, line


def restoration(pipe: Pipeline, args: argparse.Namespace) -> tuple[dict, list[str]]:
    G = pipe.generator
    x = load_test_images(args.restore_n, G.resolution).images
    known = centre_hole(G.resolution, 0.25)
    out: dict[str, dict[str, float]] = {}
    tiles = []
    for task in TASKS:
        observed = degrade(task, x, known=known)
        inputs = prepare_input(task, observed, G.resolution)
        options = {"hole": 1 - known} if task == "inpaint" else {}
        t0 = time.perf_counter()
        result = pipe.invert(inputs, embed="encoder" if pipe.encoder is not None else "mean", refine=[task],
                             **options)
        seconds = (time.perf_counter() - t0) / len(x)
        restored = result.images.detach().clamp(-1, 1)
        fixed = consistent(task, restored, observed, known=known).clamp(-1, 1)
        simple = baseline(task, observed, known=known)
        out[task] = {"baseline": float(psnr(simple, x).mean()), "restored": float(psnr(restored, x).mean()),
                     "consistent": float(psnr(fixed, x).mean()), "seconds_per_image": seconds}
        shown = prepare_input(task, observed, G.resolution)
        for i in range(min(2, len(x))):
            tiles.append(torch.stack([shown[i], simple[i], restored[i], fixed[i], x[i]]))
        log(f"{task}: PSNR baseline {out[task]['baseline']:.2f}, restored {out[task]['restored']:.2f}, "
            f"consistent {out[task]['consistent']:.2f} dB ({seconds:.1f} s/img)")
    lines = ["| task | baseline | baseline PSNR dB | restored (render) | restored + observation (consistent) | s/img |",
             "|---|---|---|---|---|---|"]
    names = {"superres": "bicubic upsampling", "colorize": "grayscale input", "inpaint": "mean fill"}
    for task, r in out.items():
        lines.append(f"| {TASKS[task]} | {names[task]} | {r['baseline']:.2f} | {r['restored']:.2f} | "
                     f"{r['consistent']:.2f} | {r['seconds_per_image']:.1f} |")
    if args.write:
        figure = figure_path(args.generator)
        figure.parent.mkdir(parents=True, exist_ok=True)
        import numpy as np

        from idinvert_plugins.images import to_uint8

        rows = [np.concatenate(list(to_uint8(t)), axis=1) for t in tiles]
        save_strip([np.concatenate(rows, axis=0)], figure)
        log(f"wrote {figure.relative_to(ROOT)}")
    return out, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", default="toyfaces-stylegan2-64")
    ap.add_argument("--methods", default="idinvert,image2stylegan,pti,image2stylegan++")
    ap.add_argument("--n", type=int, default=4, help="held-out test faces for reconstruction")
    ap.add_argument("--restore-n", type=int, default=4, help="held-out test faces for restoration")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--cache", default="runs/beyond-wplus-cache", help="the bench harness's latent cache")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plugins-dir", action="append", default=None, metavar="DIR",
                    help="plugins directories for compositions such as pti@encoder (default: the repo's hooks/ "
                         "and benchmarks/bench_plugins)")
    ap.add_argument("--skip-reconstruction", action="store_true")
    ap.add_argument("--ablation", action="store_true",
                    help="also run image2stylegan++ with noise=false (W+ alone through the same loop)")
    ap.add_argument("--write", action="store_true", help="write docs/results-beyond-wplus.{json,md} and the figure")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from idinvert_plugins.plugins import configure

    configure(args.plugins_dir or [d for d in (ROOT / "hooks", ROOT / "benchmarks" / "bench_plugins") if d.is_dir()])
    t0 = time.perf_counter()
    pipe = Pipeline.from_pretrained(args.generator)
    results: dict = {"generator": args.generator, "n": args.n, "restore_n": args.restore_n}
    sections = []
    if not args.skip_reconstruction:
        res, lines = reconstruction(pipe, args)
        results["reconstruction"] = {**res, "rows": {k: {f: v for f, v in row.items() if f != "curve"}
                                                     for k, row in res["rows"].items()}}  # per-step curves: cache
        if args.ablation:
            results["ablation"], line = ablation(pipe, args)
            lines.append(line)
        sections.append(f"#### Reconstruction and editability ({args.n} held-out test faces, default settings)\n\n"
                        + "\n".join(lines))
        print("\n".join(lines), flush=True)
    restored, lines = restoration(pipe, args)
    results["restoration"] = restored
    sections.append(f"#### Restoration PSNR ({args.restore_n} held-out test faces; encoder start, default settings)"
                    "\n\n" + "\n".join(lines))
    print("\n".join(lines))
    seconds = time.perf_counter() - t0
    results["seconds"] = seconds
    command = (f"OMP_NUM_THREADS=1 python benchmarks/beyond_wplus.py --generator {args.generator} "
               f"--n {args.n} --restore-n {args.restore_n} "
               f"--methods {args.methods}{' --ablation' if args.ablation else ''} --write")
    log(f"done in {seconds:.0f} s")
    if args.write:
        body = (f"`{command}` (this run: {seconds / 60:.1f} min, {args.threads} thread(s); methods already in "
                f"`{args.cache}` are measured, not inverted again; every number under `{args.generator}` in "
                f"`docs/results-beyond-wplus.json`).\n\n" + "\n\n".join(sections))
        write_results(args.generator, results, body)
        log(f"wrote {PAGE.relative_to(ROOT)} ({args.generator}'s section) and {RESULTS.relative_to(ROOT)}")

if __name__ == "__main__":
    main()
