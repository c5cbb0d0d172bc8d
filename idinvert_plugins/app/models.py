"""The models the app serves: a generator with its encoder, directions and perceptual network.

A :class:`ModelSpec` names them (by model name, Hub id or folder); :class:`ModelRegistry` loads each spec once,
on first use, and shares the result read-only between all browser sessions (a lock keeps two sessions from
loading the same model twice). User data never lives here: it is in each session's ``gr.State``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..editors.directions import Direction, find_directions
from ..hub import ModelNotFoundError, default_encoder, encoder_name, load_encoder, load_generator
from ..losses import default_feature_network, load_feature_network
from ..models.base import Generator

#: the model ``python gradio_app.py`` serves when none is named
DEFAULT_MODEL = "toyfaces-stylegan2-64"
AUTO = "auto"


@dataclass(frozen=True)
class ModelSpec:
    """What to load for one entry of the app's model menu.

    ``encoder``: ``"auto"`` tries ``<model>-encoder`` (a named model or a sibling folder) and goes without one
    if it does not resolve; ``None`` / ``"none"`` means no encoder. ``directions``: extra folders of
    ``*.safetensors`` directions, on top of the model folder's own ``directions/``. ``feature_net``:
    ``"auto"`` uses the bundled toy-face classifier for ``toyfaces-*`` generators and nothing otherwise.
    ``label`` is the name shown in the menu (default: ``model``).
    """

    model: str
    encoder: str | None = AUTO
    directions: tuple[str, ...] = ()
    feature_net: str | None = AUTO
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or str(self.model)


@dataclass
class ModelBundle:
    """A loaded :class:`ModelSpec`: frozen networks (eval mode, no parameter gradients) shared by all sessions."""

    name: str
    generator: Generator
    encoder: nn.Module | None = None
    feature_net: nn.Module | None = None
    directions: dict[str, Direction] = field(default_factory=dict)
    folder: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def resolution(self) -> int:
        return int(self.generator.resolution)

    def describe(self) -> str:
        """A short Markdown summary for the page: size, encoder, directions and anything missing."""
        G = self.generator
        parts = [f"**{self.name}**: {type(G).__name__}, {G.resolution}x{G.resolution} px, W+ "
                 f"{G.num_layers}x{G.w_dim}",
                 "encoder: yes" if self.encoder is not None else "encoder: none",
                 f"directions: {', '.join(self.directions) or 'none'}"]
        text = "; ".join(parts) + "."
        if self.notes:
            text += "\n\n" + "\n".join(f"- {n}" for n in self.notes)
        return text


def _freeze(module: nn.Module | None) -> None:
    # Shared between sessions and threads: no parameter gradients ever, so `frozen()` in the inverters has
    # nothing to toggle and concurrent inversions cannot race on requires_grad flags.
    if module is not None:
        module.eval().requires_grad_(False)


def _resolve_encoder(spec: ModelSpec, generator: Generator, notes: list[str]) -> nn.Module | None:
    if spec.encoder is None or str(spec.encoder).lower() == "none":
        notes.append("No encoder: 'encoder only' is unavailable and IDInvert starts from the average code "
                     "without its domain regulariser.")
        return None
    name = str(spec.encoder)
    if spec.encoder == AUTO:
        found = default_encoder(spec.model)  # only looks locally: a missing encoder is normal while it trains
        if found is None:
            notes.append(f"No encoder found ({encoder_name(spec.model)!r} does not resolve): 'encoder only' is "
                         "unavailable and IDInvert starts from the average code without its domain regulariser. "
                         "Pass --encoder NAME_OR_FOLDER once one is trained.")
            return None
        name = found
    encoder = load_encoder(name)
    check_encoder(encoder, generator, name)
    return encoder


def check_encoder(encoder: nn.Module, generator: Generator, name: str) -> None:
    """Refuse an encoder whose W+ shape or input size does not fit the generator, naming both."""
    L, D = getattr(encoder, "num_layers", None), getattr(encoder, "w_dim", None)
    res = getattr(encoder, "resolution", None)
    if (L, D) != (generator.num_layers, generator.w_dim) or res != generator.resolution:
        raise ValueError(f"encoder {name!r} (W+ {L}x{D}, {res} px) does not fit the generator (W+ "
                         f"{generator.num_layers}x{generator.w_dim}, {generator.resolution} px): it belongs to "
                         "another generator; pass the matching --encoder")


def _feature_net(spec: ModelSpec, generator: Generator, notes: list[str]) -> nn.Module | None:
    choice = spec.feature_net
    if choice is None or str(choice).lower() == "none":
        return None
    if choice == AUTO:
        auto = default_feature_network(spec.model, generator.resolution)
        if auto is None:
            return None
        try:
            net = load_feature_network(auto)
        except (ModelNotFoundError, OSError, ValueError) as exc:
            notes.append(f"Perceptual loss off: the toy-face classifier did not load ({exc}).")
            return None
    else:
        net = load_feature_network(choice)
    _freeze(net)
    return net


def _load_directions(spec: ModelSpec, folder: Path | None, generator: Generator, notes: list[str]
                     ) -> dict[str, Direction]:
    paths = find_directions(folder, extra_dirs=spec.directions) if folder is not None else {}
    out: dict[str, Direction] = {}
    for name, path in paths.items():
        try:
            direction = Direction.load(path)
            direction.offsets(generator.num_layers, generator.w_dim)  # shape check against this generator
        except ValueError as exc:
            notes.append(f"Direction {name!r} skipped: {exc}")
            continue
        out[name] = direction
    return out


def load_bundle(spec: ModelSpec) -> ModelBundle:
    """Load everything a :class:`ModelSpec` names; missing optional parts become notes, not errors."""
    notes: list[str] = []
    generator = load_generator(spec.model)
    _freeze(generator)
    resolved = getattr(generator, "resolved", None)
    folder = Path(resolved.folder) if resolved is not None else None
    encoder = _resolve_encoder(spec, generator, notes)
    _freeze(encoder)
    feature_net = _feature_net(spec, generator, notes)
    directions = _load_directions(spec, folder, generator, notes)
    if not directions:
        notes.append("This model has no saved directions yet, so the Edit tab has no sliders (learn some with "
                     "`idinvert directions learn`).")
    return ModelBundle(spec.name, generator, encoder, feature_net, directions, folder, notes)


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
                f"no model to serve: the default {DEFAULT_MODEL!r} is not bundled here yet and no --model was "
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
    """The menu when no model is named: the default toy-face generator if bundled (else every bundled one)."""
    names = bundled_generators()
    return [ModelSpec(DEFAULT_MODEL)] if DEFAULT_MODEL in names else []


__all__ = ["AUTO", "DEFAULT_MODEL", "ModelBundle", "ModelRegistry", "ModelSpec", "bundled_generators",
           "check_encoder", "default_specs", "load_bundle", "warm_up"]

