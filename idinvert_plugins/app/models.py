"""The models the app serves: a :class:`~idinvert_plugins.pipeline.Pipeline` per entry of the model menu.

A :class:`ModelSpec` names a generator (by model name, Hub id or folder) and may override what its pipeline
declares (encoder, perceptual network, extra direction folders); :class:`ModelRegistry` loads each spec's
pipeline once, on first use, and shares it read-only between all browser sessions (a lock keeps two sessions
from loading the same model twice). User data never lives here: it is in each session's ``gr.State``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..editors.directions import Direction
from ..hub import ModelNotFoundError
from ..models.base import Generator
from ..pipeline import AUTO, Pipeline, check_encoder


def default_model() -> str:
    """The model ``python gradio_app.py`` serves when none is named: the default domain's
    ``default_generator`` (also ``DEFAULT_MODEL``, looked up on first use)."""
    from ..domains import default_domain

    domain = default_domain()
    if not domain.default_generator:
        raise ModelNotFoundError(f"the default domain {domain.name!r} names no default generator: pass --model")
    return domain.default_generator


def __getattr__(name: str) -> Any:  # PEP 562: DEFAULT_MODEL asks the domain registry when first read
    if name == "DEFAULT_MODEL":
        return default_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class ModelSpec:
    """What to load for one entry of the app's model menu.

    ``encoder`` and ``feature_net``: ``"auto"`` takes the generator's pipeline (its ``pipeline.json``, or
    without one ``<model>-encoder`` when it resolves and the classifier of the domain its name belongs to;
    a missing one is a note, not an error); ``None`` / ``"none"`` means without; anything else replaces it.
    ``directions``: extra folders of ``*.safetensors`` directions, on top of the pipeline's own. ``label`` is
    the name shown in the menu (default: ``model``).
    """

    model: str
    encoder: str | None = AUTO
    directions: tuple[str, ...] = ()
    feature_net: str | None = AUTO
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or str(self.model)


class ModelBundle:
    """A loaded :class:`ModelSpec`: its :class:`~idinvert_plugins.pipeline.Pipeline` under the menu name, every
    component loaded and frozen (eval mode, no parameter gradients) and shared by all sessions."""

    def __init__(self, name: str, pipeline: Pipeline) -> None:
        self.name = name
        self.pipeline = pipeline

    @property
    def generator(self) -> Generator:
        return self.pipeline.generator

    @property
    def encoder(self) -> nn.Module | None:
        return self.pipeline.encoder

    @property
    def feature_net(self) -> nn.Module | None:
        return self.pipeline.feature_net

    @property
    def directions(self) -> dict[str, Direction]:
        return self.pipeline.directions

    @property
    def folder(self) -> Path | None:
        return self.pipeline.folder

    @property
    def notes(self) -> list[str]:
        return self.pipeline.notes

    @property
    def resolution(self) -> int:
        return self.pipeline.resolution

    def describe(self) -> str:
        """A short Markdown summary for the page: size, encoder, directions and anything missing."""
        text = self.pipeline.describe()
        return text.replace(f"**{self.pipeline.name}**", f"**{self.name}**", 1)


def load_bundle(spec: ModelSpec) -> ModelBundle:
    """Load the pipeline a :class:`ModelSpec` names, every component at once; missing optional parts become
    notes, not errors."""
    pipe = Pipeline.from_pretrained(spec.model, encoder=spec.encoder, feature_net=spec.feature_net,
                                    directions=spec.directions)
    pipe.load_all()
    if not pipe.directions:
        pipe.notes.append("This model has no saved directions yet, so the Edit tab has no sliders (learn some with "
                          "`idinvert directions learn`).")
    return ModelBundle(spec.name, pipe)


def warm_up(bundle: ModelBundle) -> None:
    """One forward and backward pass through G (and E), so that the first user's inversion does not pay
    PyTorch's one-off set-up cost (seconds on a CPU)."""
    G = bundle.generator
    codes = G.w_avg.detach().expand(1, G.num_layers, -1).clone().requires_grad_(True)
    with torch.enable_grad():
        images = G.synthesis(codes, noise_mode="const")
        loss = images.square().mean()
        if bundle.encoder is not None:
            loss = loss + bundle.encoder(images).square().mean()
        loss.backward()
        # torch.optim's first step imports a lot (about 3 s on the project's CPU); pay it now
        optimizer = torch.optim.Adam([codes], lr=0.0)
        optimizer.step()


def bundled_generators() -> list[str]:
    """Named generators whose weights are bundled here (loadable offline)."""
    from ..hub import list_models

    return [m["name"] for m in list_models() if m.get("kind") == "generator" and m.get("bundled")]


class ModelRegistry:
    """The app's model menu: specs by name, each loaded on first use and cached for all sessions."""

    def __init__(self, specs: list[ModelSpec], include_bundled: bool = True) -> None:
        if not specs and not include_bundled:
            raise ValueError("the app needs at least one model")
        self.specs: dict[str, ModelSpec] = {s.name: s for s in specs}
        if include_bundled:
            for name in bundled_generators():
                self.specs.setdefault(name, ModelSpec(name))
        if not self.specs:
            raise ModelNotFoundError(
                f"no model to serve: the default {default_model()!r} is not bundled here yet and no --model was "
                "given. Pass a generator name or folder, e.g. `--model out/rosinality-sg2-64` after the "
                "README's convert command.")
        self._bundles: dict[str, ModelBundle] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.specs)

    @property
    def default(self) -> str:
        return next(iter(self.specs))

    def get(self, name: str | None) -> ModelBundle:
        """The loaded bundle ``name`` (the default if None); unknown names raise a ValueError listing the menu."""
        name = name or self.default
        if name not in self.specs:
            raise ValueError(f"model {name!r} is not served by this app; choose one of {self.names}")
        with self._lock:
            if name not in self._bundles:
                with torch.no_grad():
                    bundle = load_bundle(self.specs[name])
                warm_up(bundle)
                self._bundles[name] = bundle
            return self._bundles[name]


def default_specs() -> list[ModelSpec]:
    """The menu when no model is named: the default domain's generator if bundled (else every bundled one)."""
    names = bundled_generators()
    default = default_model()
    return [ModelSpec(default)] if default in names else []


__all__ = ["AUTO", "ModelBundle", "default_model", "ModelRegistry", "ModelSpec", "bundled_generators",
           "check_encoder", "default_specs", "load_bundle", "warm_up"]

