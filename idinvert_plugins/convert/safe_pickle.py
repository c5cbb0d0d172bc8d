"""Loading untrusted checkpoints without running code from them.

``pickle`` (and ``torch.load(weights_only=False)``) can call any importable function while loading, and
NVlabs ``.pkl`` files even embed the source code of their networks to execute it. This module only ever
materialises data:

* :func:`safe_load` - ``.pt`` / ``.pth`` files (torch zip or legacy format) and raw pickles. It first tries
  ``torch.load(weights_only=True)`` (with ``argparse.Namespace`` allowed, for rosinality ``train.py``
  checkpoints), then the restricted unpickler below.
* :func:`load_nvlabs_pkl` - an official StyleGAN2-ADA ``.pkl``: rebuilds each network's ``state_dict`` and
  constructor kwargs from the pickled module state, without executing the embedded ``module_src``.
* :class:`RestrictedUnpickler` - a ``pickle.Unpickler`` whose ``find_class`` only returns an allow-list:
  tensor/parameter/storage rebuilders, plain containers, numpy dtypes/scalars/arrays, torch dtypes, and
  data-only stand-ins for ``dnnlib.util.EasyDict``, ``argparse.Namespace`` and NVlabs's
  ``torch_utils.persistence._reconstruct_persistent_obj``. Anything else raises
  :class:`UnsafeCheckpointError` naming the global.
"""

from __future__ import annotations

import _compat_pickle
import argparse
import io
import os
import pickle
import types
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "ACCEPTED_FORMATS",
    "EasyDict",
    "NamespaceDict",
    "NotACheckpointError",
    "PersistentObject",
    "RestrictedUnpickler",
    "UnsafeCheckpointError",
    "load_nvlabs_pkl",
    "restricted_loads",
    "safe_load",
]

# First bytes of a legacy (pre-zip) torch.save file: protocol 2, then the pickled magic number.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file references a Python global that is not on the allow-list (it could run code)."""


#: What ``idinvert convert`` reads, for error messages.
ACCEPTED_FORMATS = ("a PyTorch checkpoint written by torch.save (.pt / .pth: genforce/IDInvert, rosinality "
                    "train.py, a plain state_dict), an NVlabs stylegan2-ada-pytorch network pickle (.pkl), or a "
                    "safetensors state dict (.safetensors)")


class NotACheckpointError(pickle.UnpicklingError, ValueError):
    """The file is not a checkpoint at all (empty, an image, text, a truncated or foreign file)."""


_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip archive (unpack it first)"),
          (b"PK\x03\x04", "a zip archive that is not a torch.save file"), (b"\x89HDF", "an HDF5 (Keras) file"),
          (b"{", "a JSON/text file"))


def _describe(head: bytes) -> str:
    """What the first bytes of a file look like, for an error message."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "a text file"
    return "not a pickle or safetensors file"


def _not_a_checkpoint(path: Path, why: str) -> NotACheckpointError:
    return NotACheckpointError(f"{path} is not a checkpoint: {why}. Accepted: {ACCEPTED_FORMATS}; "
                               "`idinvert convert --format NAME` picks the layout")


def _is_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON header."""
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n <= size - 8 and head[8:9] == b"{"


