"""The ``idinvert`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .cli_common import (  # noqa: F401  (re-exported: tests and plugins use cli.invert_images)
    FEATURE_NET_HELP,
    composed_method,
    invert_images,
    parse_seeds,
    pipeline_from_args,
)


# -- commands -------------------------------------------------------------------------------------------
def cmd_plugins(args: argparse.Namespace) -> int:
    from .plugins import get_plugins

    plugins = get_plugins()
    if args.json:
        print(json.dumps({
            "plugins": plugins.plugin_list(),
            "items": [{"kind": r.kind, "name": r.name, "plugin": r.plugin, "source": r.source}
                      for r in plugins.registered()],
            "problems": [p.__dict__ for p in plugins.problems],
        }, indent=2))
        return 0
    print("Plugins:")
    for p in plugins.plugin_list():
        print(f"  {p['name']}  [{p['source']}]  hooks: {', '.join(p['hooks']) or '-'}")
    for kind, title in PLUGIN_KINDS:
        items = plugins.registered(kind)
        if not items:
            continue
        print(f"\n{title}:")
        for r in items:
            desc, params = _summary(r.obj)
            print(f"  {r.name:<20} {desc}  [{r.plugin.removeprefix('idinvert_plugins.builtins.')}]")
            if params:
                print(f"  {'':<20}   options: {params}")
    others = [k for k in sorted(plugins.items) if k not in dict(PLUGIN_KINDS) and plugins.items[k]]
    for kind in others:
        print(f"\n{kind}:")
        for r in plugins.registered(kind):
            print(f"  {r.name:<22} [{r.plugin}]")
    if plugins.problems:
        print("\nProblems:")
        for prob in plugins.problems:
            print(f"  - {prob}")
    return 0


#: the kinds ``idinvert plugins`` lists, in this order, with their headings
PLUGIN_KINDS: tuple[tuple[str, str], ...] = (
    ("embedder", "Embedders (first stage of inversion: --embed)"),
    ("refiner", "Refiners (later stages: --refine A,B)"),
    ("inverter", "Methods (named compositions: --method)"),
    ("latent_part", "Latent parts (what a latent keeps besides W+)"),
    ("aligner", "Aligners (photos: idinvert align / invert|edit --align --aligner NAME)"),
    ("editor", "Editors (idinvert edit --editor NAME --set KEY=VALUE)"),
    ("command", "Commands added by plugins"),
    ("generator", "Generator backends"),
    ("latent_space", "Latent spaces"),
    ("converter", "Checkpoint converters"),
    ("domain", "Image domains (attributes, test images, default networks)"),
    ("metric", "Metrics (idinvert bench)"),
    ("loss_network", "Loss networks (feature_net=NAME:PATH_OR_HUB_ID, id_net=NAME:PATH_OR_HUB_ID)"),
)


def _summary(obj: Any) -> tuple[str, str]:
    """A registered item's one-line description and its parameters (``name=default``)."""
    if isinstance(obj, argparse.ArgumentParser):
        return (obj.description or obj.format_usage().strip()), ""
    try:
        params = ", ".join(f"{p.name}={p.default}" if p.default is not None else p.name
                           for p in getattr(obj, "params", ()))
    except Exception as exc:  # noqa: BLE001 - a composition whose stage is missing
        params = f"(unavailable: {exc})"
    desc = getattr(obj, "description", "") or (obj.__doc__ or "").strip().split("\n")[0]
    from .align.base import Aligner

    reason = obj.unavailable() if isinstance(obj, Aligner) else None  # one that needs a package says so
    if reason:
        desc += f" [not available here: {reason}]"
    from .losses.networks import LossNetwork

    if isinstance(obj, LossNetwork):  # its kind, and the weights it needs
        desc = f"{obj.kind}: {desc}" + (f" [weights: {obj.weights}]" if obj.weights else " [no weights file]")
    return desc, params


