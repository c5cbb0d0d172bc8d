"""Inversion speed on this machine: seconds per optimisation step and per image, methods side by side.

Models (all three methods each: the encoder alone, Image2StyleGAN, IDInvert):

* the bundled toy-face generators by name (``--models``, default ``toyfaces-stylegan2-64,toyfaces-stylegan-64``),
  with their domain-guided encoders (``NAME-encoder``) and the toy-face classifier (``stage2``) as the
  perceptual network. A model that is not bundled is skipped with a message; without its encoder only
  Image2StyleGAN is timed;
* ``stylegan-256-ffhq`` (``--no-256`` leaves it out): StyleGAN v1 at 256x256 in the released IDInvert FFHQ
  configuration (``styleganinv_ffhq256``: channel_base 16384, max 512, a w per layer, 14 x 512 W+) with the
  released encoder configuration (channels 64 .. 1024) and VGG16 up to conv4_3 (weight 5e-5), all with random
  weights (speed does not depend on the values).

For each model, method and batch size ``t(S)`` is the wall time of one ``invert()`` call with ``S`` steps
(``--steps``) and ``t(0)`` that of a call with no step (encoding, rendering and the final loss). Reported:
``s/step = (t(S) - t(0)) / S`` for the batch, per image, and the seconds per image of a full
``--full-steps``-step inversion extrapolated as ``(t(0) + full_steps * s/step) / batch``. Medians of
``--repeats`` timed runs after ``--warmup`` untimed ones. Prints a markdown table.

``--precision`` times the optimisers in several arithmetic settings side by side: ``fp32``; ``bf16-features``
(the perceptual network under bfloat16 autocast, ``feature_autocast``); ``bf16`` (generator, encoder and
perceptual network, ``autocast``). The column "loss vs fp32" is the relative difference of the final total loss
(always evaluated in float32) after the timed steps from the same run in fp32.

    python benchmarks/inversion.py [--batches 1,4,16] [--repeats 3] [--steps 5] [--threads 2]
    python benchmarks/inversion.py --models '' --batches 1 --precision fp32,bf16-features,bf16
    python benchmarks/inversion.py --quick          # batch 1, 2 steps, 1 repeat, no warm-up
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import idinvert_plugins as ip
from idinvert_plugins.hub import ModelNotFoundError, default_encoder, encoder_name
from idinvert_plugins.losses import VGG16Perceptual, load_feature_network
from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder
from idinvert_plugins.models.stylegan import StyleGANGenerator
from idinvert_plugins.models.vgg import VGG16Features

METHODS = ("encoder", "image2stylegan", "idinvert")
PRECISIONS = {
    "fp32": {},
    "bf16-features": {"feature_autocast": True},
    "bf16": {"autocast": True},
}


def released_256() -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """Random-weight StyleGAN v1 256, its encoder and VGG16 conv4_3, in the released IDInvert FFHQ shapes."""
    torch.manual_seed(0)
    G = StyleGANGenerator(resolution=256, channel_base=16384, channel_max=512, repeat_w=False, final_tanh=True)
    # A trained model tracks the mean code; a fresh one has w_avg = 0, where every feature map is constant
    # and AdaIN's backward divides by its zero spread (NaN), so Image2StyleGAN would start from a degenerate
    # point no real model has.
    with torch.no_grad():
        codes = G.mapping(G.sample_z(1000, seed=0))
        G.w_avg.copy_(codes.reshape(-1, G.w_avg.shape[-1]).mean(0))
    E = IDInvertEncoder(resolution=256, num_layers=G.num_layers, w_dim=G.w_dim, channel_base=64, channel_max=1024)
    return G.eval(), E.eval(), VGG16Perceptual(VGG16Features()).eval()


def bundled(name: str) -> tuple[torch.nn.Module, torch.nn.Module | None, torch.nn.Module] | None:
    """The named generator (or model folder), its encoder ``NAME-encoder`` (or None) and the classifier
    features; None if the generator is not there."""
    try:
        G = ip.load_generator(name)
    except ModelNotFoundError as err:
        print(f"<!-- skipped {name}: {str(err).splitlines()[0][:200]} -->", flush=True)
        return None
    encoder = default_encoder(name)
    if encoder is None:
        print(f"<!-- {name}: no encoder {encoder_name(name)}, timing Image2StyleGAN only -->", flush=True)
    E = ip.load_encoder(encoder) if encoder is not None else None
    return G, E, load_feature_network("classifier:toyfaces-classifier-64")


def time_call(method: str, G, E, F, images: torch.Tensor, steps: int, options: dict | None = None
              ) -> tuple[float, float]:
    """Wall time of one ``invert()`` call and the mean final total loss it reports (nan for the encoder)."""
    inverter = ip.get_inverter(method)
    options = {} if method == "encoder" else {"steps": steps, **(options or {})}
    t0 = time.perf_counter()
    result = inverter.invert(G, images, encoder=E, feature_net=F if inverter.uses_feature_net else None,
                             **options)  # fmt: skip
    elapsed = time.perf_counter() - t0
    total = result.final_losses.get("total") if result.final_losses else None
    return elapsed, statistics.fmean(total) if total else float("nan")


def median_time(method: str, G, E, F, images: torch.Tensor, steps: int, repeats: int, warmup: int,
                options: dict | None = None) -> tuple[float, float]:
    """Median wall time of ``repeats`` calls after ``warmup`` untimed ones, and the final loss of the last."""
    for _ in range(warmup):
        time_call(method, G, E, F, images, steps, options)
    runs = [time_call(method, G, E, F, images, steps, options) for _ in range(repeats)]
    return statistics.median(t for t, _ in runs), runs[-1][1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="toyfaces-stylegan2-64,toyfaces-stylegan-64",
                    help="bundled generators by name (comma-separated; '' for none)")
    ap.add_argument("--no-256", action="store_true", help="leave out the 256x256 released-configuration model")
    ap.add_argument("--batches", default="1,4,16")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--steps", type=int, default=5, help="optimisation steps per timed call")
    ap.add_argument("--full-steps", type=int, default=100, help="steps of the extrapolated full inversion")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--precision", default="fp32",
                    help=f"comma-separated settings of the optimisers, from {', '.join(PRECISIONS)}")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--quick", action="store_true", help="batch 1, 2 steps, 1 repeat, no warm-up (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.batches, args.steps, args.repeats, args.warmup = "1", 2, 1, 0
    if args.steps < 1 or args.repeats < 1:
        ap.error("--steps and --repeats must be at least 1")
    torch.set_num_threads(args.threads)
    ip.get_plugins()  # plugin discovery happens once, before any timing
    batches = [int(b) for b in args.batches.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    precisions = [p for p in args.precision.split(",") if p]
    if not precisions or any(p not in PRECISIONS for p in precisions):
        ap.error(f"--precision takes a comma-separated list of {', '.join(PRECISIONS)}, got {args.precision!r}")

    models: list[tuple[str, tuple]] = []
    for name in [n for n in args.models.split(",") if n]:
        loaded = bundled(name)
        if loaded is not None:
            models.append((name, loaded))
    if not args.no_256:
        models.append(("stylegan-256-ffhq (random init)", released_256()))

    print(f"# inversion benchmark: {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"torch {torch.__version__}; median of {args.repeats} after {args.warmup} warm-up; "
          f"{args.steps} timed steps, s/img extrapolated to {args.full_steps} steps")
    print("| model | method | precision | batch | s/step | s/step/img | s/img (encoder: measured) | loss vs fp32 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (G, E, F) in models:
        for batch in batches:
            with torch.no_grad():
                images = G.synthesis(G.mapping(G.sample_z(batch, seed=1)), noise_mode="const").clamp(-1, 1)
            for method in methods:
                if method in ("encoder", "idinvert") and E is None:
                    continue
                if method == "encoder":
                    t, _ = median_time(method, G, E, F, images, 0, args.repeats, args.warmup)
                    print(f"| {name} | {method} | - | {batch} | - | - | {t / batch:.4f} | - |", flush=True)
                    continue
                reference = None
                for precision in precisions:
                    options = PRECISIONS[precision]
                    t0, _ = median_time(method, G, E, F, images, 0, args.repeats, args.warmup, options)
                    ts, loss = median_time(method, G, E, F, images, args.steps, args.repeats, args.warmup, options)
                    if precision == "fp32":
                        reference = loss
                    rel = f"{(loss - reference) / reference:+.2%}" if reference else "-"
                    per_step = max(ts - t0, 0.0) / args.steps
                    full = (t0 + args.full_steps * per_step) / batch
                    print(f"| {name} | {method} | {precision} | {batch} | {per_step:.4f} | {per_step / batch:.4f} "
                          f"| {full:.3f} | {rel} |", flush=True)


if __name__ == "__main__":
    main()
