"""The ``idinvert evaluate`` subcommand (registered by :func:`add_parser` from ``idinvert_plugins.cli``)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from .inversions import DEFAULT_CACHE
from .runner import FROM_DOMAIN, SECTIONS, EvalConfig


def _sections(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in parts if p not in SECTIONS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"--only takes a comma-separated list of {', '.join(SECTIONS)}; got {text!r}")
    return parts


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0,0.5,2,10,40; got {text!r}"
                                         ) from None


#: What ``--quick`` caps (the sizes that make a run long), with the flag that sets each.
QUICK_CAPS = {"n": "--n", "steps": "--steps", "i2s_steps": "--i2s-steps", "ldom_n": "--ldom-n"}
DEFAULT_OUT, QUICK_OUT = "runs/evaluate", "runs/evaluate-quick"


def quick_caps(args: argparse.Namespace) -> list[str]:
    """The given sizes that ``--quick`` lowered, e.g. ``["--n 500 -> 8"]`` (empty without ``--quick``)."""
    if not args.quick:
        return []
    small = EvalConfig.quick()
    out = []
    for key, flag in QUICK_CAPS.items():
        given, cap = getattr(args, key), getattr(small, key) if key != "i2s_steps" else small.steps
        if given is not None and given > cap:
            out.append(f"{flag} {given} -> {cap}")
    return out


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The run's :class:`EvalConfig`. ``--quick`` is a few minutes whatever else is given: it caps the image
    counts and step counts at its small values (a smaller explicit value is kept), so appending ``--quick`` to a
    full command sizes it; other options apply as given."""
    given: dict[str, Any] = {k: v for k, v in {
        "n": args.n, "steps": args.steps, "i2s_steps": args.i2s_steps, "l_dom": args.l_dom,
        "ldom_values": args.ldom_values, "ldom_n": args.ldom_n, "edit_step": args.edit_step, "batch": args.batch,
        "sections": args.only, "seed": args.seed, "spread_images": args.spread_images,
    }.items() if v is not None}  # fmt: skip
    if not args.quick:
        return EvalConfig(**given)
    small = EvalConfig.quick()
    for key in QUICK_CAPS:
        cap = small.steps if key == "i2s_steps" else getattr(small, key)
        if key in given:
            given[key] = min(given[key], cap)
    return EvalConfig.quick(**given)


def output_paths(args: argparse.Namespace) -> tuple[str, str]:
    """``(out, report)``: ``--out`` (default ``runs/evaluate``, ``runs/evaluate-quick`` with ``--quick``) and
    ``--report`` (default ``OUT/results.md``). Nothing is written elsewhere unless asked: the project's page is
    regenerated with ``--out docs/results --report docs/results.md``."""
    out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    return out, args.report or str(Path(out) / "results.md")