def cmd_models(args: argparse.Namespace) -> int:
    from .hub import list_models

    for m in list_models():
        where = "bundled" if m["bundled"] else (f"hub {m['repo_id']}" if m["repo_id"] else "not available here")
        print(f"{m['name']:<32} {m['kind'] or '?':<14} {m['architecture'] or '?':<24} {m['resolution'] or ''}  "
              f"[{where}]")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .hub import build_model, read_config, resolve_model

    resolved = resolve_model(args.name, revision=args.revision)
    config = read_config(resolved.folder)
    model = build_model(config)
    n_params = sum(p.numel() for p in model.parameters())
    info = {"name": resolved.name, "origin": resolved.origin, "folder": str(resolved.folder),
            "kind": config["kind"], "architecture": config["architecture"], "parameters": n_params,
            "args": config["args"]}
    if resolved.repo_id:
        info.update(repo_id=resolved.repo_id, revision=resolved.revision, commit=resolved.commit)
    for attr in ("resolution", "num_layers", "w_dim", "z_dim", "has_w_space"):
        if hasattr(model, attr):
            info[attr] = getattr(model, attr)
    if resolved.card is not None:
        info["card"] = {k: v for k, v in resolved.card.data.items() if k not in ("name",)}
    if config["kind"] == "generator":  # what goes with it: its pipeline.json, or what the naming rules give
        from .pipeline import pipeline_info

        info["pipeline"] = pipeline_info(args.name, revision=args.revision)
    print(json.dumps(info, indent=2, default=str))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .hub import load_generator
    from .images import make_grid, save_image

    G = load_generator(args.name, revision=args.revision, device=args.device)
    psi = args.truncation if args.truncation is not None else 1.0
    cutoff = args.truncation_cutoff
    if cutoff is None and args.truncation is not None:
        cutoff = G.config.get("truncation_layers")  # StyleGAN v1 (IDInvert) truncates the first 8 layers only
    images = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in tqdm(range(0, len(args.seeds), args.batch), desc="generate", unit="batch",
                          disable=not sys.stderr.isatty() and not args.progress):
            seeds = args.seeds[start : start + args.batch]
            z = torch.cat([G.sample_z(1, seed=s, device=args.device) for s in seeds])
            images.append(G(z, truncation_psi=psi, truncation_cutoff=cutoff, noise_mode=args.noise_mode).cpu())
    batch = torch.cat(images)
    out = save_image(make_grid(batch, nrow=args.nrow), args.output)
    print(f"wrote {out} ({len(args.seeds)} images at {G.resolution}x{G.resolution}, "
          f"{time.perf_counter() - t0:.2f} s)")
    return 0


def cmd_invert(args: argparse.Namespace) -> int:
    from .codes import save_latent
    from .domain import warn_out_of_domain
    from .images import save_image
    from .metrics import mse
    from .params import parse_assignments

    pipe = pipeline_from_args(args.name, args)
    from .cli_folders import invert_folder, is_folder_run

    if is_folder_run(args.images):  # a folder: batched, resumable, results.csv; torchrun shards it
        return invert_folder(pipe, args)
    if args.align:  # photos: align the faces, invert the crops, paste the reconstructions back
        from .align.commands import invert_photos

        return invert_photos(pipe, args)
    paths = [Path(p) for p in args.images]
    images, result = invert_images(pipe, paths, method=args.method, steps=args.steps, crop=args.crop,
                                   bf16=args.bf16, embed=args.embed, refine=args.refine,
                                   options=parse_assignments(args.set))
    method = result.info.get("inverter", args.method)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    errors = mse(result.images.to(images), images)
    latent = result.latent
    for i, (path, image, err) in enumerate(zip(paths, result.images, errors)):
        save_image(image, out / f"{path.stem}.png")
        save_latent(latent[i], out / f"{path.stem}.safetensors", generator=pipe.name, method=method)
        print(f"{path.name}: mse {float(err):.5f}  -> {out / path.stem}.png, .safetensors")
        warn_out_of_domain(pipe, method, path.name, float(err))
    if latent.parts:
        print(f"latents keep W+ and {', '.join(latent.parts)} (all in each .safetensors)")
    print(f"{len(paths)} image(s) inverted with {method} in {result.seconds:.2f} s "
          f"({result.seconds / len(paths):.2f} s per image)")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert_checkpoint, load_hint
    from .hub import read_config

    report: list = []
    folders = convert_checkpoint(args.src, args.output, args.format, name=args.name, report=report)
    ignored = [e for net in report for e in net.notes.get("ignored_entries", [])]
    if ignored:  # training leftovers (optimizer, discriminator, step counters): not part of the networks
        print(f"ignored: {', '.join(dict.fromkeys(map(str, ignored)))}")
    for folder in folders:
        kind = read_config(folder)["kind"]
        python, cli = load_hint(folder, kind)
        print(f"wrote {folder} ({kind}); load it with: {python}" + (f"; use it with: {cli}" if cli else ""))
    from .pipeline import link_converted

    linked = link_converted(folders)
    if linked is not None:  # the generator's encoder is there too: declare it
        print(f"wrote {linked} (the generator's pipeline: its encoder {json.loads(linked.read_text())['encoder']})")
    return 0


def cmd_train_gan(args: argparse.Namespace) -> int:
    from .training.gan import PRESETS, TrainConfig, export, parse_overrides, train_gan

    args.preset = args.preset or PRESETS.default()
    cfg = TrainConfig.preset(args.preset, **parse_overrides(args.set))
    summary = train_gan(cfg, args.out, max_kimg=args.kimg, max_minutes=args.minutes, resume=not args.restart)
    print(f"stopped at {summary['kimg']:.1f} kimg after {summary['wall_s'] / 60:.1f} min of training "
          f"({summary['images_per_s']:.1f} img/s this run); checkpoint {summary['checkpoint']}")
    if args.export:
        for folder in export(args.out, args.export, {"generator": args.preset, "discriminator": f"{args.preset}-d"}):
            print(f"exported {folder}")
    return 0


