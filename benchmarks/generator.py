"""Synthesis throughput of the generator backends on this machine.

For StyleGAN (v1, IDInvert layout) and StyleGAN2, at 64x64 (the bundled toy-face size) and 256x256 (the
released FFHQ channel configuration), random init: images/s at batch 1, 8 and 32, forward only and forward
+ backward w.r.t. the W+ code (what one inversion step costs in the generator). Prints a markdown table of
medians over ``--repeats`` timed runs (after one warm-up), all configurations in one run.

    python benchmarks/generator.py [--repeats 3] [--batches 1,8,32] [--threads 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from idinvert_plugins.models.stylegan import StyleGANGenerator
from idinvert_plugins.models.stylegan2 import StyleGAN2Generator

CONFIGS = {
    # the bundled toy-face models' shapes (see idinvert_plugins/training/gan.py presets)
    ("stylegan", 64): dict(resolution=64, z_dim=256, w_dim=256, channel_base=1024, channel_max=128,
                           repeat_w=False, final_tanh=True),
    ("stylegan2", 64): dict(resolution=64, z_dim=256, w_dim=256,
                            channels={"4": 128, "8": 128, "16": 64, "32": 32, "64": 16}),
    # released FFHQ 256 configurations: IDInvert styleganinv_ffhq256, StyleGAN2 config-f at 256
    ("stylegan", 256): dict(resolution=256, channel_base=16384, channel_max=512, repeat_w=False, final_tanh=True),
    ("stylegan2", 256): dict(resolution=256, channel_base=32768, channel_max=512),
}


def build(arch: str, kwargs: dict) -> torch.nn.Module:
    cls = StyleGANGenerator if arch == "stylegan" else StyleGAN2Generator
    return cls(**kwargs).eval().requires_grad_(False)


def time_once(G, batch: int, backward: bool) -> float:
    ws = G.w_avg.expand(batch, G.num_layers, -1).clone() + 0.1 * torch.randn(batch, G.num_layers, G.w_dim)
    if backward:
        ws.requires_grad_(True)
        t0 = time.perf_counter()
        img = G.synthesis(ws)
        img.square().mean().backward()
        return time.perf_counter() - t0
    with torch.no_grad():
        t0 = time.perf_counter()
        G.synthesis(ws)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    ap.add_argument("--only", default="", help="e.g. 'stylegan2:64' to run one configuration")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    print(f"# generator benchmark: {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"torch {torch.__version__}, median of {args.repeats} after {args.warmup} warm-up")
    print("| backend | res | params (M) | batch | forward img/s | fwd+bwd(ws) img/s | fwd+bwd s/step |")
    print("|---|---|---|---|---|---|---|")
    for (arch, res), kwargs in CONFIGS.items():
        if args.only and args.only != f"{arch}:{res}":
            continue
        torch.manual_seed(0)
        G = build(arch, kwargs)
        n_params = sum(p.numel() for p in G.parameters()) / 1e6
        for batch in batches:
            row = []
            for backward in (False, True):
                for _ in range(args.warmup):
                    time_once(G, batch, backward)
                times = [time_once(G, batch, backward) for _ in range(args.repeats)]
                row.append(statistics.median(times))
            print(f"| {arch} | {res} | {n_params:.1f} | {batch} | {batch / row[0]:.1f} | {batch / row[1]:.1f} | "
                  f"{row[1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
