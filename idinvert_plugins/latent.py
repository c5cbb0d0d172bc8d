"""What an image became: :class:`Latent`, its parts, and :func:`render`.

Inversion methods differ in what they keep of an image. IDInvert and Image2StyleGAN keep a W+ code; PTI keeps
a pivot code *and* a tuned generator; Image2StyleGAN++ adds noise maps; HFGI adds a feature-map residual;
StyleSpace edits per-channel styles. A :class:`Latent` holds all of it: the W+ codes ``wp`` ``[N, L, D]``
plus named *parts*, each a dict of tensors whose leading axis is 1 (shared by every image) or N (one per
image). The built-in parts:

============  ===================================================  ================================================
part          tensors (key -> tensor)                              how it renders
============  ===================================================  ================================================
``noise``     noise layer name (``G.noise_shapes()``) ->           replaces that layer's noise input
              ``[N, 1, r, r]``
``styles``    style name (``G.style_modules()``, the S space) ->   added to that layer's style vector (S offset)
              ``[N, C]``
``features``  module path in the generator, e.g.                   added to that module's output (its first output
              ``synthesis_network.b16`` -> ``[N, C, H, W]``          for blocks returning a tuple)
``weights``   parameter name -> offset ``[1, *shape]``             the generator renders with ``p + offset`` (PTI,
                                                                   HyperStyle); stored float16, rounded on entry
============  ===================================================  ================================================

A plugin adds a part kind by registering a :class:`LatentPart` (hook ``register_latent_parts``); its
:meth:`LatentPart.apply` expresses the part with the three render primitives of :class:`RenderPlan` (noise
inputs, additions to module outputs, parameter offsets), so every generator that names its noise layers and
style modules renders it, without knowing the part.

Editors that work in W+ change ``wp`` and keep every other part (:meth:`Latent.with_wp`), as e4e/HFGI/PTI
editing does. Code files hold all parts in one safetensors file (:mod:`idinvert_plugins.codes`).
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from .models.base import Generator

PartTensors = dict[str, torch.Tensor]


@dataclass
class Latent:
    """W+ codes ``wp`` ``[N, L, D]`` (or ``[N, K, L, D]`` for K variants per image, e.g. an interpolation
    strip) and optional named parts, each ``{key: tensor}`` with a leading axis of 1 (shared) or N.

    ``info`` carries free-form provenance (method, generator) and is written into code files as metadata.
    """

    wp: torch.Tensor
    parts: dict[str, PartTensors] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.wp, torch.Tensor) or self.wp.ndim not in (3, 4):
            shape = list(self.wp.shape) if isinstance(self.wp, torch.Tensor) else type(self.wp).__name__
            raise ValueError(f"Latent.wp must be W+ codes [N, L, D] (or [N, K, L, D]), got {shape}; "
                             "broadcast W codes with G.to_wplus(w) first")
        n = self.wp.shape[0]
        for name, tensors in self.parts.items():
            if not isinstance(tensors, Mapping):
                raise TypeError(f"latent part {name!r} must be a dict of tensors, got {type(tensors).__name__}")
            for key, t in tensors.items():
                if not isinstance(t, torch.Tensor) or t.ndim == 0 or t.shape[0] not in (1, n):
                    got = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                    raise ValueError(f"latent part {name!r}[{key!r}] must have a leading axis of 1 or {n} "
                                     f"(the number of images), got {got}")

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def from_codes(cls, generator: Generator, codes: torch.Tensor | Latent) -> Latent:
        """A latent from W (``[N, D]``) or W+ codes, or the latent itself."""
        if isinstance(codes, Latent):
            return codes
        return cls(generator.to_wplus(codes))

    def with_wp(self, wp: torch.Tensor) -> Latent:
        """The same parts with new W+ codes (what an editor working in W+ returns). ``wp`` may add a
        variant axis ``[N, K, L, D]``; the parts then apply to every variant of their image."""
        if wp.shape[0] != self.wp.shape[0]:
            raise ValueError(f"new codes have {wp.shape[0]} images, the latent {self.wp.shape[0]}")
        return Latent(wp, {k: dict(v) for k, v in self.parts.items()}, dict(self.info))

    def with_part(self, name: str, tensors: Mapping[str, torch.Tensor]) -> Latent:
        """A copy with part ``name`` set to ``tensors`` (prepared by the part type, e.g. rounded for storage)."""
        parts = {k: dict(v) for k, v in self.parts.items()}
        parts[name] = get_part_type(name).prepare(dict(tensors))
        return Latent(self.wp, parts, dict(self.info))

    def without(self, *names: str) -> Latent:
        """A copy without the named parts."""
        return Latent(self.wp, {k: dict(v) for k, v in self.parts.items() if k not in names}, dict(self.info))

    # -- batch ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.wp.shape[0]

    def __getitem__(self, index: int | slice) -> Latent:
        """Images ``index`` of the batch (an int keeps a batch axis of 1)."""
        sel = slice(index, index + 1) if isinstance(index, int) else index
        if isinstance(index, int) and not -len(self) <= index < len(self):
            raise IndexError(f"image {index} of a latent of {len(self)}")
        n = len(self)
        parts = {name: {k: (t[sel] if t.shape[0] == n and n > 1 else t) for k, t in tensors.items()}
                 for name, tensors in self.parts.items()}
        return Latent(self.wp[sel], parts, dict(self.info))

    @staticmethod
    def cat(latents: list[Latent]) -> Latent:
        """Concatenate along the image axis; every latent must have the same parts and keys."""
        if not latents:
            raise ValueError("Latent.cat needs at least one latent")
        names = [sorted((k, sorted(v)) for k, v in lat.parts.items()) for lat in latents]
        if any(n != names[0] for n in names):
            raise ValueError("Latent.cat: the latents have different parts")
        parts: dict[str, PartTensors] = {}
        for name, tensors in latents[0].parts.items():
            parts[name] = {}
            for key in tensors:
                items = [lat.parts[name][key] for lat in latents]
                shared = all(t.shape[0] == 1 for t in items) and all(torch.equal(t, items[0]) for t in items)
                parts[name][key] = items[0] if shared else torch.cat(
                    [t.expand(len(lat), *t.shape[1:]) for t, lat in zip(items, latents, strict=True)])
        return Latent(torch.cat([lat.wp for lat in latents]), parts, dict(latents[0].info))

    def to(self, *args: Any, **kwargs: Any) -> Latent:
        return Latent(self.wp.to(*args, **kwargs),
                      {n: {k: t.to(*args, **kwargs) for k, t in v.items()} for n, v in self.parts.items()},
                      dict(self.info))

    def detach(self) -> Latent:
        return Latent(self.wp.detach(), {n: {k: t.detach() for k, t in v.items()} for n, v in self.parts.items()},
                      dict(self.info))

    def flat(self) -> Latent:
        """Variants flattened into the image axis: ``[N, K, L, D]`` -> ``[N*K, L, D]``, parts repeated."""
        if self.wp.ndim == 3:
            return self
        n, k = self.wp.shape[:2]
        parts = {name: {key: (t.repeat_interleave(k, 0) if t.shape[0] == n and n > 1 else t)
                        for key, t in tensors.items()} for name, tensors in self.parts.items()}
        return Latent(self.wp.reshape(n * k, *self.wp.shape[2:]), parts, dict(self.info))

    def describe(self) -> str:
        """One line: the codes' shape and the parts with their tensor counts."""
        parts = ", ".join(f"{n} ({len(v)} tensors)" for n, v in self.parts.items()) or "none"
        return f"W+ {list(self.wp.shape)}; parts: {parts}"