def cmd_train_encoder(args: argparse.Namespace) -> int:
    import os

    from .training.style_encoder import STYLE_OBJECTIVES, cmd_train_style_encoder

    if args.objective in STYLE_OBJECTIVES:  # pSp, e4e, ReStyle: their own trainer on the same loop
        return cmd_train_style_encoder(args)
    from .training import encoder as enc
    from .training.gan import parse_overrides

    overrides = parse_overrides(args.set)
    args.preset = args.preset or enc.PRESETS.default()
    if args.data:
        overrides["data_dir"] = args.data
    cfg = enc.EncoderTrainConfig.preset(args.preset, generator=args.generator, objective=args.objective, **overrides)
    command = enc.train_encoder_command(args, args.preset)  # the command as given, for the model card
    summary = enc.train_encoder(cfg, args.out, max_kimg=args.kimg, max_minutes=args.minutes,
                                resume=not args.restart, command=command)
    print(f"stopped at {summary['kimg']:.2f} kimg after {summary['wall_s'] / 60:.1f} min of training "
          f"({summary['images_per_s']:.1f} img/s this run); checkpoint {summary['checkpoint']}")
    if summary["eval_mse"] is not None:
        print(f"reconstruction MSE {summary['eval_mse']:.5f} on {summary['eval_images']}")
    if args.export and int(os.environ.get("RANK", "0")) == 0:
        folder = enc.export_encoder(args.out, args.export, args.name or enc.default_encoder_name(cfg),
                                    license=args.license)
        print(f"exported {folder}")
        from .cards import list_cards, model_cards_dir, weights_dir

        if Path(args.export).resolve() == weights_dir().resolve() and folder.name not in list_cards():
            print(f"to load it by name ({folder.name!r}), add its card to the registry: "
                  f"cp {folder / 'README.md'} {model_cards_dir() / (folder.name + '.md')}")
    return 0


