"""Models by name: a model is a folder ``config.json`` + ``model.safetensors`` (+ ``README.md`` card).

``load_model(name)`` resolves, in order:

1. an existing local folder path;
2. a name with a card in ``model_cards/``: its bundled folder under ``weights/`` if present, otherwise the
   card's Hugging Face Hub ``repo_id`` at its pinned ``revision``;
3. a Hub id ``org/repo`` or ``org/repo@revision`` directly (through ``huggingface_hub``'s cache, so
   ``HF_HOME``, ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` apply).

Loading is strict (missing, unexpected or mis-shaped tensors are errors) and only safetensors are read:
pickled checkpoints go through ``idinvert convert`` and its restricted unpickler.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._version import __version__
from .cards import ModelCard, card_stub, list_cards, read_card, weights_dir

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FORMAT_VERSION = 1
LIBRARY_NAME = "idinvert-plugins"


class ModelNotFoundError(FileNotFoundError):
    """The name, path or Hub revision could not be resolved to a model folder."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ModelLoadError(RuntimeError):
    """The model folder exists but its files are unusable (corrupt, mismatched, unsupported)."""


@dataclass
class ResolvedModel:
    """Where a model name led: the local folder plus its provenance."""

    folder: Path
    name: str
    origin: str  # "path", "bundled" or "hub"
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None
    card: ModelCard | None = None


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def parse_hub_id(name: str) -> tuple[str, str | None]:
    """``"org/repo@rev"`` -> ``("org/repo", "rev")``; also accepts a ``hf-hub:`` prefix (timm style)."""
    name = name.removeprefix("hf-hub:")
    repo_id, _, revision = name.partition("@")
    return repo_id, (revision or None)


def _download(repo_id: str, revision: str | None, cache_dir: str | Path | None,
              local_files_only: bool | None, optional: tuple[str, ...] = (CARD_NAME,)) -> ResolvedModel:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = bool(local_files_only) or bool(constants.HF_HUB_OFFLINE)
    rev = revision or "main"
    paths: dict[str, Path] = {}
    for filename in (CONFIG_NAME, WEIGHTS_NAME, *optional):
        try:
            paths[filename] = Path(hf_hub_download(
                repo_id, filename, revision=revision, cache_dir=cache_dir,
                local_files_only=bool(local_files_only)))
        except LocalEntryNotFoundError:
            if filename in optional:
                continue
            where = "offline mode (HF_HUB_OFFLINE=1)" if offline else "the Hub could not be reached"
            raise ModelNotFoundError(
                f"{filename} of {repo_id!r} at revision {rev!r} is not in the local Hugging Face cache "
                f"({constants.HF_HUB_CACHE if cache_dir is None else cache_dir}) and {where}. "
                "Download it once with network access (e.g. `huggingface-cli download "
                f"{repo_id} --revision {rev}`), or pass a local model folder instead."
            ) from None
        except RevisionNotFoundError:
            raise ModelNotFoundError(f"revision {rev!r} does not exist in Hub repo {repo_id!r}") from None
        except RepositoryNotFoundError:
            raise ModelNotFoundError(f"Hub repo {repo_id!r} does not exist (or is private: log in with "
                                     "`huggingface-cli login`)") from None
        except EntryNotFoundError:
            if filename in optional:
                continue
            raise ModelNotFoundError(f"Hub repo {repo_id!r} at revision {rev!r} has no {filename}: it is "
                                     "not an idinvert-plugins model folder (convert it with `idinvert convert`)"
                                     ) from None
    folder = paths[CONFIG_NAME].parent
    if paths[WEIGHTS_NAME].parent != folder:
        raise ModelLoadError(f"{repo_id}: config.json and model.safetensors resolved to different snapshots")
    if not offline:
        _download_extras(repo_id, folder.name, cache_dir)
    return ResolvedModel(folder=folder, name=f"{repo_id}@{rev}" if revision else repo_id, origin="hub",
                         repo_id=repo_id, revision=rev, commit=folder.name)


#: Optional files of a model repo fetched with it: its editing directions (see ``editors/directions.py``).
EXTRA_PATTERNS = ("directions/*.safetensors", "directions/summary.json", "directions/README.md")