# -- render primitives --------------------------------------------------------------------------------------

@dataclass
class RenderPlan:
    """What the parts of one latent ask of a render: three primitives every part is expressed with.

    * ``noise[name]``: the noise input of a noise layer (``G.noise_shapes()`` names), ``[N or 1, 1, r, r]``;
    * ``outputs[module path]``: tensors added to a generator submodule's output (its first element for
      modules returning a tuple), ``[N or 1, ...]``;
    * ``weights[parameter name]``: offsets added to the generator's parameters, ``[1 or N, *shape]``.
    """

    noise: dict[str, torch.Tensor] = field(default_factory=dict)
    outputs: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    weights: dict[str, torch.Tensor] = field(default_factory=dict)

    def add_output(self, module: str, delta: torch.Tensor) -> None:
        self.outputs.setdefault(module, []).append(delta)


class LatentPart:
    """Base class of latent part types (register instances with the ``register_latent_parts`` hook).

    Set ``name`` (the key in :attr:`Latent.parts` and in code files) and ``description``; implement
    :meth:`apply`. Override :meth:`check` to validate keys and shapes against a generator, :meth:`prepare` to
    normalise tensors when a part is attached (e.g. round to the storage precision), and set
    ``storage_dtype`` to store the part's tensors in another precision in code files.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    storage_dtype: ClassVar[torch.dtype] = torch.float32

    def prepare(self, tensors: PartTensors) -> PartTensors:
        return tensors

    def check(self, generator: Generator, tensors: PartTensors) -> None:
        """Raise ``ValueError`` naming the problem if ``tensors`` do not fit ``generator``."""

    def apply(self, generator: Generator, tensors: PartTensors, plan: RenderPlan) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "storage_dtype": str(self.storage_dtype)}


def _unsupported(generator: Generator, part: str, method: str) -> ValueError:
    return ValueError(f"the {getattr(generator, 'architecture', type(generator).__name__)!r} generator does not "
                      f"provide {method}(), so it cannot render latent part {part!r}")


class NoisePart(LatentPart):
    name = "noise"
    description = "per-layer noise maps replacing the generator's noise inputs (Image2StyleGAN++, noise encoders)"

    def check(self, generator: Generator, tensors: PartTensors) -> None:
        try:
            shapes = generator.noise_shapes()
        except NotImplementedError:
            raise _unsupported(generator, self.name, "noise_shapes") from None
        for key, t in tensors.items():
            if key not in shapes:
                raise ValueError(f"noise layer {key!r} is not in this generator; its noise layers: {list(shapes)}")
            if tuple(t.shape[1:]) != tuple(shapes[key][1:]):
                raise ValueError(f"noise map {key!r} is {list(t.shape)}, the layer needs [N, "
                                 f"{', '.join(map(str, shapes[key][1:]))}]")

    def apply(self, generator: Generator, tensors: PartTensors, plan: RenderPlan) -> None:
        plan.noise.update(tensors)


class StylesPart(LatentPart):
    name = "styles"
    description = "S-space offsets: added to the per-channel style vector of named layers (StyleSpace)"

    def check(self, generator: Generator, tensors: PartTensors) -> None:
        modules = _style_modules(generator, self.name)
        for key, t in tensors.items():
            if key not in modules:
                raise ValueError(f"style layer {key!r} is not in this generator; its style layers: {list(modules)}")
            out = _out_features(modules[key])
            if out is not None and t.shape[-1] != out:
                raise ValueError(f"style offset {key!r} has {t.shape[-1]} channels, the layer {out}")

    def apply(self, generator: Generator, tensors: PartTensors, plan: RenderPlan) -> None:
        paths = generator.style_module_paths()
        for key, t in tensors.items():
            plan.add_output(paths[key], t)


class FeaturesPart(LatentPart):
    name = "features"
    description = "feature-map residuals added to the output of named synthesis modules (HFGI, StyleFeatureEditor)"

    def check(self, generator: Generator, tensors: PartTensors) -> None:
        for key in tensors:
            try:
                generator.get_submodule(key)
            except AttributeError:
                raise ValueError(f"the generator has no module {key!r} to add a feature residual to (module "
                                 "paths as in G.named_modules(), e.g. 'synthesis_network.b16')") from None

    def apply(self, generator: Generator, tensors: PartTensors, plan: RenderPlan) -> None:
        for key, t in tensors.items():
            plan.add_output(key, t)


class WeightsPart(LatentPart):
    name = "weights"
    description = ("generator weight offsets of the tuned layers only (PTI, HyperStyle); float16 in code files, "
                   "rounded to float16 precision when attached so a saved latent re-renders identically")
    storage_dtype = torch.float16

    def prepare(self, tensors: PartTensors) -> PartTensors:
        return {k: t.detach().to(torch.float16).to(t.dtype if t.is_floating_point() else torch.float32)
                for k, t in tensors.items()}

    def check(self, generator: Generator, tensors: PartTensors) -> None:
        params = dict(generator.named_parameters())
        for key, t in tensors.items():
            if key not in params:
                raise ValueError(f"weight offset {key!r} names no parameter of this generator (e.g. "
                                 f"{next(iter(params))!r})")
            if tuple(t.shape[1:]) != tuple(params[key].shape):
                raise ValueError(f"weight offset {key!r} is {list(t.shape)}, the parameter is "
                                 f"{list(params[key].shape)} (offsets carry a leading axis of 1)")

    def apply(self, generator: Generator, tensors: PartTensors, plan: RenderPlan) -> None:
        plan.weights.update(tensors)


def _style_modules(generator: Generator, part: str) -> dict[str, nn.Module]:
    try:
        return generator.style_modules()
    except NotImplementedError:
        raise _unsupported(generator, part, "style_modules") from None


def _out_features(module: nn.Module) -> int | None:
    weight = getattr(module, "weight", None)
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.ndim == 2 else None


# -- part types -----------------------------------------------------------------------------------------
# The built-in part types are known here, so a latent renders without loading plugins; other names are looked
# up in the plugin registry (hook ``register_latent_parts``, where the built-ins are registered too).

BUILTIN_PARTS: tuple[LatentPart, ...] = (NoisePart(), StylesPart(), FeaturesPart(), WeightsPart())
_BUILTIN: dict[str, LatentPart] = {p.name: p for p in BUILTIN_PARTS}


def get_part_type(name: str) -> LatentPart:
    """The part type called ``name``: a built-in or one a plugin registered; unknown names raise listing the
    known ones."""
    if name in _BUILTIN:
        return _BUILTIN[name]
    from .plugins import get_plugins

    plugins = get_plugins()
    if name not in plugins.names("latent_part"):
        known = sorted(set(_BUILTIN) | set(plugins.names("latent_part")))
        raise ValueError(f"unknown latent part {name!r}. Known parts: {', '.join(known)} (a plugin that "
                         "registers it with register_latent_parts may be missing)")
    return plugins.get("latent_part", name)


# -- rendering ----------------------------------------------------------------------------------------------

_ACTIVE_OUTPUTS: ContextVar[dict[int, list[torch.Tensor]] | None] = ContextVar("idinvert_active_outputs",
                                                                                 default=None)
_HOOK_LOCK = threading.Lock()
_HOOK_FLAG = "_idinvert_output_hook"


def _output_hook(module: nn.Module, args: Any, output: Any) -> Any:
    active = _ACTIVE_OUTPUTS.get()
    if not active or id(module) not in active:
        return None
    delta = sum(active[id(module)])
    if isinstance(output, tuple):
        return (output[0] + delta.to(output[0].dtype), *output[1:])
    return output + delta.to(output.dtype)


def _ensure_hook(module: nn.Module) -> None:
    """Install the (idle unless a render activates it) output hook on ``module`` once."""
    if getattr(module, _HOOK_FLAG, False):
        return
    with _HOOK_LOCK:
        if not getattr(module, _HOOK_FLAG, False):
            module.register_forward_hook(_output_hook)
            object.__setattr__(module, _HOOK_FLAG, True)


@contextlib.contextmanager
def output_edits(generator: nn.Module, outputs: Mapping[str, list[torch.Tensor]]) -> Iterator[None]:
    """Add tensors to the outputs of the named submodules of ``generator`` for the duration, in this thread
    (or asyncio task) only: other threads rendering with the same shared generator are unaffected."""
    if not outputs:
        yield
        return
    active: dict[int, list[torch.Tensor]] = {}
    for path, deltas in outputs.items():
        module = generator.get_submodule(path)
        _ensure_hook(module)
        active.setdefault(id(module), []).extend(deltas)
    token = _ACTIVE_OUTPUTS.set(active)
    try:
        yield
    finally:
        _ACTIVE_OUTPUTS.reset(token)


_TUNED_CACHE: OrderedDict[tuple, nn.Module] = OrderedDict()
_TUNED_LOCK = threading.Lock()
_TUNED_CACHE_SIZE = 4


def tuned_generator(generator: Generator, offsets: Mapping[str, torch.Tensor]) -> Generator:
    """A copy of ``generator`` whose named parameters are ``p + offset`` (offsets ``[1, *shape]`` or
    ``[*shape]``). Copies are cached (the last few), so rendering a tuned latent again is cheap; the shared
    generator itself is never modified."""
    key = (id(generator), tuple(sorted((k, v.data_ptr(), v._version, tuple(v.shape)) for k, v in offsets.items())))
    with _TUNED_LOCK:
        if key in _TUNED_CACHE:
            _TUNED_CACHE.move_to_end(key)
            return _TUNED_CACHE[key]
    tuned = copy.deepcopy(generator)
    params = dict(tuned.named_parameters())
    with torch.no_grad():
        for name, delta in offsets.items():
            p = params[name]
            p.add_(delta.reshape(p.shape).to(p))
    with _TUNED_LOCK:
        _TUNED_CACHE[key] = tuned
        while len(_TUNED_CACHE) > _TUNED_CACHE_SIZE:
            _TUNED_CACHE.popitem(last=False)
    return tuned


def render_plan(generator: Generator, latent: Latent, *, check: bool = True) -> RenderPlan:
    """The :class:`RenderPlan` of ``latent``'s parts (each checked against ``generator`` first)."""
    plan = RenderPlan()
    for name, tensors in latent.parts.items():
        part = get_part_type(name)
        if check:
            part.check(generator, tensors)
        part.apply(generator, tensors, plan)
    return plan


