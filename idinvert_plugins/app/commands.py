"""The app's subcommands of ``idinvert``: ``app`` (launch it) and ``space export`` (a Hugging Face Space folder)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .launcher import add_app_arguments
from .models import AUTO, default_model


def cmd_app(args: argparse.Namespace) -> int:
    from .launcher import serve

    return serve(args)


def cmd_space_export(args: argparse.Namespace) -> int:
    from .hf_space import export_space

    try:
        out = export_space(args.dir, args.model, encoder=args.encoder, directions=tuple(args.directions),
                           feature_net=args.feature_net, title=args.title, vendor=not args.no_vendor,
                           force=args.force)
    except (FileExistsError, FileNotFoundError) as exc:
        print(f"idinvert: error: {exc}", file=sys.stderr)
        return 2
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and "idinvert_plugins" not in p.parts)
    print(f"wrote the Space folder {out}:")
    for f in files:
        print(f"  {f}")
    print("Host it: create a Gradio Space on huggingface.co, then in this folder `git init`, `git lfs install`, "
          "commit everything and push to the Space's repository (see README.md, 'Hosting the app').")
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``app`` and ``space`` to the ``idinvert`` subcommands."""
    p = sub.add_parser("app", help="launch the web app (same as `python gradio_app.py`)")
    add_app_arguments(p)
    p.set_defaults(func=cmd_app)

    p = sub.add_parser("space", help="package the web app for hosting")
    space_sub = p.add_subparsers(dest="space_command", required=True, metavar="ACTION")
    e = space_sub.add_parser("export", help="write a Hugging Face Space folder (app.py, requirements.txt, "
                                            "README.md with the Spaces header, the model files)")
    e.add_argument("dir", help="the folder to write (must be new or empty unless --force)")
    e.add_argument("--model", default=default_model(), help=f"generator name, Hub id or folder (default "
                                                          f"{default_model()})")
    e.add_argument("--encoder", default=AUTO, help="encoder name or folder, 'none', or 'auto' (MODEL-encoder if "
                                                   "it exists)")
    e.add_argument("--directions", action="append", default=[], metavar="DIR",
                   help="extra folder of direction .safetensors to ship (repeatable)")
    e.add_argument("--feature-net", default=AUTO, help="perceptual classifier (name or folder), 'none', or 'auto'")
    e.add_argument("--title", help="the Space's title (default: IDInvert: MODEL)")
    e.add_argument("--no-vendor", action="store_true",
                   help="install idinvert-plugins from PyPI instead of copying the library into the folder")
    e.add_argument("--force", action="store_true", help="write into a non-empty folder")
    e.set_defaults(func=cmd_space_export)


__all__ = ["add_parsers", "cmd_app", "cmd_space_export"]
