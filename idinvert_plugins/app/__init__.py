"""The web app (Gradio): invert an image, edit it with every registered editor, download the result.

* :mod:`.models` - the models served (generator + encoder + directions + perceptual network), loaded once;
* :mod:`.session` - one browser session's state and the actions on it (no Gradio, unit-testable);
* :mod:`.controls` - Gradio controls drawn from the parameters editors declare;
* :mod:`.ui` - the Blocks layout and its events;
* :mod:`.examples` - example images (what the model's domain offers: held-out and out-of-distribution ones);
* :mod:`.hf_space` - ``idinvert space export``: a Hugging Face Space folder;
* :mod:`.launcher` - ``python gradio_app.py`` / ``idinvert app``.

Gradio is imported only by :func:`build_app` and the launcher, so the rest works without the ``demo`` extra.
"""

from __future__ import annotations

import os
from typing import Any

from .models import ModelBundle, ModelRegistry, ModelSpec, default_model

# No usage reporting from a library: set before gradio is first imported (a user's own setting wins).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def __getattr__(name: str) -> Any:  # DEFAULT_MODEL: the default domain's generator, looked up when first read
    if name == "DEFAULT_MODEL":
        return default_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_app(*args: Any, **kwargs: Any) -> Any:
    """Build the Gradio app; see :func:`idinvert_plugins.app.ui.build_app`."""
    from .ui import build_app as _build

    return _build(*args, **kwargs)


def launch_options() -> dict[str, Any]:
    """Keyword arguments for ``demo.launch`` that go with :func:`build_app`."""
    from .ui import launch_options as _options

    return _options()


__all__ = ["ModelBundle", "ModelRegistry", "ModelSpec", "build_app", "default_model", "launch_options"]
