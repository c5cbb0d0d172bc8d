"""Pipelines: a generator and what goes with it, declared by a ``pipeline.json`` beside its weights.

A :class:`Pipeline` is the main job's home: it knows a generator, its encoder(s), the perceptual (feature)
network of the optimisers, the attribute classifier, the editing directions and the default inversion
method, and offers :meth:`~Pipeline.invert`, :meth:`~Pipeline.edit`, :meth:`~Pipeline.render`,
:meth:`~Pipeline.save` and :meth:`~Pipeline.load`. The CLI, the web app and ``idinvert evaluate`` get their
components from it.

``pipeline.json`` (diffusers' ``model_index.json`` is the precedent) sits in the generator's model folder::

    {"generator": ".",
     "domain": "street-scenes",
     "encoder": "street-stylegan2-64-encoder",
     "encoders": {"conventional": "street-stylegan2-64-encoder-conventional"},
     "feature_net": "classifier:street-classifier-64",
     "classifier": "street-classifier-64",
     "directions": "directions/",
     "default_method": "idinvert"}

Each reference is a named model (``model_cards/``), a folder relative to the pipeline folder (``"."``,
``"../my-encoder"``, ``"encoder/"``) or a Hub id (``org/name[@revision]``); ``feature_net`` also takes the
forms of :func:`~idinvert_plugins.losses.load_feature_network` (``classifier:REF``, ``vgg16-conv43:PATH``
with ``PATH`` relative to the folder). ``directions`` is a folder (or a list of folders) relative to the
pipeline folder. ``domain`` names the registered image domain the generator belongs to (its attribute schema,
test images, default classifier and perceptual network; :mod:`idinvert_plugins.domains`). ``null`` means
"none"; a key left out falls back to the naming rules below.

A folder without ``pipeline.json`` (a converted checkpoint, a model trained before pipelines) falls back to
the naming rules the library always used: the encoder ``<generator>-encoder`` (and
``<generator>-encoder-conventional``) when it resolves locally, the domain whose naming rule claims the
generator (:meth:`Domain.matches <idinvert_plugins.domain_spec.Domain.matches>`; the declared ``domain`` when
there is one) with its classifier as perceptual network and classifier, the folder's ``directions/``.

References are resolved (and checked) when the pipeline is made, so a bad reference fails at once with an
error naming the ``pipeline.json`` key and its value; the weights of the optional components load on first
use. Loading takes a lock, so one pipeline can be shared read-only between threads (the app's sessions);
every network is frozen (eval mode, no parameter gradients).

Example::

    from idinvert_plugins.pipeline import Pipeline
    pipe = Pipeline.from_pretrained("street-stylegan2-64")   # a named model, a folder or a Hub id
    result = pipe.invert("face.png", steps=50)          # IDInvert, the pipeline's default method
    smiling = pipe.edit(result.codes, "manipulate", direction="smile", strength=2.0)
    pipe.save(smiling.codes, "smiling.safetensors")
"""

from __future__ import annotations

import difflib
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .hub import (
    _HUB_ID,
    CONFIG_NAME,
    ModelLoadError,
    ModelNotFoundError,
    ResolvedModel,
    default_encoder,
    encoder_name,
    load_model,
    read_config,
    resolve_model,
)

if TYPE_CHECKING:
    from .domain_spec import Domain
    from .editors.base import EditContext, Editor, EditResult
    from .editors.directions import Direction
    from .inverters.base import InversionResult, Inverter
    from .latent import Latent
    from .models.base import Generator

PIPELINE_NAME = "pipeline.json"
AUTO = "auto"
DEFAULT_METHOD = "idinvert"
DEFAULT_DIRECTIONS = "directions/"
#: the keys a ``pipeline.json`` may hold (keys starting with ``_`` are comments and ignored)
PIPELINE_KEYS = ("generator", "encoder", "encoders", "feature_net", "classifier", "directions", "default_method",
                 "description", "typical_mse", "alignment", "domain", "discriminator")
_COMPONENTS = ("encoder", "encoders", "feature_net", "classifier", "directions")
_KIND = {"encoder": "encoder", "classifier": "classifier"}


class PipelineError(ModelLoadError):
    """A ``pipeline.json`` (or an argument of :meth:`Pipeline.from_pretrained`) names something unusable."""


@dataclass(frozen=True)
class Ref:
    """One resolved component reference: ``key`` (``"encoder"``, ``"encoders.conventional"``, ...), ``value``
    as written, ``target`` (what the loaders take: a model name, Hub id, absolute folder or feature-network
    spec) and ``origin`` (``"pipeline.json"``, ``"argument"`` or ``"fallback"``)."""

    key: str
    value: str
    target: str
    origin: str


def _none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))


def _freeze(module: nn.Module | None) -> nn.Module | None:
    # Shared between sessions and threads: no parameter gradients ever, so the inverters' `frozen()` has nothing
    # to toggle and concurrent inversions cannot race on requires_grad flags.
    if module is not None:
        module.eval().requires_grad_(False)
    return module


def check_encoder(encoder: nn.Module, generator: Generator, name: str) -> None:
    """Refuse an encoder whose W+ shape or input size does not fit the generator, naming both."""
    L, D = getattr(encoder, "num_layers", None), getattr(encoder, "w_dim", None)
    res = getattr(encoder, "resolution", None)
    if (L, D) != (generator.num_layers, generator.w_dim) or res != generator.resolution:
        raise ValueError(f"encoder {name!r} (W+ {L}x{D}, {res} px) does not fit the generator (W+ "
                         f"{generator.num_layers}x{generator.w_dim}, {generator.resolution} px): it belongs to "
                         "another generator; pass the matching --encoder")


