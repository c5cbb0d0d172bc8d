"""Start the app from the command line: ``python gradio_app.py`` or ``idinvert app`` (same options).

Offline by default: no share link, usage analytics off, bound to 127.0.0.1; prints the local URL.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .models import AUTO, ModelSpec, default_model


def add_app_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The app's options (shared by ``gradio_app.py`` and ``idinvert app``)."""
    parser.add_argument("--model", action="append", metavar="NAME_OR_FOLDER",
                        help=f"generator to serve (repeatable; the first is the default). Default: {default_model()} "
                             "if bundled; bundled generators are always offered too")
    parser.add_argument("--encoder", default=AUTO,
                        help="encoder of the (first) model: a name or folder, 'none', or 'auto' (default: "
                             "MODEL-encoder if it exists)")
    parser.add_argument("--directions", action="append", default=[], metavar="DIR",
                        help="extra folder of direction .safetensors for the (first) model (repeatable)")
    parser.add_argument("--feature-net", default=AUTO,
                        help="perceptual network for the optimisers: a spec of load_feature_network, 'none', or "
                             "'auto' (the model's pipeline's, else its domain's classifier)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 to serve the network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="requests of one kind run at once (the queue holds the rest); default 1")
    return parser


def specs_from_args(args: argparse.Namespace) -> list[ModelSpec]:
    """Model specs from parsed options; the encoder / directions / feature-net options apply to the first."""
    names = list(args.model or [])
    if not names:
        return []
    first = ModelSpec(names[0], encoder=args.encoder, directions=tuple(args.directions),
                      feature_net=args.feature_net)
    return [first, *(ModelSpec(n) for n in names[1:])]


def serve(args: argparse.Namespace) -> int:
    """Build and launch the app from parsed options; blocks until interrupted."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from . import build_app, launch_options

    demo = build_app(specs_from_args(args) or None, concurrency=args.concurrency)
    _, local_url, _ = demo.launch(server_name=args.host, server_port=args.port, share=False, quiet=True,
                                  prevent_thread_lock=True, **launch_options())
    registry = demo.registry
    print(f"idinvert app: serving {', '.join(registry.names)} (default {registry.default}) at {local_url}",
          flush=True)
    print("Press Ctrl+C to stop.", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python gradio_app.py``."""
    parser = add_app_arguments(argparse.ArgumentParser(
        prog="gradio_app.py", description="The idinvert-plugins web app: invert an image, edit it, download it."))
    args = parser.parse_args(argv)
    from ..hub import ModelLoadError, ModelNotFoundError

    try:
        return serve(args)
    except (ModelNotFoundError, ModelLoadError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2


__all__ = ["add_app_arguments", "main", "serve", "specs_from_args"]
