"""The ``idinvert bench`` subcommand (added by the built-in plugin ``idinvert_plugins.builtins.metrics`` through
the ``register_commands`` hook)."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from .bench import BenchConfig
from .inversions import DEFAULT_CACHE

DEFAULT_OUT, QUICK_OUT = "runs/bench", "runs/bench-quick"


def _names(text: str) -> tuple[str, ...] | None:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    if not parts:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of names or 'all', got {text!r}")
    return None if parts == ("all",) else parts


def _option(text: str) -> tuple[str, str, Any]:
    method, sep, rest = text.partition(":")
    key, eq, value = rest.partition("=")
    if not (sep and eq and method and key):
        raise argparse.ArgumentTypeError(f"--set takes METHOD:KEY=VALUE (e.g. image2stylegan:lr=0.02 or "
                                         f"idinvert:domain-regularized.steps=50), got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return method, key, parsed


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The run's :class:`BenchConfig`; ``--quick`` caps images and steps at its small values."""
    options: dict[str, dict[str, Any]] = {}
    for method, key, value in args.set or ():
        options.setdefault(method, {})[key] = value
    given = {"n": args.n, "methods": args.methods, "directions": args.editors, "metrics": args.metrics,
             "steps": args.steps, "edit_step": args.edit_step, "batch": args.batch, "seed": args.seed,
             "spread_images": args.spread_images, "options": options}
    given = {k: v for k, v in given.items() if v is not None}
    return BenchConfig.quick(**given) if args.quick else BenchConfig(**given)


def _command(args: argparse.Namespace, out: str, report: str) -> str:
    parts = ["idinvert"]
    for d in getattr(args, "plugins_dir", None) or ():
        parts += ["--plugins-dir", str(d)]
    parts += ["bench"]
    for g in args.generator:
        parts += ["--generator", g]
    for flag, value in (("--methods", args.methods), ("--editors", args.editors), ("--metrics", args.metrics)):
        if value is not None:
            parts += [flag, ",".join(value)]
    parts += ["--quick"] if args.quick else []
    for flag, value in (("--n", args.n), ("--steps", args.steps), ("--edit-step", args.edit_step),
                        ("--batch", args.batch), ("--seed", args.seed), ("--spread-images", args.spread_images),
                        ("--images", args.images)):
        if value is not None:
            parts += [flag, str(value)]
    for method, key, value in args.set or ():
        parts += ["--set", f"{method}:{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    parts += ["--out", out, "--report", report, "--cache", args.cache, "--device", args.device]
    return shlex.join(parts)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    cfg = config_from_args(args)
    out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    report = args.report or str(Path(out) / "leaderboard.md")
    steps = f"{cfg.steps} steps" if cfg.steps is not None else "each method's default steps" + (
        f" (at most {cfg.max_steps})" if cfg.max_steps is not None else "")
    print(f"benchmarking {', '.join(args.generator)}: {cfg.n} held-out images, {steps}, methods "
          f"{', '.join(cfg.methods) if cfg.methods else 'all registered'}"
          + (" (--quick: a size check, not results)" if args.quick else "") + f"; writing {report} and {out}/")
    results = run_bench(args.generator, cfg=cfg, out_dir=out, report=report,
                        cache_dir=None if args.cache.lower() == "none" else args.cache, images=args.images,
                        device=args.device, command=_command(args, out, report), progress=not args.no_progress)
    for name in args.generator:
        gen = results["generators"][name]
        rows = gen["rows"]
        inverted = [k for k, r in rows.items() if r["reused"] < r["n"]]
        print(f"{name}: {len(rows)} methods ({', '.join(rows)}); inverted anew: {', '.join(inverted) or 'none'}; "
              f"Pareto front: {', '.join(gen['pareto']) or 'n/a'}; {gen['wall_seconds']:.1f} s")
        for k, why in gen["skipped"].items():
            print(f"  not benchmarked: {k}: {why}")
    print(f"wrote {report}, {out}/leaderboard.json and the Pareto plots in {out}/")
    return 0


def add_bench_command(cli: Any) -> None:
    """Add ``bench`` to the ``idinvert`` subcommands."""
    d = BenchConfig()
    p = cli.add_parser(
        "bench", help="one leaderboard of every registered inversion method (built-in or plugin) on the same "
                      "held-out images: fidelity, realism, attributes, editability, cost; Pareto plot and JSON",
        description="Run every registered inversion method (each named composition, plugins included) on the same "
                    "held-out images of each generator, measure them with every registered metric (`idinvert "
                    "plugins` lists both) and write a markdown leaderboard, a Pareto plot of fidelity against "
                    "editability and a JSON file. Inversions are cached per method (--cache): a rerun inverts only "
                    "what changed.")  # fmt: skip
    p.add_argument("--generator", action="append", required=True, metavar="NAME",
                   help="generator with a pipeline (named model, folder or Hub id; repeatable)")
    p.add_argument("--methods", type=_names, default=None, metavar="all|LIST",
                   help="comma-separated inverters (default all: every registered one but the restoration tasks)")
    p.add_argument("--editors", type=_names, default=None, metavar="all|LIST",
                   help="the generator's attribute directions whose edits are measured (default all that the "
                        "classifier reads)")
    p.add_argument("--metrics", type=_names, default=None, metavar="all|LIST", help="registered metrics (default all)")
    p.add_argument("--n", type=int, default=None, help=f"held-out images (default {d.n})")
    p.add_argument("--steps", type=int, default=None,
                   help="steps of every method that declares steps (default: each method's own)")
    p.add_argument("--set", action="append", type=_option, metavar="METHOD:KEY=VALUE",
                   help="an option of one method, e.g. image2stylegan:lr=0.02 (repeatable)")
    p.add_argument("--edit-step", type=float, default=None, help=f"edit step along the directions (default "
                                                                  f"{d.edit_step:g})")
    p.add_argument("--batch", type=int, default=None, help=f"images per inversion call (default {d.batch})")
    p.add_argument("--seed", type=int, default=None, help="the domain's dataset seed (default 0)")
    p.add_argument("--spread-images", type=int, default=None,
                   help="real test images the attribute spreads (the unit of the cross-talk) are measured on; the "
                        f"test images themselves when fewer (default {d.spread_images}; --quick: 0)")
    p.add_argument("--images", default=None, metavar="DIR",
                   help="invert the first N images of this folder instead of the domain's test split")
    p.add_argument("--quick", action="store_true",
                   help="a size check: at most 4 images and 5 steps per method; default --out " + QUICK_OUT)
    p.add_argument("--out", default=None, help=f"folder for leaderboard.json and the plots (default {DEFAULT_OUT}; "
                                               "the project's page: --out docs/leaderboard --report "
                                               "docs/leaderboard.md)")
    p.add_argument("--report", default=None, help="the markdown leaderboard to (re)write (default OUT/leaderboard.md)")
    p.add_argument("--cache", default=DEFAULT_CACHE,
                   help="folder for the cached inversions, shared with `idinvert evaluate` (default %(default)s; "
                        "'none': no cache)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_bench)