def read_pipeline_config(folder: str | Path) -> dict[str, Any] | None:
    """The ``pipeline.json`` of ``folder`` (None if it has none), with its keys checked."""
    path = Path(folder) / PIPELINE_NAME
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{path} is not valid JSON ({exc}): fix it or delete it (without it the folder "
                            "falls back to the naming rules)") from None
    if not isinstance(config, dict):
        raise PipelineError(f"{path} must hold a JSON object ({{\"generator\": \".\", ...}}), not "
                            f"{type(config).__name__}")
    check_pipeline_config(config, str(path))
    return config


def check_pipeline_config(config: Mapping[str, Any], where: str = PIPELINE_NAME) -> None:
    """Unknown keys and values of the wrong type raise :class:`PipelineError` naming the key."""
    for key, value in config.items():
        if key.startswith("_"):
            continue
        if key not in PIPELINE_KEYS:
            close = difflib.get_close_matches(key, PIPELINE_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PipelineError(f"{where}: unknown key {key!r}{hint}; the keys are {', '.join(PIPELINE_KEYS)}")
        if value is None:
            continue
        if key == "encoders":
            if not isinstance(value, dict) or not all(isinstance(v, str) or v is None for v in value.values()):
                raise PipelineError(f"{where}: key 'encoders' must be an object of named encoder references, "
                                    f"e.g. {{\"conventional\": \"my-encoder-conventional\"}}; got {value!r}")
        elif key == "typical_mse":  # {"<method>": mean reconstruction MSE on held-out faces}, see domain.py
            if not isinstance(value, dict) or not all(isinstance(v, int | float) and v > 0 for v in value.values()):
                raise PipelineError(f"{where}: key 'typical_mse' must be an object of positive numbers by inversion "
                                    f"method, e.g. {{\"encoder\": 0.016, \"idinvert\": 0.011}}; got {value!r}")
        elif key == "alignment":  # {"aligner": NAME, "template": NAME or its numbers}, see align/photo.py
            ok = isinstance(value, dict) and set(value) <= {"aligner", "template"} and isinstance(
                value.get("aligner", ""), str) and isinstance(value.get("template", ""), str | dict)
            if not ok:
                raise PipelineError(f"{where}: key 'alignment' must be an object with an aligner name and a template "
                                    f"(a name or its numbers), e.g. {{\"aligner\": \"dlib\", \"template\": \"ffhq\"}}; "
                                    f"got {value!r}")
        elif key == "domain":
            if not isinstance(value, str) or not value.strip():
                raise PipelineError(f"{where}: key 'domain' must name a registered image domain (`idinvert plugins` "
                                    f"lists them), got {value!r}")
        elif key == "directions":
            if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
                raise PipelineError(f"{where}: key 'directions' must be a folder (or a list of folders) relative "
                                    f"to the pipeline folder, e.g. \"directions/\"; got {value!r}")
        elif not isinstance(value, str):
            raise PipelineError(f"{where}: key {key!r} must be a string (a named model, a folder relative to the "
                                f"pipeline folder or a Hub id), got {value!r}")


def write_pipeline_config(folder: str | Path, config: Mapping[str, Any]) -> Path:
    """Write ``config`` (checked) as ``folder/pipeline.json`` and return its path."""
    check_pipeline_config(config, f"{Path(folder) / PIPELINE_NAME}")
    path = Path(folder) / PIPELINE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(config), indent=2) + "\n", encoding="utf-8")
    return path


def fallback_config(name: str | Path, resolution: int, keys: Iterable[str] | None = None,
                    domain: str | None = None) -> dict[str, Any]:
    """What the naming rules give for generator ``name`` (a name, Hub id or folder) when it has no
    ``pipeline.json``: ``<name>-encoder`` / ``<name>-encoder-conventional`` where they resolve locally, the
    domain ``domain`` (a registered name; None: the one whose naming rule claims ``name`` at ``resolution``) with
    its classifier and perceptual network, ``directions/``, IDInvert. ``keys``: only these (the keys a
    ``pipeline.json`` leaves out; looking encoders up costs a little). A ``domain`` no installed plugin registers
    gives no classifier or perceptual network (:meth:`Pipeline.from_pretrained` notes it)."""
    from .domains import UnknownNameError, domain_for_model, get_domain

    keys = set(("generator", "domain", "encoder", "encoders", "feature_net", "classifier", "directions",
                "default_method") if keys is None else keys)
    try:
        dom = get_domain(domain) if domain else domain_for_model(str(name), resolution)
    except UnknownNameError:
        dom = None
    config: dict[str, Any] = {"generator": ".", "domain": dom.name if dom is not None else None,
                              "feature_net": dom.feature_net if dom is not None else None,
                              "classifier": dom.classifier if dom is not None else None,
                              "directions": DEFAULT_DIRECTIONS, "default_method": DEFAULT_METHOD}
    if "encoder" in keys:
        config["encoder"] = default_encoder(name)
    if "encoders" in keys:
        conventional = default_encoder(name, "conventional")
        config["encoders"] = {"conventional": conventional} if conventional else {}
    return {k: v for k, v in config.items() if k in keys}


