"""Start the app from the command line: ``python gradio_app.py`` or ``idinvert app`` (same options).

Offline by default: no share link, usage analytics off, bound to 127.0.0.1; prints the local URL.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .models import AUTO, ModelSpec, default_model

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
PORT_TRIES = 100  # ports tried from DEFAULT_PORT up when none is asked for


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
    parser.add_argument("--host", default=None,
                        help="address to bind (0.0.0.0 to serve the network); default $GRADIO_SERVER_NAME, else "
                             f"{DEFAULT_HOST}")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port; default $GRADIO_SERVER_PORT, else the first free port from {DEFAULT_PORT} up (a "
                             "port given here or in $GRADIO_SERVER_PORT that is taken is an error)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="requests of one kind run at once (the queue holds the rest); default 1")
    return parser


class PortInUseError(OSError):
    """The port the user asked for is taken (the message is one line naming ``--port``)."""


def _port_free(host: str, port: int) -> bool:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def server_address(host: str | None = None, port: int | None = None,
                   environ: dict[str, str] | None = None) -> tuple[str, int]:
    """Where the app listens: ``--host`` / ``--port`` when given, else Gradio's ``GRADIO_SERVER_NAME`` /
    ``GRADIO_SERVER_PORT`` (what Hugging Face Spaces and hosting scripts set), else ``127.0.0.1`` and the first free
    port from 7860 up. A port that was asked for (option or variable) and is taken raises :class:`PortInUseError`."""
    env = os.environ if environ is None else environ
    host = host or env.get("GRADIO_SERVER_NAME") or DEFAULT_HOST
    bind = "0.0.0.0" if host in ("", "0.0.0.0") else host
    asked, source = port, "--port"
    if asked is None and env.get("GRADIO_SERVER_PORT"):
        source = "GRADIO_SERVER_PORT"
        try:
            asked = int(env["GRADIO_SERVER_PORT"])
        except ValueError:
            raise ValueError(f"GRADIO_SERVER_PORT={env['GRADIO_SERVER_PORT']!r} is not a port number") from None
    if asked is not None:
        if not _port_free(bind, asked):
            where = "--port" if source == "--port" else f"{source}={asked}"
            raise PortInUseError(f"port {asked} on {host} is in use ({where}): pass --port N with a free port, or "
                                 "stop what is using it")
        return host, asked
    for candidate in range(DEFAULT_PORT, DEFAULT_PORT + PORT_TRIES):
        if _port_free(bind, candidate):
            return host, candidate
    raise PortInUseError(f"no free port from {DEFAULT_PORT} to {DEFAULT_PORT + PORT_TRIES - 1} on {host}: pass "
                         "--port N")


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

    try:  # before the models load: a taken port fails at once, in one line
        host, port = server_address(args.host, args.port)
    except PortInUseError as exc:
        print(f"idinvert app: error: {exc}", file=sys.stderr)
        return 2
    if args.port is None and port != DEFAULT_PORT and not os.environ.get("GRADIO_SERVER_PORT"):
        print(f"idinvert app: port {DEFAULT_PORT} is taken; using {port} (--port N to choose)", flush=True)
    demo = build_app(specs_from_args(args) or None, concurrency=args.concurrency)
    try:
        _, local_url, _ = demo.launch(server_name=host, server_port=port, share=False, quiet=True,
                                      prevent_thread_lock=True, **launch_options())
    except OSError as exc:  # taken between the check and the launch
        print(f"idinvert app: error: cannot listen on {host}:{port} ({exc}): pass --port N with a free port",
              file=sys.stderr)
        return 2
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


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "PortInUseError", "add_app_arguments", "main", "serve", "server_address",
           "specs_from_args"]
