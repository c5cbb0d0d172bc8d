"""Out-of-domain check: is an inversion's reconstruction error far above what the model usually achieves?

A GAN reconstructs images like its training data well and everything else badly. After an inversion, the
reconstruction MSE (images in [-1, 1]) is compared with the model's *typical* MSE for the same inversion method
on its held-out faces; more than :data:`OOD_FACTOR` times that means the image is far from the model's domain:
the code is poor, and edits of it will be unreliable. The CLI (``idinvert invert`` / ``edit`` / ...) and the
web app say so.

The typical MSE is recorded beside the generator, where :func:`typical_mse` looks for it, in order:

1. the generator folder's ``pipeline.json``, key ``"typical_mse": {"<method>": value, ...}``;
2. the generator's model card front matter, the same key;
3. for ``method="encoder"``, the encoder's card ``eval_mse`` (its held-out MSE, written by encoder training).

``benchmarks/typical_mse.py`` measures the figures (mean MSE on the first held-out test faces) and writes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Warn when the reconstruction MSE exceeds this many times the typical MSE.
OOD_FACTOR = 3.0
TYPICAL_KEY = "typical_mse"


@dataclass(frozen=True)
class TypicalError:
    """A model's typical reconstruction MSE for one inversion method, and where the figure was read."""

    value: float
    method: str
    source: str


def _folder_and_card(model: Any) -> tuple[Path | None, Any]:
    """The generator folder and card of a Pipeline, a loaded generator, a ResolvedModel, a name or a folder."""
    from .cards import read_card
    from .hub import ResolvedModel, resolve_model

    resolved = None
    if isinstance(model, ResolvedModel):
        resolved = model
    elif isinstance(model, (str, Path)):
        try:
            resolved = resolve_model(model, local_files_only=True)
        except Exception:  # an unknown model has no recorded figure: no check
            return None, None
    else:
        generator = getattr(model, "generator", None)  # a Pipeline
        resolved = getattr(generator if generator is not None else model, "resolved", None)
        if resolved is None and getattr(model, "folder", None) is not None:
            return Path(model.folder), None
    if not isinstance(resolved, ResolvedModel):
        return None, None
    folder = Path(resolved.folder)
    card = resolved.card
    if card is None and (folder / "README.md").is_file():
        try:
            card = read_card(folder / "README.md")
        except Exception:
            card = None
    return folder, card


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def typical_mse(model: Any, method: str, encoder: Any = None) -> TypicalError | None:
    """The typical reconstruction MSE of ``method`` (an inverter name: ``encoder``, ``idinvert``, ...) for
    ``model`` (a Pipeline, a loaded generator, a model name or folder), or None when none is recorded (then no
    check is made). ``encoder`` (a loaded encoder) supplies its card's ``eval_mse`` for ``method="encoder"``."""
    folder, card = _folder_and_card(model)
    if folder is not None and (folder / "pipeline.json").is_file():
        try:
            recorded = json.loads((folder / "pipeline.json").read_text(encoding="utf-8")).get(TYPICAL_KEY) or {}
        except (OSError, json.JSONDecodeError, AttributeError):
            recorded = {}
        if isinstance(recorded, dict) and (value := _number(recorded.get(method))) is not None:
            return TypicalError(value, method, f"{folder.name}/pipeline.json")
    if card is not None:
        recorded = card.data.get(TYPICAL_KEY) or {}
        if isinstance(recorded, dict) and (value := _number(recorded.get(method))) is not None:
            return TypicalError(value, method, f"the model card of {card.name}")
    if method == "encoder" and encoder is None and getattr(model, "generator", None) is not None:
        encoder = getattr(model, "encoder", None)  # a Pipeline's encoder (already loaded for the inversion)
    if method == "encoder" and encoder is not None:
        _, enc_card = _folder_and_card(encoder)
        if enc_card is not None and (value := _number(enc_card.data.get("eval_mse"))) is not None:
            return TypicalError(value, method, f"the model card of {enc_card.name}")
    return None


def domain_warning(mse: float, typical: TypicalError | None, factor: float = OOD_FACTOR) -> str | None:
    """A sentence for the user when ``mse`` is more than ``factor`` times ``typical`` (else None)."""
    if typical is None or not mse > factor * typical.value:
        return None
    return (f"reconstruction MSE {mse:.4f} is {mse / typical.value:.0f}x this model's typical {typical.value:.4f} "
            f"with {typical.method} on its held-out faces: the image is far from the model's domain (what it was "
            "trained on), so the reconstruction misses much of it and edits will be unreliable. Align and crop a "
            "face like the training data (centred, upright, the same framing), or use a model trained on images "
            "like this one.")


def check_reconstruction(model: Any, method: str, mse: float, encoder: Any = None) -> str | None:
    """:func:`domain_warning` for ``mse`` against ``model``'s recorded typical MSE of ``method``."""
    return domain_warning(mse, typical_mse(model, method, encoder))


def warn_out_of_domain(model: Any, method: str, label: str, mse: float, encoder: Any = None) -> str | None:
    """Print ``warning: LABEL: ...`` to stderr when ``mse`` is out of domain for ``model``; return the message."""
    import sys

    message = check_reconstruction(model, method, mse, encoder)
    if message is not None:
        print(f"warning: {label}: {message}", file=sys.stderr)
    return message


__all__ = ["OOD_FACTOR", "TYPICAL_KEY", "TypicalError", "check_reconstruction", "domain_warning", "typical_mse",
           "warn_out_of_domain"]