class EasyDict(dict):
    """Data-only stand-in for ``dnnlib.util.EasyDict``: a dict with attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setstate__(self, state: Any) -> None:  # pickled instance __dict__ (normally empty)
        if isinstance(state, Mapping):
            self.update(state)


class NamespaceDict(EasyDict):
    """What an ``argparse.Namespace`` becomes: a dict of its attributes (with attribute access)."""


class PersistentObject(dict):
    """The ``meta`` dict of an NVlabs persistent object: ``type``, ``version``, ``module_src`` (never run),
    ``class_name`` and ``state`` (the module's ``__dict__``: ``_parameters``, ``_buffers``, ``_modules``,
    ``_init_args``, ``_init_kwargs``, ...)."""


def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    if not isinstance(meta, Mapping) or meta.get("type") != "class":
        raise UnsafeCheckpointError(f"unexpected NVlabs persistent object metadata: {type(meta).__name__}")
    return PersistentObject(meta)


def _load_storage_from_bytes(b: bytes) -> Any:
    return torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)


def _codecs_encode(obj: Any, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles store ``bytes`` as _codecs.encode(str, "latin1"); nothing else is allowed.
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError("_codecs.encode is only allowed for the protocol-2 bytes encoding (latin1)")
    return obj.encode("latin1")


def _numpy_attr(module: str, name: str) -> Any:
    """``numpy._core.<sub>.<name>`` (numpy 2) or ``numpy.core.<sub>.<name>`` (numpy 1), whichever exists."""
    sub = module.rsplit(".", 1)[-1]
    for mod in (f"numpy._core.{sub}", f"numpy.core.{sub}"):
        try:
            return getattr(__import__(mod, fromlist=[name]), name)
        except (ImportError, AttributeError):
            continue
    raise UnsafeCheckpointError(f"numpy has no {module}.{name}")


_ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
    ("collections", "OrderedDict"): lambda: OrderedDict,
    ("builtins", "dict"): lambda: dict,
    ("builtins", "list"): lambda: list,
    ("builtins", "tuple"): lambda: tuple,
    ("builtins", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
    ("builtins", "bytearray"): lambda: bytearray,
    ("_codecs", "encode"): lambda: _codecs_encode,
    ("torch._utils", "_rebuild_tensor"): lambda: torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): lambda: torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): lambda: torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): lambda: torch._utils._rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): lambda: _load_storage_from_bytes,
    ("torch", "Size"): lambda: torch.Size,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy.core.multiarray", "scalar"): lambda: _numpy_attr("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_attr("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_attr("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_attr("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): lambda: _numpy_attr("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): lambda: _numpy_attr("numpy._core.numeric", "_frombuffer"),
    ("dnnlib.util", "EasyDict"): lambda: EasyDict,
    ("argparse", "Namespace"): lambda: NamespaceDict,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): lambda: _reconstruct_persistent_obj,
}


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that only resolves allow-listed globals (see the module docstring).

    It also works as the ``pickle_module.Unpickler`` of ``torch.load`` (storages are then resolved by
    torch's persistent-id mechanism, which runs no code from the file).
    """

    source: str = "<pickle>"

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names in protocol <= 2 pickles (``__builtin__.set``), as pickle.Unpickler maps them.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        factory = _ALLOWED.get((module, name))
        if factory is not None:
            return factory()
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise UnsafeCheckpointError(
            f"refusing to load the global '{module}.{name}' from {self.source}: only tensors, plain containers, "
            "numpy scalars and NVlabs/rosinality metadata are allowed, because unpickling anything else can run "
            "arbitrary code. If you trust this file, load it with its original code and save the network's "
            "state_dict() with torch.save(), then convert that file instead."
        )


def _restricted_unpickler_for(source: str) -> type[RestrictedUnpickler]:
    return type("RestrictedUnpickler", (RestrictedUnpickler,), {"source": source})


