"""The IDInvert paper's noise-space encoder (Sec. VI-C): Table VI and Fig. 14a on a bundled generator.

For every k of ``--ks`` (default 0 .. 4, at most the generator's synthesis blocks) the noise encoder
(:class:`~idinvert_plugins.models.noise_encoder.NoiseEncoder`, predicting the noise maps of the first k synthesis
blocks B-1 ... B-k on top of W+) is fine-tuned from the shipped domain-guided encoder (``--init-encoder``) with
the encoder trainer's ``noise`` objective for ``--kimg`` thousand images (one run folder per k under ``--runs``;
an interrupted run resumes, a finished one is reused). k = 0 is the plain encoder fine-tuned by the same code for
the same budget, so every row has seen the same images. Then, on the first ``--n`` held-out test faces (the same
faces as Table I of ``docs/results.md``: the domain's test split):

* reconstruction: each face through the ``encoder`` method (W+ and, for k > 0, the predicted noise maps in the
  latent's ``noise`` part), rendered: MSE and SSIM (and PSNR, and the set-level FD and SWD of the
  reconstructions), plus the MSE of the same W+ codes rendered with the generator's stored noise (what the noise
  maps add);
* interpolation (the paper's protocol, as ``idinvert evaluate``'s Table II): each face's latent and the next
  face's (cyclically) mixed at t = 0.25, 0.5, 0.75, codes and noise maps alike
  (:func:`~idinvert_plugins.evaluation.editability.interpolation_codes`); FD (classifier features) and SWD
  between the interpolated images and the real test faces.

Writes ``OUT/noise-encoder.json`` (every number and each k's loss curve), ``OUT/noise-encoder.md`` (the Table
VI-shaped table, printed too), ``OUT/noise-encoder-loss.png`` (Fig. 14a: training loss against images seen, one
curve per k; beside it the held-out reconstruction MSE the trainer logs) and ``OUT/noise-encoder-interpolation.png``
(one pair of faces per k: input, reconstruction, the three interpolations, reconstruction, input).

    OMP_NUM_THREADS=1 python benchmarks/noise_encoder.py --kimg 5 --runs runs/noise-encoder --out docs/results \
        --set bf16=false

(``bf16=false``: on a CPU without bfloat16 instructions, such as the 2-core AMD EPYC this was written on, bf16
autocast made a training step about 7x slower; there a step of 32 faces at 64 px took about 5 CPU-seconds
for every k, so 5 kimg per k costs about 13 CPU-minutes of training plus about one minute of measuring.)
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
TS = (0.25, 0.5, 0.75)
STEM = "noise-encoder"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", default="toyfaces-stylegan2-64")
    ap.add_argument("--init-encoder", default=None,
                    help="the domain-guided encoder every k starts from (default: GENERATOR-encoder)")
    ap.add_argument("--ks", default="auto",
                    help="comma-separated k (noise blocks predicted); auto: 0 .. min(4, the generator's blocks)")
    ap.add_argument("--kimg", type=float, default=5.0, help="fine-tuning budget per k, thousands of images")
    ap.add_argument("--runs", default="runs/noise-encoder", help="training runs, one folder k<K> per k (resumable)")
    ap.add_argument("--preset", default=None, help="encoder training preset (default: the domain's)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a training setting for every k (as idinvert train-encoder --set)")
    ap.add_argument("--log-points", type=int, default=25, help="loss records per run (sets log_kimg = kimg / this)")
    ap.add_argument("--n", type=int, default=200, help="held-out test faces (Table I's 200)")
    ap.add_argument("--batch", type=int, default=50, help="faces per encoder pass")
    ap.add_argument("--classifier", default="domain",
                    help="classifier whose pool features the FD uses ('domain': the domain's; 'none': no FD)")
    ap.add_argument("--out", default="docs/results", help="folder for noise-encoder.{json,md} and the figures")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def resolve_ks(spec: str, generator: torch.nn.Module) -> list[int]:
    """``auto``: 0 .. min(4, blocks); else the listed k (the library refuses one above the generator's blocks)."""
    from idinvert_plugins.models.noise_encoder import noise_blocks_of, noise_layers_for

    if spec == "auto":
        return list(range(min(4, len(noise_blocks_of(generator))) + 1))
    ks = [int(k) for k in spec.split(",") if k.strip()]
    for k in ks:
        noise_layers_for(generator, k)  # a clear error naming the limit
    return ks


def train_k(k: int, args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Fine-tune (or resume, or reuse) the run of ``k``; export its encoder (float32) into the run folder."""
    from idinvert_plugins.training import encoder as enc

    preset = args.preset or enc.PRESETS.default()
    init = args.init_encoder or f"{args.generator}-encoder"
    values = {"objective": "noise", "noise_blocks": k, "init_encoder": init,
              "log_kimg": args.kimg / max(args.log_points, 1), **overrides}
    values.setdefault("checkpoint_kimg", min(1.0, args.kimg))
    cfg = enc.EncoderTrainConfig.preset(preset, generator=args.generator, **values)
    run_dir = Path(args.runs) / f"k{k}"
    command = shlex.join(["idinvert", "train-encoder", "--generator", args.generator, "--objective", "noise",
                          "--out", str(run_dir), "--preset", preset, "--kimg", str(args.kimg),
                          *(f"--set={key}={json.dumps(v)}" for key, v in values.items() if key != "objective")])
    t0 = time.perf_counter()
    summary = enc.train_encoder(cfg, run_dir, max_kimg=args.kimg, progress=not args.no_progress, command=command)
    log(f"k={k}: {summary['kimg']:.2f} kimg, {summary['wall_s'] / 60:.1f} min of training in all "
        f"({time.perf_counter() - t0:.0f} s this call), held-out MSE {summary['eval_mse']:.5f}")
    folder = enc.export_encoder(run_dir, run_dir, "encoder", dtype=None)
    return folder, {"kimg": summary["kimg"], "train_seconds": summary["wall_s"], "command": command,
                    "config": cfg.to_dict()}


def loss_curve(run_dir: Path) -> dict[str, list[float]]:
    """The run's log records: images seen (kimg), the pixel loss and the total E loss per log window, and the
    held-out reconstruction MSE at each record."""
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    return {key: [float(r.get(key, math.nan)) for r in rows] for key in ("kimg", "pix", "loss_E", "eval_mse")}


def interpolate(latent: Any) -> Any:
    """Each latent mixed with the next one (cyclically) at :data:`TS`, W+ codes and noise maps alike (the
    evaluation's :func:`interpolation_codes`, applied to the flattened maps too): ``[N * len(TS)]`` latents."""
    from idinvert_plugins.evaluation.editability import interpolation_codes
    from idinvert_plugins.latent import Latent

    wp = interpolation_codes(latent.wp, TS)
    parts = {}
    for name, tensors in latent.parts.items():
        parts[name] = {}
        for key, t in tensors.items():
            flat = interpolation_codes(t.expand(len(latent), *t.shape[1:]).flatten(2), TS)
            parts[name][key] = flat.reshape(len(wp), *t.shape[1:])
    return Latent(wp, parts)


@torch.no_grad()
def render_all(G: torch.nn.Module, latent: Any, batch: int) -> torch.Tensor:
    from idinvert_plugins.latent import render

    return torch.cat([render(G, latent[i : i + batch]).float() for i in range(0, len(latent), batch)]).clamp(-1, 1)


def measure(G: torch.nn.Module, E: torch.nn.Module, test: Any, fd_fn: Any, batch: int) -> tuple[dict, dict]:
    """Table VI's numbers for one encoder, and the images of the interpolation figure."""
    from idinvert_plugins import get_inverter
    from idinvert_plugins.evaluation.tables import fd_between, reconstruction_metrics, swd_between
    from idinvert_plugins.latent import Latent
    from idinvert_plugins.metrics import mse

    inverter = get_inverter("encoder")
    t0 = time.perf_counter()
    latents = [inverter.invert(G, test.images[i : i + batch], encoder=E).latent
               for i in range(0, len(test), batch)]  # fmt: skip
    seconds = time.perf_counter() - t0
    latent = Latent.cat(latents)
    recon = render_all(G, latent, batch)
    row = reconstruction_metrics(test.images, recon, fd_fn)
    row["mse_stored_noise"] = float(mse(render_all(G, latent.without("noise"), batch), test.images).mean())
    row["seconds_per_image"] = seconds / len(test)
    interp = render_all(G, interpolate(latent), batch)
    row["fd_interpolated"] = fd_between(test.images, interp, fd_fn) if fd_fn is not None else math.nan
    row["swd_interpolated"] = swd_between(test.images, interp)
    row["n"], row["n_interpolated"] = len(test), len(interp)
    noise = latent.parts.get("noise", {})
    row["noise_layers"] = list(noise)
    row["noise_std"] = {k: float(v.std()) for k, v in noise.items()}
    strip = torch.cat([test.images[:1], recon[:1], interp[: len(TS)], recon[1:2], test.images[1:2]])
    return row, {"strip": strip}


def figures(results: dict, out: Path, strips: dict[int, torch.Tensor]) -> dict[str, str]:
    from idinvert_plugins.evaluation.plots import labelled_grid, line_plot, tile_pngs

    runs = results["runs"]
    pix = {f"k={k}": (r["curve"]["kimg"], r["curve"]["pix"]) for k, r in runs.items()}
    held = {f"k={k}": (r["curve"]["kimg"], r["curve"]["eval_mse"]) for k, r in runs.items()}
    tmp = out / f".{STEM}-plots"
    plots = [line_plot(pix, tmp / "pix.png", title="training loss (pixel MSE per log window)",
                       xlabel="kimg (fine-tuning)", ylabel="MSE", size=(480, 340)),
             line_plot(held, tmp / "eval.png", title="held-out reconstruction MSE", xlabel="kimg (fine-tuning)",
                       ylabel="MSE", size=(480, 340))]
    loss_png = tile_pngs(plots, out / f"{STEM}-loss.png", cols=2)
    for p in plots:
        p.unlink()
    tmp.rmdir()
    ks = list(strips)
    scale = max(1, 96 // int(strips[ks[0]].shape[-1]))
    grid = labelled_grid(torch.cat([strips[k] for k in ks]), len(ks), strips[ks[0]].shape[0],
                         out / f"{STEM}-interpolation.png", row_labels=[f"k={k}" for k in ks],
                         col_labels=["input A", "rec. A", *(f"t={t:g}" for t in TS), "rec. B", "input B"],
                         scale=scale)  # fmt: skip
    return {"loss": loss_png.name, "interpolation": grid.name}


def table(results: dict) -> list[str]:
    """The Table VI-shaped markdown table."""
    def num(v: float, fmt: str) -> str:
        return "-" if v is None or not math.isfinite(v) else fmt.format(v)

    lines = ["| k | noise maps predicted | MSE ↓ | SSIM ↑ | interp. FD ↓ | interp. SWD ↓ | MSE, stored noise | "
             "final train loss |", "|---|---|---|---|---|---|---|---|"]
    for k, r in results["rows"].items():
        blocks = "none (W+ only)" if int(k) == 0 else f"B-1 .. B-{k} ({len(r['noise_layers'])} maps)"
        pix = results["runs"][k]["curve"]["pix"]
        lines.append(f"| {k} | {blocks} | {num(r['mse'], '{:.4f}')} | {num(r['ssim'], '{:.3f}')} | "
                     f"{num(r['fd_interpolated'], '{:.3f}')} | {num(r['swd_interpolated'], '{:.1f}')} | "
                     f"{num(r['mse_stored_noise'], '{:.4f}')} | {num(pix[-1] if pix else None, '{:.4f}')} |")
    return lines


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train, measure and write everything; returns the results (also written as JSON)."""
    from idinvert_plugins.domains import get_domain
    from idinvert_plugins.evaluation.inversions import load_test_images
    from idinvert_plugins.evaluation.tables import fd_name
    from idinvert_plugins.features import frechet_features
    from idinvert_plugins.hub import load_encoder, load_generator, load_model
    from idinvert_plugins.training.loop import parse_overrides

    t_start = time.perf_counter()
    overrides = parse_overrides(args.set)
    G = load_generator(args.generator).eval()
    ks = resolve_ks(args.ks, G)
    dom = get_domain(None)
    name = dom.classifier if args.classifier == "domain" else (None if args.classifier == "none" else args.classifier)
    fd_fn = frechet_features(load_model(name, kind="classifier"), "pool", name=fd_name(dom)) if name else None
    test = load_test_images(args.n, G.resolution)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"generator": args.generator, "ks": ks, "kimg": args.kimg, "n": len(test),
                               "first_index": test.indices[0], "ts": list(TS), "fd": fd_name(dom) if fd_fn else None,
                               "runs": {}, "rows": {}}  # fmt: skip
    strips = {}
    for k in ks:
        folder, info = train_k(k, args, overrides)
        E = load_encoder(folder)
        info["curve"] = loss_curve(Path(args.runs) / f"k{k}")
        row, extra = measure(G, E, test, fd_fn, args.batch)
        results["runs"][str(k)], results["rows"][str(k)] = info, row
        strips[k] = extra["strip"]
        log(f"k={k}: MSE {row['mse']:.4f}, SSIM {row['ssim']:.3f}, interpolation FD {row['fd_interpolated']:.3f}, "
            f"SWD {row['swd_interpolated']:.1f}")
    results["figures"] = figures(results, out, strips)
    results["seconds"] = time.perf_counter() - t_start
    results["command"] = "OMP_NUM_THREADS=1 python benchmarks/noise_encoder.py " + shlex.join(getattr(args, "argv", []))
    lines = table(results)
    (out / f"{STEM}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    fd = results["fd"] or "FD (not measured)"
    page = [f"# The noise-space encoder (IDInvert Sec. VI-C): Table VI and Fig. 14a on `{args.generator}`", "",
            f"`{results['command']}` ({results['seconds'] / 60:.1f} min on this run, {args.threads} thread(s); every "
            f"number in `{STEM}.json`).", "",
            f"Each k fine-tuned from `{args.init_encoder or args.generator + '-encoder'}` for {args.kimg:g} kimg "
            f"(objective `noise`). Reconstruction of the first {len(test)} held-out test faces (Table I's); "
            f"interpolation: each face's latent and the next face's mixed at t = {', '.join(map(str, TS))} "
            f"(codes and noise maps), {fd} and SWD (x 1e3) against the real test faces. *MSE, stored noise*: the "
            "same W+ codes rendered with the generator's own noise maps. *Final train loss*: the pixel MSE of the "
            "last log window.", "", *lines, "",
            f"![Fig. 14a: training loss per k]({results['figures']['loss']})", "",
            f"![interpolations per k]({results['figures']['interpolation']})", ""]
    (out / f"{STEM}.md").write_text("\n".join(page))
    print("\n".join(lines), flush=True)
    log(f"wrote {out / (STEM + '.md')}, {out / (STEM + '.json')} and the figures in {results['seconds'] / 60:.1f} min")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