class _Resolver:
    """Turns component references into loadable :class:`Ref` targets, with errors naming the key."""

    def __init__(self, folder: Path | None, base: ResolvedModel | None, where: str,
                 cache_dir: str | Path | None, local_files_only: bool | None) -> None:
        self.folder, self.base, self.where = folder, base, where
        self.cache_dir, self.local_files_only = cache_dir, local_files_only

    def _cards(self) -> dict[str, Any]:
        """The named models' cards, read once per resolver."""
        if not hasattr(self, "_card_cache"):
            from .cards import list_cards

            self._card_cache = list_cards()
        return self._card_cache

    def _fail(self, key: str, value: str, origin: str, why: str) -> PipelineError:
        if origin == "pipeline.json":
            return PipelineError(f"{self.where}: key {key!r} = {value!r}: {why}")
        return PipelineError(f"{key} {value!r}: {why}")

    def _hub_subfolder(self, rel: str) -> Path | None:
        """A subfolder of a Hub pipeline's snapshot, fetched into the cache if needed."""
        base = self.base
        if base is None or base.origin != "hub" or rel.startswith(("..", "/")):
            return None
        try:
            from huggingface_hub import snapshot_download

            snapshot_download(base.repo_id, revision=base.commit, cache_dir=self.cache_dir,
                              local_files_only=bool(self.local_files_only),
                              allow_patterns=[f"{rel.strip('/')}/*"])
        except Exception:  # offline or not in the repo: reported by the caller
            return None
        candidate = Path(base.folder) / rel
        return candidate if candidate.is_dir() else None

    def model(self, key: str, value: str, origin: str, kind: str | None) -> Ref:
        """A model reference: a folder (relative to the pipeline folder for ``pipeline.json`` values), a named
        model or a Hub id; its ``config.json`` kind is checked against ``kind``."""
        text = str(value).strip()
        folder: Path | None = None
        if origin == "pipeline.json" and self.folder is not None:
            candidate = (self.folder / text) if text not in (".", "./") else self.folder
            if candidate.is_dir():
                folder = candidate
            elif text.startswith((".", "/")) or text.endswith("/"):
                folder = self._hub_subfolder(text)
                if folder is None:
                    raise self._fail(key, value, origin, f"no such folder {candidate} (a relative reference is "
                                                         f"read from the pipeline folder {self.folder})")
        else:
            candidate = Path(text).expanduser()
            if candidate.is_dir():
                folder = candidate
        if folder is not None:
            if not (folder / CONFIG_NAME).is_file():
                raise self._fail(key, value, origin, f"{folder} is a folder but not a model folder (no "
                                                     f"{CONFIG_NAME})")
            target = str(folder.resolve())
            resolved_folder = folder
        else:
            if text not in self._cards() and not _HUB_ID.match(text.removeprefix("hf-hub:")):
                where = f" (relative to {self.folder})" if origin == "pipeline.json" and self.folder else ""
                raise self._fail(key, value, origin, f"not a model folder{where}, not a named model and not a Hub "
                                                     "id (org/name[@revision]); `idinvert models` lists the "
                                                     "named models")
            try:
                resolved_folder = resolve_model(text, cache_dir=self.cache_dir,
                                                local_files_only=self.local_files_only).folder
            except (ModelNotFoundError, ModelLoadError) as exc:
                raise self._fail(key, value, origin, str(exc)) from None
            target = text
        if kind is not None:
            try:
                found = read_config(Path(resolved_folder))["kind"]
            except (ModelNotFoundError, ModelLoadError) as exc:
                raise self._fail(key, value, origin, str(exc)) from None
            if found != kind:
                def a(word: str) -> str:
                    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"

                raise self._fail(key, value, origin, f"it is {a(found)} model, not {a(kind)}")
        return Ref(key, str(value), target, origin)

    def feature_net(self, key: str, value: str, origin: str) -> Ref:
        """A feature-network spec: ``classifier:REF``, ``vgg16-conv43:PATH``, a weights file or a model REF."""
        from .losses.perceptual import CLASSIFIER_PREFIX, VGG_PREFIX

        text = str(value).strip()
        if text.startswith(CLASSIFIER_PREFIX):
            ref = self.model(key, text[len(CLASSIFIER_PREFIX):], origin, "classifier")
            return Ref(key, str(value), CLASSIFIER_PREFIX + ref.target, origin)
        other = self._loss_network(key, value, origin)
        if other is not None:
            return other
        path_text = text[len(VGG_PREFIX):] if text.startswith(VGG_PREFIX) else text
        base = self.folder if origin == "pipeline.json" and self.folder is not None else Path.cwd()
        path = base / Path(path_text).expanduser()
        if text.startswith(VGG_PREFIX) or (path.suffix in (".safetensors", ".pth", ".pt") and not path.is_dir()):
            if not path.exists():
                raise self._fail(key, value, origin, f"no VGG16 weights at {path}")
            return Ref(key, str(value), VGG_PREFIX + str(path.resolve()) if path.is_file() else str(path.resolve()),
                       origin)
        ref = self.model(key, text, origin, None)
        return Ref(key, str(value), ref.target, origin)

    def _loss_network(self, key: str, value: str, origin: str) -> Ref | None:
        """``NAME`` / ``NAME:REF`` of a perceptual network a plugin registered (``register_loss_networks``; the
        built-in ``classifier`` and ``vgg16-conv43`` are read above and below): a ``REF`` that is a file or
        folder relative to the pipeline folder (``pipeline.json``) or the working directory becomes absolute;
        anything else (a Hub id) is kept. The network loads when the pipeline is used."""
        from .hub import local_path_reason
        from .losses.networks import parse_loss_spec
        from .losses.perceptual import VGG_PREFIX

        text = str(value).strip()
        parsed = parse_loss_spec(text)
        if parsed is None:
            return None
        net, ref = parsed
        if ":" not in text and Path(text).expanduser().exists():  # a bare name that is a local path here
            return None
        if net.kind != "perceptual":
            raise self._fail(key, value, origin, f"{net.name!r} is an {net.kind} network, not a perceptual one")
        if ref:
            base = self.folder if origin == "pipeline.json" and self.folder is not None else Path.cwd()
            path = base / Path(ref).expanduser()
            if text.startswith(VGG_PREFIX) and (path.exists() or local_path_reason(ref) is not None):
                return None  # a VGG16 weights path: checked below
            if path.exists():
                return Ref(key, str(value), f"{net.name}:{path.resolve()}", origin)
        return Ref(key, str(value), text, origin)

    def directions(self, value: str | Sequence[str], origin: str) -> list[Path]:
        """Direction folders (relative to the pipeline folder for ``pipeline.json`` values); a missing folder is
        allowed (no directions learned yet), a file in its place is not."""
        values = [value] if isinstance(value, str) else list(value)
        out = []
        for v in values:
            base = self.folder if origin != "argument" and self.folder is not None else Path.cwd()
            path = base / Path(v).expanduser()
            if path.exists() and not path.is_dir():
                raise self._fail("directions", v, origin, f"{path} is not a folder of direction files")
            out.append(path)
        return out


