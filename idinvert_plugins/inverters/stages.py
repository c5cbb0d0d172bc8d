"""Inversion as embed, then refine: the two stage contracts and the named compositions built from them.

An **embedder** turns images into a first :class:`~idinvert_plugins.latent.Latent` (an encoder's code, the
average code, a W-space optimisation); a **refiner** takes images and a latent and returns a better latent
(domain-regularised or W+ optimisation, noise maps, generator tuning, ...). Any embedder composes with any chain
of refiners; a :class:`Composition` gives such a chain a name and defaults and behaves as an
:class:`~idinvert_plugins.inverters.base.Inverter` (``idinvert`` = ``encoder`` + ``domain-regularized``,
``image2stylegan`` = ``mean`` + ``wplus``, ``encoder`` = ``encoder`` alone). This is the shape of
caopulan/GANInverter, here with plugins: embedders and refiners register with ``register_embedders`` /
``register_refiners``, compositions with ``register_inverters``.

Options reach the stages by name: ``steps=50`` goes to every stage that declares ``steps``;
``"domain-regularized.steps"`` (CLI: ``--set domain-regularized.steps=50``) to that stage only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..latent import Latent, render
from ..models.base import Generator
from ..params import Param, resolve_params
from .base import CHUNK_SIZE, NOISE_MODE, InversionResult, Inverter, StepCallback


@dataclass
class InversionContext:
    """What every stage of one inversion sees: the generator and the target images (on its device), the
    networks that go with it, and how to report progress."""

    generator: Generator
    images: torch.Tensor
    encoder: nn.Module | None = None
    feature_net: nn.Module | None = None
    mask: torch.Tensor | None = None
    progress: bool = False
    callback: StepCallback | None = None


@dataclass
class RefineResult:
    """What a refiner returns: the new latent, its per-step losses (``[{"total": [N floats], ...}, ...]``,
    each at the latent the step started from) and, if it has them, the final reconstructions and the loss
    terms at the returned latent (the composition renders them otherwise)."""

    latent: Latent
    losses: list[dict[str, list[float]]] = field(default_factory=list)
    images: torch.Tensor | None = None
    final_losses: dict[str, list[float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class _Stage:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    #: the stage cannot work without an encoder
    requires_encoder: ClassVar[bool] = False
    #: the named encoder of a pipeline this stage reads when the pipeline has one (``pipeline.json``
    #: ``"encoders": {"psp": ...}`` for the ``psp`` embedder); None: the pipeline's encoder
    encoder_role: ClassVar[str | None] = None
    #: the stage can use a perceptual feature network
    uses_feature_net: ClassVar[bool] = False

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "requires_encoder": self.requires_encoder,
                "uses_feature_net": self.uses_feature_net, "params": [p.to_dict() for p in self.params]}


class Embedder(_Stage):
    """First stage: images -> latent. Subclasses implement :meth:`embed`."""

    def embed(self, ctx: InversionContext, **params: Any) -> Latent:
        raise NotImplementedError


class Refiner(_Stage):
    """A later stage: images + latent -> a better latent. Subclasses implement :meth:`refine`."""

    def refine(self, ctx: InversionContext, latent: Latent, **params: Any) -> RefineResult:
        raise NotImplementedError


def get_embedder(name: str) -> Embedder:
    from ..plugins import get_plugins

    return get_plugins().get("embedder", name)


def get_refiner(name: str) -> Refiner:
    from ..plugins import get_plugins

    return get_plugins().get("refiner", name)


class Composition(Inverter):
    """A named inversion method: one embedder and a chain of refiners, with default options.

    ``embed`` and ``refine`` are registered names or stage instances (built-ins pass instances, so they work
    without the plugin registry). Its :attr:`params` are the stages' (refiners' first, then the embedder's),
    with ``defaults`` applied, plus ``noise_mode`` and ``chunk_size`` for the final rendering.
    """

    takes_explicit_options = True

    def __init__(self, name: str, embed: str | Embedder, refine: Sequence[str | Refiner] = (), *,
                 defaults: dict[str, Any] | None = None, description: str = "") -> None:
        self.name = name  # type: ignore[misc]  # instance attributes shadow the Inverter class defaults
        self._embed = embed
        self._refine = tuple(refine)
        self.defaults = dict(defaults or {})
        self.description = description or (  # type: ignore[misc]
            f"{_stage_name(embed)} then {' then '.join(_stage_name(r) for r in refine)}" if refine
            else f"{_stage_name(embed)} alone")

    # -- stages ----------------------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        return self._embed if isinstance(self._embed, Embedder) else get_embedder(self._embed)

    @property
    def refiners(self) -> tuple[Refiner, ...]:
        return tuple(r if isinstance(r, Refiner) else get_refiner(r) for r in self._refine)

    @property
    def requires_encoder(self) -> bool:  # type: ignore[override]
        return self.embedder.requires_encoder

    @property
    def encoder_role(self) -> str | None:
        """The embedder's :attr:`~_Stage.encoder_role` (which of a pipeline's encoders the method reads)."""
        return getattr(self.embedder, "encoder_role", None)

    @property
    def uses_feature_net(self) -> bool:  # type: ignore[override]
        return any(s.uses_feature_net for s in (self.embedder, *self.refiners))

    @property
    def params(self) -> tuple[Param, ...]:  # type: ignore[override]
        seen: dict[str, Param] = {}
        for stage in (*self.refiners, self.embedder):
            for p in stage.params:
                seen.setdefault(p.name, p)
        for p in (NOISE_MODE, CHUNK_SIZE):
            seen.setdefault(p.name, p)
        return tuple(_with_default(p, self.defaults[p.name]) if p.name in self.defaults else p
                     for p in seen.values())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "embed": self.embedder.name, "refine": [r.name for r in self.refiners]}

    # -- options ---------------------------------------------------------------------------------------
    def resolve_params(self, options: dict[str, Any]) -> dict[str, Any]:
        """Validate ``options``: plain names must be declared by some stage; ``stage.name`` must name one of
        this composition's stages and one of its parameters. Returns the plain options with defaults filled
        plus the staged ones unchanged (resolved per stage when it runs)."""
        stages = {s.name: s for s in (self.embedder, *self.refiners)}
        plain = {k: v for k, v in options.items() if "." not in k}
        staged = {k: v for k, v in options.items() if "." in k}
        for key in staged:
            stage_name, _, param = key.rpartition(".")
            if stage_name not in stages:
                raise ValueError(f"option {key!r}: {self.name!r} has no stage {stage_name!r} (its stages: "
                                 f"{', '.join(stages)})")
            if param not in {p.name for p in stages[stage_name].params}:
                raise ValueError(f"option {key!r}: stage {stage_name!r} has no parameter {param!r} (it has: "
                                 f"{', '.join(p.name for p in stages[stage_name].params) or 'none'})")
        return {**resolve_params(self.params, plain, f"inverter {self.name!r}"), **staged}

    def stage_options(self, stage: _Stage, values: dict[str, Any], explicit: frozenset[str] | None = None
                      ) -> dict[str, Any]:
        """The options of one stage: the plain options given explicitly (or set by the composition's
        ``defaults``) that it declares, then its ``STAGE.KEY`` ones; the rest take the stage's own defaults.
        ``explicit=None`` passes every plain option it declares."""
        declared = {p.name for p in stage.params}
        given = None if explicit is None else set(explicit) | set(self.defaults)
        out = {k: v for k, v in values.items() if k in declared and (given is None or k in given)}
        prefix = stage.name + "."
        out.update({k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)})
        return resolve_params(stage.params, out, f"{type(stage).__name__.lower()} {stage.name!r}")

    # -- running ---------------------------------------------------------------------------------------
    def run(self, generator: Generator, images: torch.Tensor, *, encoder: nn.Module | None,
            feature_net: nn.Module | None, mask: torch.Tensor | None, init_codes: torch.Tensor | None,
            progress: bool, callback: StepCallback | None, init_latent: Latent | None = None,
            explicit: frozenset[str] | None = None, **values: Any) -> InversionResult:
        ctx = InversionContext(generator, images, encoder, feature_net, mask, progress, callback)
        if init_latent is not None and init_codes is not None:
            latent = Latent(init_codes, init_latent.to(init_codes.device).parts, dict(init_latent.info))
        elif init_codes is not None:
            latent = Latent(init_codes)
        else:
            embedder = self.embedder
            _check_needs(embedder, encoder)
            latent = embedder.embed(ctx, **self.stage_options(embedder, values, explicit))
        start = latent.wp.detach().clone()
        losses: list[dict[str, list[float]]] = []
        result: RefineResult | None = None
        stages_info = []
        for refiner in self.refiners:
            result = refiner.refine(ctx, latent, **self.stage_options(refiner, values, explicit))
            latent = result.latent
            losses.extend(result.losses)
            stages_info.append({"refiner": refiner.name, **result.info})
        if result is not None and result.images is not None:
            recon, final, info = result.images, result.final_losses, dict(result.info)
        else:
            recon, final, info = evaluate_latent(ctx, latent, noise_mode=values.get("noise_mode", "const"),
                                                 chunk_size=values.get("chunk_size"))
            if result is not None:
                info = {**info, **result.info}
        if len(stages_info) > 1:
            info["stages"] = stages_info
        info["embed"] = "init_codes" if init_codes is not None else self.embedder.name
        info["refine"] = [r.name for r in self.refiners]
        return InversionResult(codes=latent.wp.detach(), images=recon.detach(), losses=losses, init_codes=start,
                               final_losses=final, info=info, latent=latent.detach())


def _check_needs(stage: _Stage, encoder: nn.Module | None) -> None:
    if stage.requires_encoder and encoder is None:
        raise ValueError(f"{stage.name!r} needs an encoder: pass encoder=load_encoder(...) (CLI: --encoder NAME)")


def _stage_name(stage: str | _Stage) -> str:
    return stage if isinstance(stage, str) else stage.name


def _with_default(p: Param, default: Any) -> Param:
    from dataclasses import replace

    return replace(p, default=default)


def evaluate_latent(ctx: InversionContext, latent: Latent, *, noise_mode: str = "const",
                    chunk_size: int | None = None) -> tuple[torch.Tensor, dict[str, list[float]], dict[str, Any]]:
    """Reconstructions of ``latent`` and the loss terms at it (``pix``, and ``feat`` with a feature network):
    what an embedding without refiners reports. W+-only latents go through the optimisation loop's own
    evaluation with zero steps, so the numbers equal those an optimiser reports at its start."""
    from .optimize import resolve_feature_weight, run_inversion

    if not latent.parts:
        res = run_inversion(ctx.generator, ctx.images, latent.wp, steps=0, lr=0.0, feature_net=ctx.feature_net,
                            mask=ctx.mask, l_feat=resolve_feature_weight(None, ctx.feature_net),
                            noise_mode=noise_mode, chunk_size=chunk_size)
        return res.images, res.final_losses, res.info
    with torch.no_grad():
        images = render(ctx.generator, latent, noise_mode=noise_mode)
        error = ctx.images - images
        if ctx.mask is not None:
            error = error * ctx.mask
        pix = error.pow(2).flatten(1).mean(1)
    return images, {"pix": pix.tolist(), "total": pix.tolist()}, {"steps_run": 0}


__all__ = ["Composition", "Embedder", "InversionContext", "RefineResult", "Refiner", "evaluate_latent",
           "get_embedder", "get_refiner"]