# -- parser ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idinvert", description="In-domain GAN inversion and editing.")
    parser.add_argument("--version", action="version", version=f"idinvert-plugins {__version__}")
    parser.add_argument("--plugins-dir", action="append", metavar="DIR",
                        help="load *.py plugins from DIR (repeatable; replaces the default hooks/ and "
                             "$IDINVERT_PLUGINS_DIR)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("plugins", help="list plugins, what they registered, and any problems")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("models", help="list named models and where they load from")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("info", help="describe a model (name, Hub id or folder)")
    p.add_argument("name")
    p.add_argument("--revision")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("generate", help="sample an image grid from a generator")
    p.add_argument("name")
    p.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-15"))
    p.add_argument("--truncation", type=float, default=None, help="truncation psi (default: none)")
    p.add_argument("--truncation-cutoff", type=int, default=None, help="truncate only the first N layers")
    p.add_argument("--noise-mode", choices=("const", "random", "none"), default="const")
    p.add_argument("--nrow", type=int, default=None)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--revision")
    p.add_argument("--progress", action="store_true", help="show the progress bar even when not a terminal")
    p.add_argument("-o", "--output", default="grid.png")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("invert", help="invert images into a generator's W+ space")
    p.add_argument("name", help="generator: a named model, Hub id or folder")
    p.add_argument("images", nargs="+", help="image files, or folders: every image in them, in batches, resumable "
                                              "(OUT/results.csv records each file; under torchrun each process "
                                              "takes a share)")
    p.add_argument("--batch", type=int, default=8, help="folders: images inverted together (default 8)")
    p.add_argument("--progress", action="store_true", help="folders: show the progress bar even when not a terminal")
    p.add_argument("--method", default=None, help="idinvert, encoder, image2stylegan or a plugin's inverter "
                                                 "(default: the model's pipeline.json default_method, else idinvert)")
    p.add_argument("--encoder", help="domain-guided encoder (name or folder) for idinvert / encoder (default: the "
                                     "model's pipeline.json encoder, else MODEL-encoder if it exists; 'none': without)")
    p.add_argument("--feature-net", default="auto", help=FEATURE_NET_HELP)
    p.add_argument("--embed", metavar="NAME", help="compose a method: the embedder (encoder, mean, w or a "
                                                  "plugin's; default with --refine: encoder if the model has one)")
    p.add_argument("--refine", metavar="NAME[,NAME]", help="compose a method: refiners run in order after the "
                                                          "embedder (domain-regularized, wplus or a plugin's)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="an option of the method or its stages (repeatable): steps=50, l_dom=0, "
                        "domain-regularized.lr=0.02 (STAGE.KEY sets one stage's); `idinvert plugins` lists them")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the method's)")
    p.add_argument("--crop", action="store_true", help="take the centred square of non-square images")
    p.add_argument("--bf16", action="store_true",
                   help="optimise in bfloat16 autocast (about 1.6x faster at 256 px on CPU; results within ~1 %%)")
    p.add_argument("--device", default="cpu")
    from .align.commands import add_align_options

    add_align_options(p, flag=True)
    p.add_argument("-o", "--output", required=True, help="folder for STEM.png and STEM.safetensors (with --align: "
                                                         "STEM.png full size, STEM_K.safetensors and STEM_K.json "
                                                         "per face K)")
    p.set_defaults(func=cmd_invert)

    p = sub.add_parser("convert", help="convert an official checkpoint into a model folder")
    p.add_argument("src")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--format", default="auto", help="auto, genforce, rosinality, nvlabs or a plugin's format")
    p.add_argument("--name", help="model name written into the card (default: the folder name)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("train-gan", help="train (or resume) a GAN on a domain's dataset or an image folder; "
                                         "runs under torchrun for several processes")
    p.add_argument("--preset", default=None, help="a preset of idinvert_plugins.training.gan (default: the default "
                                                  "domain's; its domains' presets are listed there)")
    p.add_argument("--out", required=True, help="run folder (resume.pt, log.jsonl, sample grids)")
    p.add_argument("--kimg", type=float, default=None, help="stop after this many thousand images in all")
    p.add_argument("--minutes", type=float, default=None, help="stop after this many minutes in this call")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a setting of the preset (repeatable; value read as JSON), e.g. --set batch=16; "
                        "or a JSON object")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start afresh")
    p.add_argument("--export", metavar="WEIGHTS_DIR", help="write G_ema and D model folders here when done")
    p.set_defaults(func=cmd_train_gan)

    p = sub.add_parser("train-encoder", help="train (or resume) an encoder for a frozen generator: IDInvert's "
                                             "domain-guided one or the conventional baseline; torchrun-ready")
    p.add_argument("--generator", required=True, help="the frozen generator (named model, Hub id or folder)")
    p.add_argument("--objective", default="domain-guided",
                   help="domain-guided (real images, pixel + perceptual + adversarial) or conventional "
                        "(regress w from the generator's samples); psp, e4e or restyle: those encoders and their "
                        "official objectives (docs/encoders.md; their presets: the domains' style-encoder presets "
                        "and tiny)")
    p.add_argument("--data", metavar="DIR", help="train on this image folder instead of the domain's dataset")
    p.add_argument("--out", required=True, help="run folder (resume.pt, log.jsonl, previews)")
    p.add_argument("--preset", default=None, help="a preset of idinvert_plugins.training.encoder (default: the "
                                                  "default domain's)")
    p.add_argument("--kimg", type=float, default=None, help="stop after this many thousand images in all")
    p.add_argument("--minutes", type=float, default=None, help="stop after this many minutes in this call")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a setting of the preset (repeatable; value read as JSON), e.g. --set batch=16 "
                        "--set discriminator=FOLDER; or a JSON object")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start afresh")
    p.add_argument("--export", metavar="DEST_ROOT", help="write the encoder as a model folder under DEST_ROOT")
    p.add_argument("--license", help="license of the exported weights, for its model card (e.g. mit)")
    p.add_argument("--name", help="its name (default: GENERATOR-encoder or GENERATOR-encoder-conventional)")
    p.set_defaults(func=cmd_train_encoder)

    from .cli_edit import add_parsers as add_edit_parsers  # edit, interpolate, mix, diffuse, directions

    add_edit_parsers(sub)

    from .evaluation.cli import add_parser as add_evaluate_parser  # evaluate

    add_evaluate_parser(sub)

    from .app.commands import add_parsers as add_app_parsers  # app, space export

    add_app_parsers(sub)

    from .plugins import get_plugins  # commands of plugins (hook register_commands), after the built-in ones

    get_plugins().add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pickle import UnpicklingError

    from .convert import ConversionError
    from .hub import ModelLoadError, ModelNotFoundError
    from .images import ImageError
    from .plugins import PluginError, UnknownNameError, configure

    pre = argparse.ArgumentParser(add_help=False)  # plugins (and the commands they add) load before parsing
    pre.add_argument("--plugins-dir", action="append")
    known, _ = pre.parse_known_args(argv)
    if known.plugins_dir:
        configure(known.plugins_dir)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ModelNotFoundError, ModelLoadError, UnknownNameError, PluginError, ImageError, ConversionError,
            UnpicklingError, ValueError) as exc:
        print(f"idinvert: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