def _command(args: argparse.Namespace, out: str, report: str) -> str:
    """The command line as parsed (for the report header)."""
    parts = ["idinvert", "evaluate"]
    for flag, values in (("--generator", args.generator), ("--encoder", args.encoder),
                         ("--conventional-encoder", args.conventional_encoder)):
        for v in values or ():
            parts += [flag, str(v)]
    parts += ["--quick"] if args.quick else []
    for flag, value in (("--n", args.n), ("--steps", args.steps), ("--i2s-steps", args.i2s_steps),
                        ("--l-dom", args.l_dom), ("--ldom-n", args.ldom_n), ("--edit-step", args.edit_step),
                        ("--batch", args.batch), ("--seed", args.seed), ("--spread-images", args.spread_images)):
        if value is not None:
            parts += [flag, str(value)]
    if args.ldom_values is not None:
        parts += ["--ldom-values", ",".join(f"{v:g}" for v in args.ldom_values)]
    if args.only is not None:
        parts += ["--only", ",".join(args.only)]
    for flag, value in (("--classifier", args.classifier), ("--feature-net", args.feature_net), ("--out", out),
                        ("--report", report), ("--cache", args.cache), ("--device", args.device)):
        parts += [flag, str(value)]
    return shlex.join(parts)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .runner import run_evaluation

    cfg = config_from_args(args)
    out, report = output_paths(args)
    command = _command(args, out, report)
    i2s = cfg.steps if cfg.i2s_steps is None else cfg.i2s_steps
    caps = quick_caps(args)
    print(f"evaluating {', '.join(args.generator)}: {cfg.n} test images, {cfg.steps} IDInvert / {i2s} Image2StyleGAN "
          f"steps, {cfg.ldom_n} images in the l_dom sweep, sections {', '.join(cfg.sections)}"
          + (" (--quick: a size check, not results" + (f"; capped {', '.join(caps)}" if caps else "") + ")"
             if args.quick else "") + f"; writing {report} and {out}/")
    results = run_evaluation(
        args.generator, encoders=args.encoder or (), conventional_encoders=args.conventional_encoder or (),
        classifier=None if args.classifier.lower() == "none" else args.classifier,
        feature_net=None if args.feature_net.lower() == "none" else args.feature_net, domain=args.domain, out_dir=out,
        report=report, cache_dir=None if args.cache.lower() == "none" else args.cache, config=cfg,
        device=args.device, command=command, progress=True,
    )  # fmt: skip
    for name, g in results["generators"].items():
        if name not in args.generator:
            continue
        print(f"{name}: {g['n']} test images, methods {', '.join(g['methods'])}; "
              f"{g['wall_seconds'] / 60:.1f} min")
        for note in g["notes"]:
            print(f"  note: {note}")
    print(f"wrote {report} and {out}/results.json (figures in {out}/figures)")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``evaluate`` to the ``idinvert`` subcommands."""
    d = EvalConfig()
    p = sub.add_parser(
        "evaluate", help="the paper's tables on a domain's test split: reconstruction (Table I), semantic "
                         "property (Fig. 3), l_dom sweep (Fig. 10), editability (Table II); writes a markdown report",
        description="Invert the first N test images of the domain (--domain; default: the default domain) with the "
                    "conventional encoder, the domain-guided "
                    "encoder, Image2StyleGAN and IDInvert, measure, and write a report + figures (under runs/ "
                    "unless --out/--report say otherwise). Inverted "
                    "codes are cached per method (--cache), so an interrupted run resumes and a larger --n extends "
                    "a smaller one; the cache is `idinvert bench`'s, so a method either command inverted is not "
                    "inverted again.")  # fmt: skip
    p.add_argument("--generator", action="append", required=True, metavar="NAME",
                   help="generator to evaluate (named model, Hub id or folder; repeatable)")
    p.add_argument("--encoder", action="append", metavar="NAME",
                   help="domain-guided encoder, one per --generator in order (default: GENERATOR-encoder; "
                        "'none' skips it)")
    p.add_argument("--conventional-encoder", action="append", metavar="NAME",
                   help="conventional encoder, one per --generator (default: GENERATOR-encoder-conventional)")
    p.add_argument("--domain", default=None,
                   help="the registered domain whose test split is inverted (default: the default domain; "
                        "`idinvert plugins` lists them)")
    p.add_argument("--classifier", default=FROM_DOMAIN,
                   help="attribute classifier: Fréchet-distance features and editability scores (default 'domain': "
                        "the domain's classifier; 'auto': each generator's pipeline's; 'none' skips)")
    p.add_argument("--feature-net", default=FROM_DOMAIN,
                   help="perceptual network of the optimisers (default 'domain': the domain's; 'auto': each "
                        "generator's pipeline's; 'none': pixel loss only)")
    p.add_argument("--n", type=int, default=None, help=f"test images (default {d.n}; the split has 5000)")
    p.add_argument("--steps", type=int, default=None, help=f"IDInvert optimisation steps (default {d.steps})")
    p.add_argument("--i2s-steps", type=int, default=None, help="Image2StyleGAN steps (default: same as --steps)")
    p.add_argument("--l-dom", type=float, default=None, help=f"IDInvert domain-regulariser weight (default {d.l_dom})")
    p.add_argument("--ldom-values", type=_floats, default=None,
                   help="l_dom values of the sweep (default " + ",".join(f"{v:g}" for v in d.ldom_values) + ")")
    p.add_argument("--ldom-n", type=int, default=None, help=f"test images in the l_dom sweep (default {d.ldom_n})")
    p.add_argument("--edit-step", type=float, default=None,
                   help=f"manipulation step along the unit directions (default {d.edit_step})")
    p.add_argument("--batch", type=int, default=None, help=f"images per inversion call (default {d.batch})")
    p.add_argument("--seed", type=int, default=None, help="the domain's dataset seed (default 0)")
    p.add_argument("--spread-images", type=int, default=None,
                   help="real test images the attribute spreads (the unit of the editability's changes) are "
                        f"measured on; the test images themselves when fewer (default {d.spread_images}; "
                        "`idinvert bench --quick` uses 0)")
    p.add_argument("--only", type=_sections, default=None, help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true",
                   help="a few minutes, to size a real run: at most 8 images, 10 steps, 4 in the l_dom sweep (caps "
                        "larger --n/--steps/--i2s-steps/--ldom-n); default --out " + QUICK_OUT)
    p.add_argument("--out", default=None,
                   help=f"folder for results.json and figures/ (default {DEFAULT_OUT}; the project's page: "
                        "--out docs/results --report docs/results.md)")
    p.add_argument("--report", default=None, help="the markdown report to (re)write (default OUT/results.md)")
    p.add_argument("--cache", default=DEFAULT_CACHE,
                   help="folder for the cached inversions, shared with `idinvert bench` (default %(default)s: "
                        "either command reuses the other's inversions of the same images; 'none': no cache)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_evaluate)
