"""idinvert-plugins: In-Domain GAN Inversion and editing for StyleGAN / StyleGAN2, built from plugins.

Public API::

    import idinvert_plugins as ip
    pipe = ip.Pipeline.from_pretrained("toyfaces-stylegan2-64")  # generator + encoder, directions, ... (pipeline.json)
    result = pipe.invert("face.png", steps=50)
    G = ip.load_generator("toyfaces-stylegan2-64")      # a name, a Hub id "org/repo@rev" or a folder
    img = G(G.sample_z(1, seed=0))                        # [1, 3, R, R] in [-1, 1]
    ip.get_editor("interpolate")(G, code_a, target=code_b, steps=8)
"""

from __future__ import annotations

from typing import Any

from ._version import __version__  # noqa: E402
from .editors.directions import Direction, DirectionNotFoundError, find_directions, load_direction  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .hub import (  # noqa: E402
    ModelLoadError,
    ModelNotFoundError,
    list_models,
    load_encoder,
    load_generator,
    load_model,
    save_pretrained,
)
from .pipeline import Pipeline, PipelineError  # noqa: E402
from .plugins import UnknownNameError, get_plugins  # noqa: E402


def get_editor(name: str) -> Any:
    """The registered editor called ``name`` (built-in or from a plugin)."""
    return get_plugins().get("editor", name)


def get_inverter(name: str) -> Any:
    """The registered inverter called ``name``."""
    return get_plugins().get("inverter", name)


def get_latent_space(name: str) -> Any:
    return get_plugins().get("latent_space", name)


def list_plugins() -> list[dict[str, Any]]:
    """Loaded plugins with their source and hooks (what ``idinvert plugins`` prints)."""
    return get_plugins().plugin_list()


__all__ = [
    "Direction", "DirectionNotFoundError", "find_directions", "load_direction",
    "ModelLoadError", "ModelNotFoundError", "Pipeline", "PipelineError", "UnknownNameError", "__version__",
    "get_editor", "get_inverter",
    "get_latent_space", "get_plugins", "hookimpl", "list_models", "list_plugins", "load_encoder",
    "load_generator", "load_model", "save_pretrained",
]