def render(generator: Generator, latent: Latent | torch.Tensor, noise_mode: str = "const", *,
           check: bool = True) -> torch.Tensor:
    """Images ``[N, C, R, R]`` (``[N, K, C, R, R]`` for variants) of a latent with all its parts.

    Plain codes (a tensor) render as ``G.synthesis``. Differentiable in ``wp`` and in the noise, style and
    feature parts (refiners optimise them through this); weight offsets render through a tuned copy of the
    generator. Thread-safe for a generator shared read-only between threads.
    """
    if not isinstance(latent, Latent):
        return generator.synthesis(latent, noise_mode=noise_mode)
    variants = latent.wp.shape[:2] if latent.wp.ndim == 4 else None
    flat = latent.flat()
    images = _render_flat(generator, flat, noise_mode, check)
    return images if variants is None else images.reshape(*variants, *images.shape[1:])


def _render_flat(generator: Generator, latent: Latent, noise_mode: str, check: bool) -> torch.Tensor:
    if not latent.parts:
        return generator.synthesis(latent.wp, noise_mode=noise_mode)
    plan = render_plan(generator, latent, check=check)
    n = len(latent)
    per_image_weights = any(t.shape[0] == n and n > 1 for t in plan.weights.values())
    if per_image_weights:  # one tuned generator per image
        return torch.cat([_render_flat(generator, latent[i], noise_mode, check=False) for i in range(n)])
    G = tuned_generator(generator, plan.weights) if plan.weights else generator
    kwargs = {"noise": plan.noise} if plan.noise else {}
    if plan.noise and not G.accepts_noise:
        raise _unsupported(generator, "noise", "synthesis(..., noise=)")
    with output_edits(G, plan.outputs):
        return G.synthesis(latent.wp, noise_mode=noise_mode, **kwargs)


__all__ = [
    "BUILTIN_PARTS", "FeaturesPart", "Latent", "LatentPart", "NoisePart", "PartTensors", "RenderPlan",
    "StylesPart", "WeightsPart", "get_part_type", "output_edits",
    "render", "render_plan", "tuned_generator",
]
