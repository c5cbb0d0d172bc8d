"""Code files: the one format for an inverted or edited image's latent saved to disk.

A code file is safetensors with a tensor ``code`` ``[num_layers, w_dim]`` (float32, W+) and string metadata:
``space`` (``"wp"``), ``generator`` (the model it belongs to) and whatever the writer adds (the inversion
``method``, the ``edits`` made, ...). A :class:`~idinvert_plugins.latent.Latent` with parts adds one tensor per
part entry, named ``"<part>/<key>"`` (e.g. ``noise/b8.conv0``, ``weights/synthesis_network.b64.conv1.weight``,
stored in the part's ``storage_dtype``: weight offsets in float16), plus the metadata ``parts`` (comma-separated
part names) and ``format`` = ``"idinvert-latent-2"``. Files written before parts existed (``code`` only) load
as latents without parts, and :func:`load_code` keeps returning just the W+ code of any file.

``idinvert invert`` and ``idinvert edit --save-code`` write them, the app's download button too; ``idinvert
edit --code``, ``interpolate``, ``mix`` and ``diffuse`` read them back.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .latent import Latent

CODE_TENSOR = "code"
CODE_SUFFIX = ".safetensors"
FORMAT = "idinvert-latent-2"


def is_code_file(path: str | Path) -> bool:
    """Whether a command-line input names a code file (by its ``.safetensors`` suffix) rather than an image."""
    return Path(path).suffix == CODE_SUFFIX


def save_code(code: torch.Tensor, path: str | Path, *, generator: str | Path | None = None,
              **metadata: Any) -> Path:
    """Write one W+ code ``[L, D]`` (a leading batch axis of 1 is dropped) to ``path``.

    ``generator`` and the other keyword arguments are stored as string metadata next to ``space="wp"``.
    """
    from safetensors.torch import save_file

    code = code.detach().float().cpu()
    if code.ndim == 3 and code.shape[0] == 1:
        code = code[0]
    if code.ndim != 2:
        raise ValueError(f"a code file holds one W+ code [num_layers, w_dim], got {list(code.shape)}")
    meta = {"space": "wp", **({"generator": str(generator)} if generator is not None else {}),
            **{k: str(v) for k, v in metadata.items()}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({CODE_TENSOR: code.contiguous()}, str(path), metadata=meta)
    return path


def load_code(path: str | Path, generator: Any) -> torch.Tensor:
    """The W+ code ``[L, D]`` in ``path``, checked against ``generator`` and on its device.

    W codes ``[D]`` are broadcast to every layer; leading axes of size 1 are dropped. A missing file, another
    format or a code of another generator raises ``ValueError`` saying so.
    """
    tensors, _ = _read(path)
    path = Path(path)
    if CODE_TENSOR not in tensors:
        raise ValueError(f"{path} has no {CODE_TENSOR!r} tensor (found {sorted(tensors)}): codes are written by "
                         "`idinvert invert`")
    raw = tensors[CODE_TENSOR]
    code = raw.float()
    while code.ndim > 2 and code.shape[0] == 1:  # [1, L, D] -> [L, D]
        code = code[0]
    if code.ndim == 2 and code.shape[0] == 1:  # [1, D]: a W code
        code = code[0]
    L, D = generator.num_layers, generator.w_dim
    if tuple(code.shape) not in ((L, D), (D,)):
        raise ValueError(f"the code in {path} is {list(raw.shape)} but this generator needs W+ [{L}, {D}] or "
                         f"W [{D}]: was it inverted with another generator?")
    return generator.to_wplus(code[None].to(generator.w_avg.device))[0]


def _read(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such code file (codes are the .safetensors files `idinvert invert` writes)")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes), not a code file: write it again with `idinvert invert`")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise ValueError(f"{path} is not a safetensors code file ({exc})") from None
    return tensors, meta


def save_latent(latent: Latent | torch.Tensor, path: str | Path, *, generator: str | Path | None = None,
                **metadata: Any) -> Path:
    """Write one image's latent (W+ code and every part) to ``path``; a plain code tensor is written as by
    :func:`save_code`. Metadata: ``space``, ``format``, ``parts``, ``generator``, the latent's ``info`` and the
    keyword arguments (as strings)."""
    from safetensors.torch import save_file

    from .latent import Latent, get_part_type

    if not isinstance(latent, Latent):
        return save_code(latent, path, generator=generator, **metadata)
    if latent.wp.ndim != 3 or latent.wp.shape[0] != 1:
        raise ValueError(f"a code file holds one image's latent, got W+ {list(latent.wp.shape)}: save "
                         "latent[i] for each image i")
    tensors = {CODE_TENSOR: latent.wp[0].detach().float().cpu().contiguous()}
    for name, part in latent.parts.items():
        dtype = get_part_type(name).storage_dtype
        for key, t in part.items():
            if "/" in name:
                raise ValueError(f"latent part names cannot contain '/': {name!r}")
            tensors[f"{name}/{key}"] = t.detach().cpu().to(dtype).contiguous()
    info = {k: v for k, v in latent.info.items() if isinstance(v, (str, int, float, bool))}
    meta = {**{k: str(v) for k, v in info.items()}, "space": "wp", "format": FORMAT,
            "parts": ",".join(latent.parts),
            **({"generator": str(generator)} if generator is not None else {}),
            **{k: str(v) for k, v in metadata.items()}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return path


def load_latent(path: str | Path, generator: Any) -> Latent:
    """The :class:`~idinvert_plugins.latent.Latent` in ``path`` (batch of 1), checked against ``generator``
    and on its device; files with only a W+ (or W) code load as latents without parts. The file's metadata
    is in ``latent.info``."""
    from .latent import Latent, get_part_type

    tensors, meta = _read(path)
    wp = load_code(path, generator)[None]
    parts: dict[str, dict[str, torch.Tensor]] = {}
    device = generator.w_avg.device
    for key, t in tensors.items():
        if key == CODE_TENSOR:
            continue
        name, sep, sub = key.partition("/")
        if not sep:
            raise ValueError(f"{path}: unexpected tensor {key!r} (part tensors are named '<part>/<key>')")
        parts.setdefault(name, {})[sub] = t.float().to(device)
    for name, part in parts.items():
        try:
            get_part_type(name).check(generator, part)
        except ValueError as exc:
            raise ValueError(f"{path}: part {name!r} does not fit this generator: {exc}") from None
    return Latent(wp, parts, {k: v for k, v in meta.items() if k not in ("space", "format", "parts")})


__all__ = ["CODE_TENSOR", "FORMAT", "is_code_file", "load_code", "load_latent", "save_code", "save_latent"]