def _download_extras(repo_id: str, commit: str, cache_dir: str | Path | None) -> None:
    """Fetch the optional :data:`EXTRA_PATTERNS` files of the snapshot ``commit`` into the cache (online only;
    offline, whatever is already cached in the snapshot folder is used). Failure is a warning: the model
    itself is already there."""
    import warnings

    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, revision=commit, cache_dir=cache_dir, allow_patterns=list(EXTRA_PATTERNS))
    except Exception as exc:  # network or Hub errors must not stop the model from loading
        warnings.warn(f"could not fetch the editing directions of {repo_id}@{commit[:12]} ({type(exc).__name__}: "
                      f"{exc}); the model loads without them", stacklevel=3)


HOME_ENV = "IDINVERT_HOME"


def idinvert_home() -> Path:
    """The user's own idinvert folder (learned directions live in its ``directions/<model>/``): ``$IDINVERT_HOME``,
    else ``$XDG_DATA_HOME/idinvert``, else ``~/.local/share/idinvert`` (``%LOCALAPPDATA%\\idinvert`` on Windows).
    Like ``HF_HOME`` for huggingface_hub: the library never writes into bundled or installed model folders."""
    import os

    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "idinvert"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data).expanduser() / "idinvert"


def is_shipped_folder(folder: str | Path) -> bool:
    """Whether ``folder`` belongs to an installation rather than to the user: the bundled ``weights/``, the
    installed package, a ``site-packages`` tree or the Hugging Face cache. Commands write there only when told."""
    from huggingface_hub import constants

    try:
        path = Path(folder).expanduser().resolve()
    except OSError:
        return False
    roots = [weights_dir(), Path(__file__).resolve().parent, Path(constants.HF_HUB_CACHE)]
    for root in roots:
        try:
            if path.is_relative_to(Path(root).expanduser().resolve()):
                return True
        except OSError:
            continue
    return any(part in ("site-packages", "dist-packages") for part in path.parts)


#: File suffixes that mark a name as a local file path, never a Hub id.
FILE_SUFFIXES = (".pt", ".pth", ".pkl", ".ckpt", ".bin", ".safetensors", ".json", ".yaml", ".yml", ".png",
                 ".jpg", ".jpeg", ".npy", ".npz", ".zip", ".tar", ".gz", ".onnx", ".h5")
#: First path components that are output folders of this library's commands (``-o out/...``, ``--out runs/...``),
#: not Hub organisations: ``out/rosinality-sg2-64`` is a folder that does not exist yet.
LOCAL_ROOTS = frozenset({"out", "output", "outputs", "runs", "run", "weights", "models", "checkpoints", "data",
                         "tmp", "results", "exports"})


def local_path_reason(name: str) -> str | None:
    """Why ``name`` must be a local path and not a Hub id (``None`` when it may be a Hub id).

    A Hub id is ``org/repo[@revision]``; a name starting with ``.``, ``~`` or ``/``, holding a backslash or
    more than one ``/`` before the revision, ending in a file suffix, whose first component exists here as a
    folder or is one of the usual output folders (:data:`LOCAL_ROOTS`) is a path. ``hf-hub:org/repo`` always
    means the Hub."""
    if name.startswith("hf-hub:"):
        return None
    repo = name.partition("@")[0]
    if name.startswith((".", "~", "/")) or re.match(r"^[A-Za-z]:[\\/]", name):
        return "it starts with '.', '~', '/' or a drive letter"
    if "\\" in name:
        return "it contains a backslash"
    if repo.count("/") > 1:
        return "it has more than one '/' (a Hub id is org/repo)"
    if repo.lower().endswith(FILE_SUFFIXES):
        return f"it ends in a file suffix ({Path(repo).suffix})"
    if "/" in repo:
        first = repo.split("/", 1)[0]
        if Path(first).is_dir():
            return f"its first part {first + '/'!r} is a folder here"
        if first.lower() in LOCAL_ROOTS:
            return f"{first + '/'!r} is an output folder name, not a Hub organisation"
    return None