def restricted_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with the :class:`RestrictedUnpickler`."""
    return _restricted_unpickler_for(source)(io.BytesIO(data)).load()


def _restricted_pickle_module(source: str) -> types.ModuleType:
    """A stand-in for the ``pickle`` module, for ``torch.load(pickle_module=...)``."""
    unpickler = _restricted_unpickler_for(source)
    module = types.ModuleType("idinvert_restricted_pickle")
    module.Unpickler = unpickler  # type: ignore[attr-defined]
    module.load = lambda f, **kwargs: unpickler(f, **kwargs).load()  # type: ignore[attr-defined]
    module.__dict__["UnpicklingError"] = pickle.UnpicklingError
    return module


def _namespaces_to_dicts(obj: Any) -> Any:
    """Replace ``argparse.Namespace`` objects (from ``torch.load``) by :class:`NamespaceDict`, recursively."""
    if isinstance(obj, argparse.Namespace):
        return NamespaceDict({k: _namespaces_to_dicts(v) for k, v in vars(obj).items()})
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, argparse.Namespace | dict | list):
                obj[k] = _namespaces_to_dicts(v)
        return obj
    if isinstance(obj, list):
        return [_namespaces_to_dicts(v) for v in obj]
    return obj


def safe_load(path: str | os.PathLike[str]) -> Any:
    """Load a checkpoint (``.pt``/``.pth`` written by ``torch.save``, or a raw pickle such as an NVlabs
    ``.pkl``) without executing code from it. Tensors land on the CPU. ``argparse.Namespace`` values
    become :class:`NamespaceDict`, ``EasyDict`` a dict subclass, NVlabs persistent objects their metadata
    dict (:class:`PersistentObject`). Raises :class:`UnsafeCheckpointError` for anything else."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
    if size == 0:
        raise _not_a_checkpoint(path, "the file is empty (0 bytes; an interrupted download or copy?)")
    if _is_safetensors(head, size):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise _not_a_checkpoint(path, f"a safetensors header, but the file is damaged or truncated ({exc})"
                                    ) from None
    if len(head) > 8 and head[8:9] == b"{":
        need = int.from_bytes(head[:8], "little") + 8
        raise _not_a_checkpoint(path, f"a safetensors file truncated to {size} bytes (its header alone needs "
                                      f"{need}); download or copy it again")
    if path.suffix == ".safetensors":
        raise _not_a_checkpoint(path, f"it ends in .safetensors but has no safetensors header ({size} bytes, "
                                      f"{_describe(head)}; damaged or truncated?)")
    if head.startswith(b"PK\x03\x04") and not zipfile.is_zipfile(path):
        raise _not_a_checkpoint(path, f"a zip archive (the torch.save format) truncated or damaged ({size} bytes); "
                                      "download or copy it again")
    is_zip = zipfile.is_zipfile(path)
    is_torch_file = is_zip or head.startswith(_LEGACY_TORCH_MAGIC)
    try:
        if not is_torch_file:
            if not head.startswith(b"\x80"):  # every pickle of protocol 2+ starts with PROTO
                raise _not_a_checkpoint(path, f"it looks like {_describe(head)}")
            with open(path, "rb") as f:
                return _restricted_unpickler_for(str(path))(f).load()
        try:
            with torch.serialization.safe_globals([argparse.Namespace]):
                obj = torch.load(path, map_location="cpu", weights_only=True)
            return _namespaces_to_dicts(obj)
        except UnsafeCheckpointError:
            raise
        except pickle.UnpicklingError:
            pass  # a global outside torch's allow-list: try ours, which knows NVlabs/rosinality metadata
        return torch.load(path, map_location="cpu", weights_only=False,
                          pickle_module=_restricted_pickle_module(str(path)))
    except (UnsafeCheckpointError, NotACheckpointError):
        raise
    except (pickle.UnpicklingError, EOFError, RuntimeError, KeyError, IndexError, ValueError, TypeError,
            AttributeError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        what = "a zip archive" if is_zip else "a torch.save file" if is_torch_file else "a pickle"
        raise _not_a_checkpoint(path, f"it starts like {what} but cannot be read ({type(exc).__name__}: "
                                      f"{str(exc).splitlines()[0] if str(exc) else 'truncated'})") from None


def _module_state_dict(obj: Mapping[str, Any], prefix: str = "") -> dict[str, torch.Tensor]:
    """``state_dict()`` of a pickled NVlabs module, from its state's ``_parameters``/``_buffers``/``_modules``."""
    state = obj.get("state") if isinstance(obj, PersistentObject) else obj
    if not isinstance(state, Mapping) or "_parameters" not in state:
        raise ValueError(f"{prefix or 'network'}: not a pickled torch module (no _parameters in its state)")
    out: dict[str, torch.Tensor] = {}
    for name, p in state["_parameters"].items():
        if p is not None:
            out[prefix + name] = p.detach()
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    for name, b in state.get("_buffers", {}).items():
        if b is not None and name not in non_persistent:
            out[prefix + name] = b.detach()
    for name, m in state.get("_modules", {}).items():
        if m is not None:
            out.update(_module_state_dict(m, f"{prefix}{name}."))
    return out


def _plain(obj: Any) -> Any:
    """EasyDicts/tuples of kwargs -> plain JSON-like containers."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def load_nvlabs_pkl(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an NVlabs stylegan2-ada-pytorch ``.pkl`` (``network-snapshot-*.pkl``) without running its code.

    Returns ``{"G_ema": net, "G": net, "D": net, "augment_pipe": net, "training_set_kwargs": dict}`` (the
    networks present in the file), where ``net = {"state_dict": {...}, "init_kwargs": {...},
    "init_args": [...], "class_name": "training.networks.Generator"}``.
    """
    data = safe_load(path)
    if not isinstance(data, Mapping) or not any(isinstance(v, PersistentObject) for v in data.values()):
        raise ValueError(
            f"{path} is not an NVlabs network pickle (expected a dict holding persistent networks such as G_ema)"
        )
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, PersistentObject):
            state = value.get("state") or {}
            out[key] = {
                "state_dict": _module_state_dict(value),
                "init_kwargs": _plain(state.get("_init_kwargs") or {}),
                "init_args": _plain(state.get("_init_args") or []),
                "class_name": value.get("class_name"),
            }
        elif isinstance(value, Mapping):
            out[key] = _plain(value)
        elif value is not None:
            out[key] = value
    if "G_ema" not in out:
        raise ValueError(f"{path} has no G_ema network (found: {sorted(out)})")
    return out
