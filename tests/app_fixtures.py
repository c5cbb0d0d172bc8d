"""Helpers shared by the app tests: a tiny random model folder and a launched app on a free port."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path

import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from conftest import tiny_stylegan2  # noqa: E402

DIRECTION_NAMES = ("age", "smile")


def make_tiny_model(folder: Path, resolution: int = 16) -> Path:
    """``folder/tiny`` (StyleGAN2, random) + ``folder/tiny-encoder`` (random IDInvert encoder) + two random
    directions in ``folder/tiny/directions``. Returns the generator folder."""
    from idinvert_plugins.editors.directions import Direction
    from idinvert_plugins.hub import save_pretrained
    from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder

    G = tiny_stylegan2(resolution, seed=0)
    gen = save_pretrained(G, folder / "tiny", kind="generator")
    torch.manual_seed(1)
    E = IDInvertEncoder(resolution=resolution, num_layers=G.num_layers, w_dim=G.w_dim, channel_base=8,
                        channel_max=16).eval()
    save_pretrained(E, folder / "tiny-encoder", kind="encoder")
    g = torch.Generator().manual_seed(2)
    for name in DIRECTION_NAMES:
        Direction(torch.randn(G.w_dim, generator=g), name=name, source="random").save(
            gen / "directions" / f"{name}.safetensors")
    return gen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(model_folder: Path, extra_specs=(), **build_kwargs):
    """Build the app on ``model_folder`` (menu name "tiny"; bundled models left out; ``extra_specs`` added to
    the menu), launch it on a free port, yield ``(demo, url)``, close it afterwards."""
    from idinvert_plugins.app import ModelSpec, build_app, launch_options

    specs = [ModelSpec(str(model_folder), label="tiny"), *extra_specs]
    demo = build_app(specs, include_bundled=False, **build_kwargs)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True, **launch_options())
    try:
        yield demo, url
    finally:
        demo.close()