def resolve_model(name_or_path: str | Path, *, revision: str | None = None, cache_dir: str | Path | None = None,
                  local_files_only: bool | None = None) -> ResolvedModel:
    """Turn a model name, Hub id or folder path into a local folder (downloading if needed and allowed)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise ModelNotFoundError(f"{path} is a folder but not a model folder: it has no {CONFIG_NAME}. "
                                     "Official checkpoints (.pt, .pth, .pkl) must be converted first: "
                                     f"`idinvert convert CHECKPOINT -o {path}-converted`")
        return ResolvedModel(folder=path, name=str(name_or_path), origin="path")
    name = str(name_or_path)
    if path.suffix in (".pt", ".pth", ".pkl", ".ckpt", ".bin") and path.exists():
        raise ModelNotFoundError(f"{path} is a {path.suffix} checkpoint; only converted model folders load "
                                 f"(pickles can run code). Convert it: `idinvert convert {path} -o OUT_DIR`")
    cards = list_cards()
    if name in cards:
        card = cards[name]
        local = card.data.get("local")
        if local:
            folder = weights_dir() / str(local)
            if (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file():
                return ResolvedModel(folder=folder, name=name, origin="bundled", card=card)
        repo_id = card.data.get("repo_id")
        if repo_id:
            resolved = _download(str(repo_id), revision or card.data.get("revision"), cache_dir, local_files_only)
            resolved.name, resolved.card = name, card
            return resolved
        raise ModelNotFoundError(
            f"model {name!r} has a card but its weights are not bundled here ({weights_dir() / str(local)}) "
            "and it has no published Hub repo. Train or convert it (see its card), or use another model."
        )
    if path.is_file():
        raise ModelNotFoundError(f"{path} is a file, not a model folder (a folder with {CONFIG_NAME} and "
                                 f"{WEIGHTS_NAME}); checkpoints are converted with `idinvert convert {path} -o "
                                 "OUT_DIR`, then OUT_DIR loads")
    why = local_path_reason(name)
    if isinstance(name_or_path, Path) or why is not None:
        hint = (f" Make it with the command that writes it, or give an existing folder, a named model "
                f"({', '.join(sorted(cards)) or 'none found'}) or a Hub id org/repo[@revision]")
        if why is not None and "/" in name and _HUB_ID.match(name):
            hint += f" (to force the Hub, write hf-hub:{name})"
        raise ModelNotFoundError(f"no such folder {str(path)!r} (looked in {Path.cwd()}): the name is taken as a "
                                 f"local path, not a Hub id, because {why or 'it was given as a Path'}, and the "
                                 f"Hub was not asked.{hint}.")
    if _HUB_ID.match(name.removeprefix("hf-hub:")) and not path.exists():
        repo_id, rev = parse_hub_id(name)
        return _download(repo_id, revision or rev, cache_dir, local_files_only)
    known = ", ".join(sorted(cards)) or "(no model cards found)"
    raise ModelNotFoundError(f"unknown model {name!r}: not a model folder, not a named model and not a Hub id "
                             f"(org/name[@revision]). Named models: {known}.")


def resolve_file(ref: str | Path, filenames: Sequence[str], *, what: str = "weights", revision: str | None = None,
                 cache_dir: str | Path | None = None, local_files_only: bool | None = None) -> Path:
    """A single weights file (not a model folder) by local path or Hub id, for networks whose weights come as one
    file in their authors' layout (e.g. ArcFace's ``model_ir_se50.pth``, loss networks of
    :mod:`idinvert_plugins.losses.networks`).

    ``ref`` is, in order: an existing file; an existing folder holding one of ``filenames`` (the first found);
    a Hub id ``org/repo[@revision]`` (or ``hf-hub:org/repo``), from which the first of ``filenames`` the repo
    has is downloaded through ``huggingface_hub``'s cache (so ``HF_HOME``, ``HF_HUB_CACHE`` and
    ``HF_HUB_OFFLINE`` apply; offline, only what is cached is found). Anything else is a missing local file
    (:func:`local_path_reason` decides what is a path). ``what`` names the file in error messages."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    names = ", ".join(filenames) or "(no file names)"
    if path.is_dir():
        for filename in filenames:
            if (path / filename).is_file():
                return path / filename
        raise ModelNotFoundError(f"{path} is a folder without the {what}: it holds none of {names}")
    name = str(ref)
    why = local_path_reason(name)
    if isinstance(ref, Path) or why is not None or not _HUB_ID.match(name.removeprefix("hf-hub:")):
        because = (f"; the name is taken as a local path, not a Hub id, because {why}" if why else
                   "" if isinstance(ref, Path) else " (and it is not a Hub id org/repo[@revision])")
        raise ModelNotFoundError(f"{what} file {path} not found (looked in {Path.cwd()}){because}")
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, rev = parse_hub_id(name)
    rev = revision or rev
    offline = bool(local_files_only) or bool(constants.HF_HUB_OFFLINE)
    not_cached = False
    for filename in filenames:
        try:
            return Path(hf_hub_download(repo_id, filename, revision=rev, cache_dir=cache_dir,
                                        local_files_only=bool(local_files_only)))
        except LocalEntryNotFoundError:
            not_cached = True
            if not offline:  # the Hub could not be reached: the other names would wait for it as long
                break
        except EntryNotFoundError:
            continue
        except RevisionNotFoundError:
            raise ModelNotFoundError(f"revision {rev!r} does not exist in Hub repo {repo_id!r}") from None
        except RepositoryNotFoundError:
            raise ModelNotFoundError(f"Hub repo {repo_id!r} does not exist (or is private: log in with "
                                     "`huggingface-cli login`)") from None
    where = f"Hub repo {repo_id!r} at revision {rev or 'main'!r}"
    if not_cached:
        reason = "offline mode (HF_HUB_OFFLINE=1)" if offline else "the Hub could not be reached"
        raise ModelNotFoundError(
            f"none of {names} ({what}) of {where} is in the local Hugging Face cache "
            f"({constants.HF_HUB_CACHE if cache_dir is None else cache_dir}) and {reason}. Download it once with "
            f"network access (`huggingface-cli download {repo_id} FILE`), or pass a local file instead")
    raise ModelNotFoundError(f"{where} has none of {names} ({what})")


