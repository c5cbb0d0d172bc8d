"""W+ code files: the one format for an inverted or edited code saved to disk.

A code file is safetensors with one tensor ``code`` ``[num_layers, w_dim]`` (float32, W+) and string
metadata: ``space`` (``"wp"``), ``generator`` (the model it belongs to) and whatever the writer adds (the
inversion ``method``, the ``edits`` made, ...). ``idinvert invert`` and ``idinvert edit --save-code`` write
them, the app's "Download W+ code" button too; ``idinvert edit --code``, ``interpolate``, ``mix`` and
``diffuse`` read them back with :func:`load_code`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

CODE_TENSOR = "code"
CODE_SUFFIX = ".safetensors"


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
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such code file (codes are the .safetensors files `idinvert invert` writes)")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ValueError(f"{path} is not a safetensors code file ({exc})") from None
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


__all__ = ["CODE_TENSOR", "is_code_file", "load_code", "save_code"]