class Pipeline:
    """A generator and what goes with it.

    Attributes: ``name`` (what it was loaded as; written into code files), ``folder`` (the pipeline / generator
    folder, None for one built from modules), ``config`` (the ``pipeline.json`` contents, or what the naming
    rules gave), ``source`` (``"pipeline.json"``, ``"fallback"`` or ``"modules"``), ``generator``, and, loaded
    on first use: ``encoder`` (the domain-guided encoder or None), ``encoders`` (named extra encoders, e.g.
    ``"conventional"``), ``feature_net`` (the optimisers' perceptual network or None), ``classifier``,
    ``directions`` (name -> :class:`~idinvert_plugins.editors.directions.Direction`) and ``default_method``.
    ``notes`` say what is missing and why (shown by the app).
    """

    def __init__(self, generator: Generator, *, name: str | None = None, folder: str | Path | None = None,
                 config: Mapping[str, Any] | None = None, source: str = "modules",
                 encoder: nn.Module | Ref | None = None, encoders: Mapping[str, nn.Module | Ref] | None = None,
                 feature_net: nn.Module | Ref | None = None, classifier: nn.Module | Ref | None = None,
                 directions: Mapping[str, Direction] | Sequence[str | Path] | None = None,
                 default_method: str = DEFAULT_METHOD, device: str | torch.device | None = None,
                 notes: Iterable[str] = ()) -> None:
        """Build a pipeline from a loaded generator and components, each a module, a :class:`Ref` (loaded on
        first use) or None; ``directions`` is a dict of directions or folders to read them from (first use).
        Most callers want :meth:`from_pretrained`."""
        self.generator: Generator = _freeze(generator)  # type: ignore[assignment]
        resolved = getattr(generator, "resolved", None)
        self.name = str(name if name is not None else getattr(resolved, "name", None) or type(generator).__name__)
        self.folder = Path(folder) if folder is not None else (Path(resolved.folder) if resolved is not None
                                                                else None)
        self.config: dict[str, Any] = dict(config or {})
        self.source = source
        self.default_method = default_method
        self.device = torch.device(device) if device is not None else generator.w_avg.device
        self.notes: list[str] = list(notes)
        self._specs: dict[str, Any] = {"encoder": encoder, "encoders": dict(encoders or {}),
                                       "feature_net": feature_net, "classifier": classifier}
        if directions is None or isinstance(directions, Mapping):
            self._specs["directions"] = []
            self._loaded: dict[str, Any] = {"directions": dict(directions or {})}
        else:
            self._specs["directions"] = [Path(d) for d in directions]
            self._loaded = {}
        self._lock = threading.RLock()
        self._fallback_feature_net = False
        self._load_options: dict[str, Any] = {}
        self._encoder_given = False  # from_pretrained(encoder=...) / --encoder: it serves every method

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_folder_or_hub_id: str | Path, *, encoder: str | nn.Module | None = AUTO,
                        encoders: Mapping[str, str | nn.Module | None] | None = None,
                        feature_net: str | nn.Module | None = AUTO, classifier: str | nn.Module | None = AUTO,
                        directions: Sequence[str | Path] = (), default_method: str | None = None,
                        device: str | torch.device | None = None, revision: str | None = None,
                        cache_dir: str | Path | None = None, local_files_only: bool | None = None,
                        generator: Generator | None = None) -> Pipeline:
        """Load a generator (a named model, a folder or a Hub id ``org/name[@revision]``) with what its
        ``pipeline.json`` declares, or what the naming rules give when it has none.

        ``encoder``, ``feature_net`` and ``classifier``: ``"auto"`` takes the pipeline's, None / ``"none"``
        means without, anything else (a name, folder, Hub id, loaded module; for ``feature_net`` a spec of
        :func:`~idinvert_plugins.losses.load_feature_network`) replaces it. ``encoders`` replaces named extra
        encoders (a None value drops one). ``directions``: extra folders searched first (they win on a name
        clash). The generator loads now (``generator``: one already loaded from that name, used as is); the
        other networks on first use.
        """
        from .hub import load_generator

        device = device if device is not None else "cpu"
        given = str(name_or_folder_or_hub_id)
        path = Path(given).expanduser()
        pipeline_folder: Path | None = None
        config: dict[str, Any] | None = None
        gen_ref: str | Path = name_or_folder_or_hub_id
        if path.is_dir() and not (path / CONFIG_NAME).is_file() and (path / PIPELINE_NAME).is_file():
            # a pipeline folder without weights of its own: its generator is a reference
            pipeline_folder, config = path, read_pipeline_config(path)
            value = (config or {}).get("generator")
            if _none(value) or value in (".", "./"):
                raise PipelineError(f"{path / PIPELINE_NAME}: key 'generator' = {value!r}: this folder has no "
                                    f"{CONFIG_NAME} of its own, so 'generator' must name the generator (a named "
                                    "model, a folder relative to this one or a Hub id)")
            ref = _Resolver(path, None, str(path / PIPELINE_NAME), cache_dir, local_files_only).model(
                "generator", value, "pipeline.json", "generator")
            gen_ref = ref.target
        G = generator if generator is not None else load_generator(
            gen_ref, revision=revision, device=device, cache_dir=cache_dir, local_files_only=local_files_only)
        resolved = getattr(G, "resolved", None)
        if not isinstance(resolved, ResolvedModel):
            raise TypeError("generator= must be a generator loaded with load_generator (it carries .resolved)")
        if pipeline_folder is None:
            pipeline_folder = Path(resolved.folder)
            config = _read_beside(resolved, cache_dir, local_files_only)
            if config is not None and config.get("generator") not in (None, ".", "./"):
                raise PipelineError(f"{pipeline_folder / PIPELINE_NAME}: key 'generator' = "
                                    f"{config['generator']!r}: a pipeline.json beside a generator's weights "
                                    "must say \"generator\": \".\"")
        where = str(pipeline_folder / PIPELINE_NAME)
        source = "pipeline.json" if config is not None else "fallback"
        fallback = fallback_config(given, G.resolution,
                                   None if config is None else [k for k in PIPELINE_KEYS if k not in config],
                                   domain=None if config is None or _none(config.get("domain")) else config["domain"])
        declared = dict(config or {})
        effective = {**fallback, **{k: v for k, v in declared.items() if not k.startswith("_")}}
        resolver = _Resolver(pipeline_folder, resolved, where, cache_dir, local_files_only)
        notes: list[str] = []
        if not _none(declared.get("domain")):
            from .domains import domain_names

            if declared["domain"] not in domain_names():
                notes.append(f"{where} names the domain {declared['domain']!r}, which no installed plugin registers "
                             f"(known: {', '.join(domain_names()) or 'none'}): its classifier, perceptual network "
                             "and example images are unavailable unless pipeline.json names them.")

        def origin_of(key: str) -> str:
            return "pipeline.json" if key in declared else "fallback"

        # -- the domain-guided encoder
        enc_spec: nn.Module | Ref | None = None
        if isinstance(encoder, nn.Module):
            enc_spec = encoder
        elif encoder == AUTO:
            value = effective.get("encoder")
            if _none(value):
                if origin_of("encoder") == "pipeline.json":
                    notes.append(f"No encoder ({where} says none): 'encoder only' is unavailable and IDInvert "
                                 "starts from the average code without its domain regulariser.")
                else:
                    notes.append(f"No encoder found ({encoder_name(given)!r} does not resolve): 'encoder only' "
                                 "is unavailable and IDInvert starts from the average code without its domain "
                                 "regulariser. Pass --encoder NAME_OR_FOLDER once one is trained.")
            else:
                enc_spec = resolver.model("encoder", value, origin_of("encoder"), "encoder")
        elif _none(encoder):
            notes.append("No encoder: 'encoder only' is unavailable and IDInvert starts from the average code "
                         "without its domain regulariser.")
        else:
            enc_spec = resolver.model("encoder", str(encoder), "argument", "encoder")

        # -- named extra encoders
        extra: dict[str, nn.Module | Ref] = {}
        listed = dict(effective.get("encoders") or {})
        for key, value in {**listed, **dict(encoders or {})}.items():
            if isinstance(value, nn.Module):
                extra[key] = value
            elif not _none(value):
                origin = "argument" if encoders and key in encoders else origin_of("encoders")
                extra[key] = resolver.model(f"encoders.{key}" if origin != "argument" else f"encoder {key!r}",
                                            str(value), origin, "encoder")

        # -- perceptual network and classifier
        def component(key: str, choice: Any) -> nn.Module | Ref | None:
            if isinstance(choice, nn.Module):
                return choice
            if choice == AUTO:
                value, origin = effective.get(key), origin_of(key)
            elif _none(choice):
                return None
            else:
                value, origin = str(choice), "argument"
            if _none(value):
                return None
            if key == "feature_net":
                return resolver.feature_net(key, value, origin)
            return resolver.model(key, value, origin, _KIND.get(key))

        feat_spec = component("feature_net", feature_net)
        clf_spec = component("classifier", classifier)

        # -- directions: extra folders first (they win), then the pipeline's
        dirs = effective.get("directions")
        folders = resolver.directions(dirs, origin_of("directions")) if not _none(dirs) else []
        if getattr(G, "resolved", None) is not None and not _none(dirs):  # what `directions learn` wrote for it
            from .editors.directions import learned_directions_folder

            learned = learned_directions_folder(G)
            folders += [learned] if learned.resolve() not in {f.resolve() for f in folders} else []
        folders += [Path(d) for d in directions]  # later folders win in _load_directions
        method = default_method or str(effective.get("default_method") or DEFAULT_METHOD)
        pipe = cls(G, name=given, folder=pipeline_folder, config=config if config is not None else fallback,
                   source=source, encoder=enc_spec, encoders=extra, feature_net=feat_spec, classifier=clf_spec,
                   directions=folders, default_method=method, device=device, notes=notes)
        pipe._fallback_feature_net = isinstance(feat_spec, Ref) and feat_spec.origin == "fallback"
        pipe._load_options = {"cache_dir": cache_dir, "local_files_only": local_files_only}
        pipe._encoder_given = isinstance(encoder, nn.Module) or (isinstance(encoder, str) and encoder != AUTO
                                                                 and not _none(encoder))
        return pipe

    # -- components (loaded on first use, under the lock) ------------------------------------------------
    def _get(self, key: str) -> Any:
        if key in self._loaded:
            return self._loaded[key]
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = getattr(self, f"_load_{key}")()
            return self._loaded[key]

    def _load_module(self, spec: nn.Module | Ref | None, kind: str) -> nn.Module | None:
        if spec is None:
            return None
        if isinstance(spec, nn.Module):
            return _freeze(spec.to(self.device))
        try:
            module = load_model(spec.target, kind=kind, device=self.device, **self._load_options)
        except (ModelNotFoundError, ModelLoadError) as exc:
            raise PipelineError(f"{self._where(spec)}{exc}") from None
        return _freeze(module)

    def _where(self, ref: Ref) -> str:
        if ref.origin == "pipeline.json" and self.folder is not None:
            return f"{self.folder / PIPELINE_NAME}: key {ref.key!r} = {ref.value!r}: "
        return f"{ref.key} {ref.value!r}: "

    def _checked_encoder(self, spec: nn.Module | Ref | None) -> nn.Module | None:
        module = self._load_module(spec, "encoder")
        if module is not None:
            name = spec.value if isinstance(spec, Ref) else type(module).__name__
            try:
                check_encoder(module, self.generator, name)
            except ValueError as exc:
                raise PipelineError(f"{self._where(spec) if isinstance(spec, Ref) else ''}{exc}") from None
        return module

    def _load_encoder(self) -> nn.Module | None:
        return self._checked_encoder(self._specs["encoder"])

    def _load_encoders(self) -> dict[str, nn.Module]:
        return {k: self._checked_encoder(v) for k, v in self._specs["encoders"].items()}

    def _load_feature_net(self) -> nn.Module | None:
        from .losses import load_feature_network

        spec = self._specs["feature_net"]
        if spec is None:
            return None
        if isinstance(spec, nn.Module):
            return _freeze(load_feature_network(spec, device=self.device))
        try:
            return _freeze(load_feature_network(spec.target, device=self.device))
        except (ModelNotFoundError, ModelLoadError, OSError, ValueError, TypeError) as exc:
            if self._fallback_feature_net:
                self.notes.append(f"Perceptual loss off: {spec.value} did not load ({exc}).")
                return None
            raise PipelineError(f"{self._where(spec)}{exc}") from None

    def _load_classifier(self) -> nn.Module | None:
        return self._load_module(self._specs["classifier"], "classifier")

    def _load_directions(self) -> dict[str, Direction]:
        from .editors.directions import Direction

        paths: dict[str, Path] = {}
        for folder in self._specs["directions"]:
            if folder.is_dir():
                paths.update({p.stem: p for p in sorted(folder.glob("*.safetensors")) if p.is_file()})
        out: dict[str, Direction] = {}
        G = self.generator
        for name, path in sorted(paths.items()):
            try:
                direction = Direction.load(path)
                direction.offsets(G.num_layers, G.w_dim)  # shape check against this generator
            except ValueError as exc:
                self.notes.append(f"Direction {name!r} skipped: {exc}")
                continue
            out[name] = direction
        return out

    @property
    def encoder(self) -> nn.Module | None:
        """The domain-guided encoder (None if the pipeline has none)."""
        return self._get("encoder")

    @property
    def encoders(self) -> dict[str, nn.Module]:
        """Named extra encoders (e.g. ``"conventional"``)."""
        return self._get("encoders")

    @property
    def feature_net(self) -> nn.Module | None:
        """The perceptual network of the optimising inverters (None: pixel loss only)."""
        return self._get("feature_net")

    @property
    def domain(self) -> Domain | None:
        """The registered image domain the generator belongs to (``pipeline.json``'s ``domain``, else the one
        whose naming rule claims it), or None."""
        from .domains import domain_for_model, domain_names, get_domain

        name = self.config.get("domain")
        if not _none(name):
            return get_domain(str(name)) if str(name) in domain_names() else None  # not installed: see notes
        return domain_for_model(self.name, self.generator.resolution) if "domain" not in self.config else None

    @property
    def classifier(self) -> nn.Module | None:
        """The attribute classifier (None if the pipeline has none)."""
        return self._get("classifier")

    def discriminator(self) -> nn.Module | None:
        """The generator's discriminator, named by ``pipeline.json``'s optional ``discriminator`` key (a named
        model, a folder relative to the pipeline folder, or a Hub id); None without the key. Loaded on each call
        (it is only needed by jobs such as ``idinvert directions optimize``, not by inversion or editing)."""
        from .hub import load_model

        value = self.config.get("discriminator")
        if _none(value):
            return None
        local = self.folder / str(value) if self.folder is not None else None
        target = local if local is not None and local.is_dir() else str(value)
        try:
            return load_model(target, kind="discriminator", device=self.device)
        except (ModelNotFoundError, ModelLoadError, OSError, ValueError) as exc:
            raise PipelineError(f"{self.folder or self.name}/{PIPELINE_NAME}: key 'discriminator' = {value!r}: "
                                f"{exc}") from None

    @property
    def directions(self) -> dict[str, Direction]:
        """Editing directions by name, checked against the generator (bad files are skipped with a note)."""
        return self._get("directions")

    @property
    def direction_folders(self) -> list[Path]:
        """Where :attr:`directions` are read from (later folders win on a name clash)."""
        return list(self._specs["directions"])

    @property
    def resolution(self) -> int:
        return int(self.generator.resolution)

    def has(self, key: str) -> bool:
        """Whether the pipeline declares component ``key`` (without loading it)."""
        if key == "directions":
            return bool(self.directions)
        spec = self._specs[key]
        return bool(spec) if key == "encoders" else spec is not None

    def load_all(self) -> Pipeline:
        """Load every component now (the app does this once before sharing the pipeline between threads)."""
        for key in _COMPONENTS:
            self._get(key)
        return self

    def references(self) -> dict[str, Any]:
        """Each component's reference as resolved (a name, Hub id, folder or feature-network spec)."""
        def show(spec: Any) -> Any:
            if isinstance(spec, Ref):
                return spec.target
            return None if spec is None else f"<{type(spec).__name__}>"

        return {"encoder": show(self._specs["encoder"]),
                "encoders": {k: show(v) for k, v in self._specs["encoders"].items()},
                "feature_net": show(self._specs["feature_net"]), "classifier": show(self._specs["classifier"]),
                "directions": [str(p) for p in self._specs["directions"]], "default_method": self.default_method}

    def describe(self) -> str:
        """A short Markdown summary: size, encoder, directions and anything missing."""
        G = self.generator
        parts = [f"**{self.name}**: {type(G).__name__}, {G.resolution}x{G.resolution} px, W+ "
                 f"{G.num_layers}x{G.w_dim}",
                 "encoder: yes" if self.encoder is not None else "encoder: none",
                 f"directions: {', '.join(self.directions) or 'none'}"]
        text = "; ".join(parts) + "."
        if self.notes:
            text += "\n\n" + "\n".join(f"- {n}" for n in self.notes)
        return text

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, source={self.source!r}, references={self.references()!r})"

    # -- the main job --------------------------------------------------------------------------------------
    def images(self, images: Any, *, crop: bool = False) -> torch.Tensor:
        """Images ``[N, C, R, R]`` in [-1, 1] on the pipeline's device from a tensor (``[C, R, R]`` or
        ``[N, C, R, R]``), a path or PIL image, or a list of those (loaded at the generator's resolution)."""
        from .images import load_image

        if isinstance(images, torch.Tensor):
            x = images[None] if images.ndim == 3 else images
        else:
            items = list(images) if isinstance(images, (list, tuple)) else [images]
            x = torch.stack([load_image(p, self.resolution, crop=crop) for p in items])
        return x.to(self.device, torch.float32)

    def invert(self, images: Any, method: str | Inverter | None = None, *, crop: bool = False,
               embed: str | None = None, refine: str | Sequence[str] | None = None, **options: Any
               ) -> InversionResult:
        """Invert ``images`` (see :meth:`images`) with ``method`` (default: the pipeline's ``default_method``), or
        with a composition of ``embed`` (default: ``encoder`` when the pipeline has one, else ``mean``) and the
        refiners ``refine`` (names, run in order), e.g. ``pipe.invert(x, embed="encoder", refine=["wplus"])``.

        ``options`` go to the inverter: its declared parameters (``steps``, ``lr``, ``l_dom``, ...; for
        compositions ``"STAGE.KEY"`` sets one stage's) and the call options of
        :meth:`~idinvert_plugins.inverters.base.Inverter.invert` (``mask``, ``init_codes``, ``progress``,
        ``callback``). The pipeline supplies the encoder and the perceptual network. The result's ``latent``
        holds everything the method kept (see :mod:`idinvert_plugins.latent`).
        """
        from .plugins import get_plugins

        if embed is not None or refine is not None:
            if method is not None:
                raise ValueError("give either method= or embed=/refine= (a composition), not both")
            from .inverters.stages import Composition, get_embedder, get_refiner

            refiners = [refine] if isinstance(refine, str) else list(refine or ())
            embed = embed or ("encoder" if self.encoder is not None else "mean")
            method = Composition("+".join([embed, *refiners]), get_embedder(embed),
                                 tuple(get_refiner(r) for r in refiners))
        if method is not None and not isinstance(method, str):  # an inverter object, e.g. an ad-hoc Composition
            inverter, method = method, method.name
        else:
            method = method or self.default_method
            inverter = get_plugins().get("inverter", method)
        encoder = self.encoder_for(inverter)
        role = getattr(inverter, "encoder_role", None)
        if role and encoder is None:
            from .inverters.psp_family import encoder_key_hint

            raise ValueError(f"method {method!r} needs its {role} encoder and the pipeline {self.name!r} has none: "
                             f"{encoder_key_hint(role, 'encoders={...} to Pipeline.from_pretrained')}")
        if getattr(inverter, "requires_encoder", False) and encoder is None \
                and options.get("init_codes") is None:
            raise ValueError(f"method {method!r} needs a domain-guided encoder and the pipeline {self.name!r} has "
                             "none: pass encoder=NAME_OR_FOLDER to Pipeline.from_pretrained (or declare one in "
                             "its pipeline.json), or use method='image2stylegan'")
        feature_net = self.feature_net if getattr(inverter, "uses_feature_net", True) else None
        return inverter.invert(self.generator, self.images(images, crop=crop), encoder=encoder,
                               feature_net=feature_net, **options)

    def encoder_for(self, inverter: Any) -> nn.Module | None:
        """The encoder ``inverter`` (a method or stage) runs with: the named extra encoder of its
        ``encoder_role`` when the pipeline has one (``"encoders": {"e4e": ...}`` for ``--method e4e``), else the
        pipeline's :attr:`encoder`. An encoder given explicitly (``from_pretrained(encoder=...)``, the CLI's
        ``--encoder``) wins over the declared ones: the user asked for it."""
        role = getattr(inverter, "encoder_role", None)
        if role and not self._encoder_given and self._specs["encoders"].get(role) is not None:
            return self.encoders.get(role)
        return self.encoder

    def direction(self, spec: Direction | str | Path | torch.Tensor) -> Direction:
        """A direction: a :class:`Direction`, a vector, a ``.safetensors`` path, or the name of one of this
        pipeline's :attr:`directions` (an unknown name lists the available ones)."""
        from .editors.directions import LEARN_HINT, DirectionNotFoundError, _looks_like_path, load_direction

        if not isinstance(spec, str) or _looks_like_path(spec) or (Path(spec).suffix and Path(spec).is_file()):
            return load_direction(spec)
        if spec in self.directions:
            return self.directions[spec]
        where = ", ".join(str(p) for p in self.direction_folders) or "(no direction folders)"
        listing = ", ".join(self.directions) or "none"
        raise DirectionNotFoundError(f"no direction {spec!r} in {where}. Available: {listing}. To add one, "
                                     f"{LEARN_HINT}.")

    def edit_context(self, editor: Editor | None = None) -> EditContext:
        """The :class:`~idinvert_plugins.editors.base.EditContext` for ``editor``: the components it ``needs``
        or ``uses`` (all of them when no editor is given), loaded on demand."""
        from .editors.base import CONTEXT_COMPONENTS, EditContext

        wanted = CONTEXT_COMPONENTS if editor is None else (*getattr(editor, "needs", ()),
                                                             *getattr(editor, "uses", ()))
        return EditContext(self.generator, **{c: self._get(c) for c in CONTEXT_COMPONENTS if c in wanted})

    def edit(self, codes_or_latent: torch.Tensor | Latent, editor: str | Editor, **params: Any) -> EditResult:
        """Run the registered editor ``editor`` (or an :class:`Editor` instance) on W+ codes ``[N, L, D]``
        (``[L, D]`` for one) or a :class:`~idinvert_plugins.latent.Latent` (W+ editors keep its other parts),
        with this pipeline's components as its context. ``direction`` parameters may be names of this
        pipeline's directions."""
        from .plugins import get_plugins

        ed = get_plugins().get("editor", editor) if isinstance(editor, str) else editor
        kinds = {p.name: p.kind for p in getattr(ed, "params", ())}
        for key, value in list(params.items()):
            if kinds.get(key) == "direction" and value is not None:
                params[key] = self.direction(value)
            elif kinds.get(key) == "code" and isinstance(value, torch.Tensor):
                params[key] = self._codes(value)
        return ed(self.generator, self._codes(codes_or_latent), context=self.edit_context(ed), **params)

    def _codes(self, codes: torch.Tensor | Latent) -> torch.Tensor | Latent:
        from .latent import Latent

        if isinstance(codes, Latent):
            return codes.to(self.device)
        codes = codes.detach().to(self.device) if isinstance(codes, torch.Tensor) else torch.as_tensor(codes)
        G = self.generator
        if codes.ndim == 2 and tuple(codes.shape) == (G.num_layers, G.w_dim):
            codes = codes[None]
        return codes

    def render(self, codes_or_latent: torch.Tensor | Latent) -> torch.Tensor:
        """Images of W+ codes ``[..., L, D]`` (or W codes ``[N, D]``), or of a latent with all its parts, with
        constant noise and no gradients: ``[..., C, R, R]`` in about [-1, 1] on the pipeline's device."""
        from .latent import Latent
        from .latent import render as render_latent

        G = self.generator
        if isinstance(codes_or_latent, Latent):
            with torch.no_grad():
                return render_latent(G, codes_or_latent.to(self.device), noise_mode="const")
        codes = codes_or_latent.detach().to(self.device)
        if codes.ndim == 2 and tuple(codes.shape) != (G.num_layers, G.w_dim):
            codes = G.to_wplus(codes)
        flat = codes.reshape(-1, *codes.shape[-2:])
        with torch.no_grad():
            images = G.synthesis(flat, noise_mode="const")
        return images.reshape(*codes.shape[:-2], *images.shape[1:])

    def save(self, codes_or_latent: torch.Tensor | Latent, path: str | Path, **metadata: Any) -> Path:
        """Write one image's code (``[L, D]`` or ``[1, L, D]``) or latent (every part) to a code file, recording
        this pipeline's generator; ``metadata`` (the method, the edits, ...) is stored as strings."""
        from .codes import save_latent

        x = codes_or_latent
        n = x.wp.shape[0] if hasattr(x, "wp") else (x.shape[0] if isinstance(x, torch.Tensor) and x.ndim == 3 else 1)
        if n != 1:
            raise ValueError(f"a code file holds one image's code, got {n}: save codes[i] (or latent[i]) to one "
                             "file each")
        return save_latent(x, path, generator=self.name, **metadata)

    def load(self, path: str | Path) -> Latent:
        """The latent in a code file (a batch of 1; ``.wp`` its W+ code ``[1, L, D]``, ``.parts`` whatever the
        method kept, ``.info`` the file's metadata), checked against the generator, on the pipeline's device.
        Code files of earlier versions (W+ only) load as latents without parts."""
        from .codes import load_latent

        return load_latent(path, self.generator).to(self.device)