def read_config(folder: Path) -> dict[str, Any]:
    """Read and validate a model folder's ``config.json``."""
    path = Path(folder) / CONFIG_NAME
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelNotFoundError(f"{folder} has no {CONFIG_NAME}") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc}); the download may be corrupt") from None
    missing = [k for k in ("format_version", "kind", "architecture", "args") if k not in config]
    if missing:
        raise ModelLoadError(f"{path} lacks {missing}: it was not written by idinvert-plugins. Convert "
                             "official checkpoints with `idinvert convert`.")
    if int(config["format_version"]) > FORMAT_VERSION:
        raise ModelLoadError(f"{path} has format_version {config['format_version']}, newer than this "
                             f"idinvert-plugins ({__version__}, format {FORMAT_VERSION}): upgrade the library")
    return config


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file, turning a corrupt or truncated file into a clear :class:`ModelLoadError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelNotFoundError(f"weights file {path} does not exist")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"weights file {path} is corrupt or truncated ({type(exc).__name__}: {exc}). Delete it and "
            "download or convert it again (for the Hugging Face cache: `huggingface-cli delete-cache`)."
        ) from None


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``model`` with no missing, unexpected or mis-shaped tensors allowed."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: file {list(state[k].shape)} vs model {list(expected[k].shape)}"
             for k in sorted(set(expected) & set(state)) if state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        def few(items: list[str]) -> str:
            return ", ".join(items[:8]) + (f" ... ({len(items)} in all)" if len(items) > 8 else "")

        parts = []
        if missing:
            parts.append(f"missing tensors: {few(missing)}")
        if unexpected:
            parts.append(f"unexpected tensors: {few(unexpected)}")
        if wrong:
            parts.append(f"shape mismatches: {few(wrong)}")
        raise ModelLoadError(f"{where}: the weights do not match config.json ({'; '.join(parts)}). The folder's "
                             "config.json and model.safetensors come from different models or versions; "
                             "re-download or re-convert it.")
    model.load_state_dict(state, strict=True)


def build_model(config: dict[str, Any]) -> nn.Module:
    """Instantiate the registered architecture named by a config (no weights)."""
    from .plugins import get_plugins

    kind = config["kind"]
    registry_kind = "generator" if kind == "generator" else kind
    cls = get_plugins().get(registry_kind, config["architecture"])
    try:
        return cls(**config["args"])
    except TypeError as exc:
        raise ModelLoadError(f"config.json args do not fit {cls.__name__}: {exc}") from None


def load_model(name_or_path: str | Path, *, kind: str | None = None, revision: str | None = None,
               device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
               cache_dir: str | Path | None = None, local_files_only: bool | None = None) -> nn.Module:
    """Load any model folder by name, Hub id or path, in eval mode. ``kind`` checks what was loaded."""
    resolved = resolve_model(name_or_path, revision=revision, cache_dir=cache_dir,
                             local_files_only=local_files_only)
    config = read_config(resolved.folder)
    if kind is not None and config["kind"] != kind:
        raise ModelLoadError(f"{resolved.name!r} is a {config['kind']}, not a {kind}")
    model = build_model(config)
    state = load_safetensors(resolved.folder / WEIGHTS_NAME)
    load_state_strict(model, state, f"{resolved.name} ({resolved.folder})")
    model.eval().to(device=device, dtype=dtype)
    model.resolved = resolved  # type: ignore[attr-defined] - provenance for cards and reproducibility
    return model


def load_generator(name_or_path: str | Path, **kwargs: Any):
    """Load a generator by name (a bundled or cached model, e.g. the default domain's ``default_generator``), Hub
    id (``org/repo@rev``) or folder path."""
    return load_model(name_or_path, kind="generator", **kwargs)


def load_encoder(name_or_path: str | Path, **kwargs: Any) -> nn.Module:
    return load_model(name_or_path, kind="encoder", **kwargs)


#: A generator's encoders are found by name: ``<generator>-encoder`` is IDInvert's domain-guided encoder,
#: ``<generator>-encoder-conventional`` the baseline (what ``idinvert train-encoder --export`` names them).
ENCODER_SUFFIXES = {"domain-guided": "-encoder", "conventional": "-encoder-conventional"}


def encoder_name(generator: str | Path, objective: str = "domain-guided") -> str:
    """The conventional name of ``generator``'s encoder (for a folder: the sibling folder of that name)."""
    if objective not in ENCODER_SUFFIXES:
        raise ValueError(f"unknown encoder objective {objective!r}; known: {', '.join(ENCODER_SUFFIXES)}")
    return str(generator).rstrip("/\\") + ENCODER_SUFFIXES[objective]


def default_encoder(generator: str | Path | None, objective: str = "domain-guided") -> str | None:
    """:func:`encoder_name` of ``generator`` if it resolves without downloading (a bundled named model, a
    sibling model folder, or one already in the Hugging Face cache), else None. The CLI, the app and
    ``idinvert evaluate`` use it when no encoder is given."""
    if generator is None:
        return None
    name = encoder_name(generator, objective)
    try:
        resolve_model(name, local_files_only=True)
    except (ModelNotFoundError, ModelLoadError, OSError, ValueError):
        return None
    return name


def save_pretrained(model: nn.Module, folder: str | Path, *, kind: str, card: ModelCard | dict | None = None,
                    dtype: torch.dtype | None = None, architecture: str | None = None,
                    args: dict[str, Any] | None = None, state_dict: dict[str, torch.Tensor] | None = None
                    ) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (+ ``README.md``) for ``model``.

    ``dtype`` (e.g. ``torch.float16``) sets the storage type of floating-point tensors; loading casts them
    back to the model's dtype. ``architecture``/``args``/``state_dict`` override what is read off ``model``
    (converters use them to write without building a module).
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    architecture = architecture or getattr(model, "architecture", None)
    args = dict(args if args is not None else getattr(model, "config", {}))
    if not architecture:
        raise ValueError("the model has no `architecture` attribute; pass architecture=")
    state = state_dict if state_dict is not None else model.state_dict()
    tensors = {}
    for k, v in state.items():
        v = v.detach().to("cpu")
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.clone().contiguous()
    config = {"library": LIBRARY_NAME, "library_version": __version__, "format_version": FORMAT_VERSION,
              "kind": kind, "architecture": architecture, "args": args,
              "storage_dtype": str(dtype or "float32").replace("torch.", "")}
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    save_file(tensors, str(folder / WEIGHTS_NAME),
              metadata={"format": "pt", "architecture": architecture, "kind": kind,
                        "format_version": str(FORMAT_VERSION)})
    if card is not None:
        if isinstance(card, dict):
            card = card_stub(card.get("name", folder.name), kind, architecture, args,
                             notes={k: v for k, v in card.items() if k != "name"})
        (folder / CARD_NAME).write_text(card.render(), encoding="utf-8")
    return folder


def list_models() -> list[dict[str, Any]]:
    """Named models with where they can be loaded from (bundled weights, Hub repo, or nowhere here)."""
    out = []
    for name, card in list_cards().items():
        local = card.data.get("local")
        bundled = bool(local) and (weights_dir() / str(local) / WEIGHTS_NAME).is_file()
        out.append({"name": name, "kind": card.data.get("kind"), "architecture": card.data.get("architecture"),
                    "resolution": card.data.get("resolution"), "bundled": bundled,
                    "repo_id": card.data.get("repo_id"), "card": str(card.path)})
    return out


__all__ = ["ENCODER_SUFFIXES", "ModelLoadError", "ModelNotFoundError", "ResolvedModel", "build_model",
           "default_encoder", "encoder_name", "list_models", "load_encoder", "load_generator", "load_model",
           "load_safetensors", "load_state_strict", "parse_hub_id", "read_card", "read_config", "resolve_file",
           "resolve_model", "save_pretrained"]