def _read_beside(resolved: ResolvedModel, cache_dir: str | Path | None, local_files_only: bool | None
                 ) -> dict[str, Any] | None:
    """The ``pipeline.json`` beside a resolved generator (fetched into the Hub cache for a Hub snapshot)."""
    folder = Path(resolved.folder)
    if not (folder / PIPELINE_NAME).is_file() and resolved.origin == "hub" and resolved.repo_id:
        try:
            from huggingface_hub import hf_hub_download

            hf_hub_download(resolved.repo_id, PIPELINE_NAME, revision=resolved.commit, cache_dir=cache_dir,
                            local_files_only=bool(local_files_only))
        except Exception:  # not in the repo, or offline and not cached: the naming rules apply
            pass
    return read_pipeline_config(folder)


def link_converted(folders: Sequence[str | Path]) -> Path | None:
    """After ``idinvert convert``: give a converted generator a ``pipeline.json`` where there is something to
    declare, i.e. its encoder was converted too (the sibling folder ``<generator>-encoder``, written before or
    in the same call): ``{"generator": ".", "encoder": "../<generator>-encoder", "default_method": "idinvert"}``.
    An existing ``pipeline.json`` is never overwritten. Returns the file written, or None."""
    for folder in map(Path, folders):
        if read_config(folder)["kind"] != "generator" or (folder / PIPELINE_NAME).exists():
            continue
        encoder = folder.with_name(folder.name + "-encoder")
        if (encoder / CONFIG_NAME).is_file() and read_config(encoder)["kind"] == "encoder":
            return write_pipeline_config(folder, {"generator": ".", "encoder": f"../{encoder.name}",
                                                  "default_method": DEFAULT_METHOD})
    return None


def pipeline_info(name_or_folder: str | Path, **kwargs: Any) -> dict[str, Any]:
    """What ``idinvert info`` shows for a generator: where its pipeline comes from and what it references."""
    try:
        pipe = Pipeline.from_pretrained(name_or_folder, **kwargs)
    except PipelineError as exc:
        return {"error": str(exc)}
    return {"source": pipe.source, "file": str(pipe.folder / PIPELINE_NAME) if pipe.source == "pipeline.json"
            else None, "config": pipe.config, "resolved": pipe.references(), "notes": pipe.notes}


__all__ = ["AUTO", "DEFAULT_METHOD", "PIPELINE_KEYS", "PIPELINE_NAME", "Pipeline", "PipelineError", "Ref",
           "check_encoder", "check_pipeline_config", "fallback_config", "link_converted", "pipeline_info",
           "read_pipeline_config", "write_pipeline_config"]
