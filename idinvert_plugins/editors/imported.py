"""Direction files of other projects, read into this library's :class:`~.directions.Direction` files, and their
official edit functions.

* InterFaceGAN ``*_boundary.npy``: a float64 ``[1, 512]`` unit normal (``_w_``: in W); official edit
  ``utils/manipulator.linear_interpolate``.
* GANSpace ``*.npz`` (``decomposition.py``): ``lat_comp [K, 1, 512]``, ``lat_mean``, ``lat_stdev [K]``, ...;
  official edit: the centred latent strip of ``notebooks/notebook_utils.py``, which **sets** the coordinate.
* e4e ``editings/interfacegan_directions/*.pt``: a tensor ``[1, 512]`` (``pose.pt``: ``[1, 18, 512]``); official
  edit ``LatentEditor.apply_interfacegan``: ``codes + factor * d``.
* e4e ``editings/ganspace_pca/*.pt``: ``{"mean": [1, 512], "comp": [80, 1, 512], "std": [80]}``; official edit
  ``editings/ganspace.edit``, which **sets** the coordinate.

Files are read without running code from them (``.npy`` / ``.npz`` with ``allow_pickle=False``, ``.pt`` through
the restricted unpickler).

**Two semantics.** InterFaceGAN and e4e's InterFaceGAN directions *shift* a W+ code: ``w + a * n`` (what
:class:`~.manipulate.Manipulate` does with any direction). InterFaceGAN's ``linear_interpolate`` on a single W
code ``[1, 512]`` instead *places* it at signed distance ``a`` from the hyperplane through the origin
(:func:`interfacegan_linear_interpolate` reproduces both). GANSpace and e4e's PCA edits *set* the coordinate
along a principal component: the strength is the target coordinate in units of the component's standard
deviation, relative to the PCA mean, whatever the code's coordinate was before. Those directions carry
``extra["edit"] = "set-coordinate"`` with the ``mean`` and ``stdev`` they need; :func:`set_coordinate` applies
them, and :class:`~.manipulate.Manipulate` (``idinvert edit --edit NAME=STRENGTH``) uses it for them. e4e
measures the coordinate on W+ layer 0 and moves every edited layer by the same offset (``measure_layer: 0``);
GANSpace measures it on each edited layer's own code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .directions import Direction

SET_COORDINATE = "set-coordinate"
#: what ``idinvert directions import`` reads, for messages
FORMATS = ("an InterFaceGAN boundary (.npy)", "a GANSpace component file (.npz)",
           "an e4e InterFaceGAN direction (interfacegan_directions/*.pt)",
           "an e4e GANSpace PCA file (ganspace_pca/*.pt)")
_INTERFACEGAN_NAME = re.compile(r"^(?P<gan>[a-z0-9]+)_(?P<data>[a-z0-9]+?)_(?P<attr>.+?)(?P<w>_w)?_boundary$")


class DirectionImportError(ValueError):
    """A file that does not import as directions; the message says what it is and what is expected."""


def _floats(t: torch.Tensor) -> list[float]:
    return [float(v) for v in t.reshape(-1).tolist()]


def _component(vector: torch.Tensor, name: str, *, mean: torch.Tensor, stdev: float, index: int, source: str,
               measure_layer: int | None, official: str) -> Direction:
    # ``raw``: the file's vector as it is (Direction.vector is renormalised, which moves float32 rows by an ulp);
    # the official edits use the raw vector, and so does set_coordinate, to reproduce them bit for bit
    return Direction(vector, name=name, source=source,
                     extra={"edit": SET_COORDINATE, "mean": _floats(mean), "stdev": float(stdev),
                            "component": index, "measure_layer": measure_layer, "official_edit": official,
                            "norm": float(vector.double().norm()), "raw": _floats(vector)})


def read_interfacegan_npy(path: Path, *, space: str | None = None, name: str | None = None) -> list[Direction]:
    """An InterFaceGAN boundary: a plain ``.npy`` array ``[1, w_dim]`` (or ``[1, L, w_dim]`` per layer)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DirectionImportError(f"{path} is not a readable .npy array ({exc})") from None
    if array.dtype.kind != "f" or array.ndim not in (2, 3) or array.shape[0] != 1:
        raise DirectionImportError(f"{path}: an InterFaceGAN boundary is a float array [1, w_dim] (or [1, layers, "
                                   f"w_dim]); this one is {array.dtype} {list(array.shape)}")
    m = _INTERFACEGAN_NAME.match(path.stem)
    in_w = space == "w" or (space is None and (m is None or bool(m.group("w"))))
    if space is None and m is not None and not m.group("w"):
        raise DirectionImportError(f"{path.name} is an InterFaceGAN boundary in Z (no '_w' before '_boundary'); this "
                                   "library edits W / W+ codes: import the '..._w_boundary.npy' file, or pass "
                                   "--space w if this one really is a W direction")
    if not in_w:
        raise DirectionImportError(f"{path.name}: only W-space boundaries edit W+ codes (--space w)")
    attribute = m.group("attr") if m else path.stem.removesuffix("_boundary")
    vector = torch.from_numpy(np.ascontiguousarray(array)).to(torch.float64)[0]  # [w_dim] or [layers, w_dim]
    return [Direction(vector.float(), name=name or attribute, attribute=attribute.split("_c_")[0],
                      source="interfacegan-import",
                      extra={"file": path.name, "official_edit": "interfacegan linear_interpolate (W+: shift)",
                             "norm": float(vector.norm())})]


def read_ganspace_npz(path: Path, *, prefix: str | None = None, components: Sequence[int] | None = None
                      ) -> list[Direction]:
    """A GANSpace ``decomposition.py`` file in W (``lat_comp [K, 1, w_dim]``, ``lat_mean``, ``lat_stdev``)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError) as exc:
        raise DirectionImportError(f"{path} is not a readable .npz archive ({exc})") from None
    missing = [k for k in ("lat_comp", "lat_mean", "lat_stdev") if k not in data]
    if missing:
        raise DirectionImportError(f"{path}: a GANSpace component file has lat_comp, lat_mean and lat_stdev; "
                                   f"missing {missing} (found {sorted(data)})")
    comp = torch.from_numpy(data["lat_comp"]).float()
    if comp.ndim != 3 or comp.shape[1] != 1:
        raise DirectionImportError(f"{path}: lat_comp is {list(comp.shape)}; only W-space components "
                                   "[K, 1, w_dim] (GANSpace --use_w on the 'style' layer) edit W+ codes")
    mean = torch.from_numpy(data["lat_mean"]).float().reshape(-1)
    stdev = torch.from_numpy(data["lat_stdev"]).float().reshape(-1)
    var = data.get("var_ratio")
    out = []
    for j in _chosen(components, comp.shape[0], path):
        d = _component(comp[j, 0], f"{prefix or 'ganspace_pc'}{j:02d}", mean=mean, stdev=float(stdev[j]), index=j,
                       source="ganspace-import", measure_layer=None,
                       official="GANSpace latent strip with centring: sets the coordinate on each edited layer")
        if var is not None:
            d.extra["explained"] = float(var[j])
        out.append(d)
    return out


def read_e4e_pt(path: Path, *, name: str | None = None, prefix: str | None = None,
                components: Sequence[int] | None = None) -> list[Direction]:
    """An e4e editing file: a direction tensor (``interfacegan_directions/*.pt``) or the PCA dict
    (``ganspace_pca/*.pt``), read by the restricted loader."""
    from ..convert.safe_pickle import safe_load

    try:
        obj = safe_load(path)
    except ValueError as exc:
        raise DirectionImportError(str(exc)) from None
    if isinstance(obj, torch.Tensor):
        if obj.ndim not in (2, 3) or obj.shape[0] != 1 or not obj.is_floating_point():
            raise DirectionImportError(f"{path}: an e4e InterFaceGAN direction is a float tensor [1, w_dim] or "
                                       f"[1, layers, w_dim]; this one is {obj.dtype} {list(obj.shape)}")
        norm = obj.double().norm(dim=-1)
        return [Direction(obj[0].float(), name=name or path.stem, attribute=path.stem, source="e4e-interfacegan-import",
                          extra={"file": path.name, "official_edit": "e4e LatentEditor.apply_interfacegan: codes + "
                                 "factor * direction", "norm": float(norm.max()), "raw": _floats(obj[0].float())})]
    if isinstance(obj, dict) and {"mean", "comp", "std"} <= set(obj):
        comp, mean, std = (torch.as_tensor(obj[k]).float() for k in ("comp", "mean", "std"))
        if comp.ndim != 3 or comp.shape[1] != 1 or std.ndim != 1 or std.shape[0] != comp.shape[0]:
            raise DirectionImportError(f"{path}: e4e's PCA file holds comp [K, 1, w_dim] and std [K]; got comp "
                                       f"{list(comp.shape)}, std {list(std.shape)}")
        return [_component(comp[j, 0].contiguous(), f"{prefix or 'pca_'}{j:02d}", mean=mean.reshape(-1),
                           stdev=float(std[j]), index=j, source="e4e-ganspace-import", measure_layer=0,
                           official="e4e editings/ganspace.edit: sets the coordinate measured on W+ layer 0")
                for j in _chosen(components, comp.shape[0], path)]
    what = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
    raise DirectionImportError(f"{path} holds {what}; expected {FORMATS[2]} (a tensor) or {FORMATS[3]} (a dict "
                               "with mean, comp, std)")


def _chosen(components: Sequence[int] | None, k: int, path: Path) -> list[int]:
    chosen = list(range(k)) if components is None else [int(c) for c in components]
    bad = [c for c in chosen if not 0 <= c < k]
    if bad:
        raise DirectionImportError(f"{path} has {k} components (0..{k - 1}); asked for {bad}")
    return chosen


def read_direction_file(path: str | Path, *, name: str | None = None, space: str | None = None,
                        components: Sequence[int] | None = None) -> list[Direction]:
    """The directions in ``path`` (see the module docstring for the formats). ``name``: the name of a single
    direction, or the prefix of numbered components; ``components``: which principal components to import."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DirectionImportError(f"no file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return read_interfacegan_npy(path, space=space, name=name)
    if suffix == ".npz":
        return read_ganspace_npz(path, prefix=name, components=components)
    if suffix in (".pt", ".pth"):
        return read_e4e_pt(path, name=name, prefix=name, components=components)
    raise DirectionImportError(f"{path.name}: unknown direction file type {suffix!r}; importable: "
                               f"{'; '.join(FORMATS)}")


# -- the official edit functions --------------------------------------------------------------------------------
def is_set_coordinate(direction: Direction) -> bool:
    """Whether ``direction`` sets a coordinate (GANSpace, e4e PCA) rather than shifting codes."""
    return direction.extra.get("edit") == SET_COORDINATE


def set_coordinate(codes: torch.Tensor, direction: Direction, targets: torch.Tensor | Sequence[float],
                   layers: tuple[int, int] | None = None) -> torch.Tensor:
    """Codes ``[N, L, D]`` with their coordinate along a principal component set to each of ``targets`` (in
    units of the component's standard deviation, relative to the PCA mean) on ``layers`` ``[start, stop)``
    (default: the direction's layers, else all): ``[N, K, L, D]``.

    e4e (``measure_layer`` 0): ``delta = (t - ((w[0] - mean) . c) / std) * c * std`` added to every edited layer.
    GANSpace (``measure_layer`` None): each edited layer ``w_l - ((w_l - mean) . u) u + c * t * std`` with
    ``u = c / sqrt(|c|^2 + 1e-8)``."""
    if not is_set_coordinate(direction):
        raise ValueError(f"direction {direction.name!r} shifts codes; set_coordinate needs a GANSpace / e4e PCA "
                         "component (imported with `idinvert directions import`)")
    targets = torch.as_tensor(targets, dtype=codes.dtype, device=codes.device).reshape(-1)
    c = torch.tensor(direction.extra["raw"]) if "raw" in direction.extra else direction.vector
    c = c.to(codes)
    if c.ndim != 1:
        raise ValueError(f"direction {direction.name!r}: a principal component is one vector, got {list(c.shape)}")
    mean = torch.tensor(direction.extra["mean"], dtype=codes.dtype, device=codes.device)
    std = float(direction.extra["stdev"])
    n, L, _ = codes.shape
    start, stop = layers if layers is not None else (
        (min(direction.layers), max(direction.layers) + 1) if direction.layers else (0, L))
    mask = torch.zeros(L, 1, dtype=codes.dtype, device=codes.device)
    mask[start:stop] = 1.0
    w = codes[:, None]  # [N, 1, L, D]
    if direction.extra.get("measure_layer") == 0:
        coord = ((codes[:, 0] - mean) * c).sum(-1) / std  # [N]
        delta = (targets[None, :] - coord[:, None])[..., None] * c * std  # [N, K, D]
        return w + delta[:, :, None, :] * mask
    u = c / torch.sqrt((c * c).sum() + 1e-8)
    offset = (((codes - mean) * u).sum(-1, keepdim=True) * u)[:, None]  # [N, 1, L, D]
    moved = w - offset + c * (targets.view(1, -1, 1, 1) * std)
    return w + (moved - w) * mask


def interfacegan_linear_interpolate(code: np.ndarray | torch.Tensor, direction: Direction, start: float = -3.0,
                                    end: float = 3.0, steps: int = 10) -> np.ndarray:
    """InterFaceGAN's ``utils/manipulator.linear_interpolate`` (float64 out, as the official numpy code): a W code
    ``[1, D]`` is placed at signed distances ``linspace(start, end, steps)`` from the boundary hyperplane through
    the origin (``[steps, D]``); a W+ code ``[1, L, D]`` is shifted by them on every layer (``[steps, L, D]``)."""
    code = np.asarray(code.detach().cpu() if isinstance(code, torch.Tensor) else code)
    boundary = direction.vector.double().reshape(1, -1).numpy()
    if code.shape[0] != 1 or code.shape[-1] != boundary.shape[1]:
        raise ValueError(f"linear_interpolate takes one code [1, {boundary.shape[1]}] or [1, L, "
                         f"{boundary.shape[1]}], got {list(code.shape)}")
    linspace = np.linspace(start, end, steps)
    if code.ndim == 2:
        distances = (linspace - code.dot(boundary.T)).reshape(-1, 1).astype(np.float32)
        return code + distances * boundary
    return code + linspace.reshape(-1, 1, 1).astype(np.float32) * boundary.reshape(1, 1, -1)


def e4e_apply_interfacegan(latents: torch.Tensor, direction: Direction, factor: float | None = None,
                           factor_range: tuple[int, int] | None = None) -> torch.Tensor:
    """e4e's ``LatentEditor.apply_interfacegan`` (without rendering): ``latents + factor * direction``, or one edit
    per integer ``f`` in ``range(*factor_range)`` concatenated along the batch."""
    d = torch.tensor(direction.extra["raw"]).view_as(direction.vector) if "raw" in direction.extra \
        else direction.vector
    d = d.to(latents) if direction.per_layer else d.to(latents).expand(latents.shape[-2], -1)
    if factor_range is not None:
        return torch.cat([latents + f * d for f in range(*factor_range)])
    return latents + float(factor) * d


def e4e_ganspace_edit(latents: torch.Tensor, edits: Sequence[tuple[Direction, int, int, float]]) -> torch.Tensor:
    """e4e's ``editings/ganspace.edit`` with imported components: for each latent ``[L, D]`` and each
    ``(component, start, end, strength)``, the coordinate set to ``strength`` on layers ``start..end-1``; output
    ``[N * len(edits), L, D]``, sample-major as the official function."""
    out = []
    for latent in latents:
        for direction, start, end, strength in edits:
            out.append(set_coordinate(latent[None], direction, [strength], (int(start), int(end)))[0, 0])
    return torch.stack(out)




def import_directions(path: str | Path, model: Any, *, out: str | Path | None = None, force: bool = False,
                      name: str | None = None, space: str | None = None, components: Sequence[int] | None = None
                      ) -> tuple[Path, list[Path]]:
    """``idinvert directions import``: read ``path``, check the directions against generator ``model`` (a name,
    Hub id, folder or loaded generator), and save them as this library's direction files. They go to ``out``,
    else the model's own ``directions/`` when the model folder is the user's, else the user folder
    (``$IDINVERT_HOME/directions/<model>/``): bundled, installed and Hub-cache folders are never written to.
    Existing files of the same names need ``force``. Returns the folder and the files written."""
    import os

    from ..hub import load_generator
    from .directions import learned_directions_folder, save_directions

    G = load_generator(model) if isinstance(model, (str, Path)) else model
    directions = read_direction_file(path, name=name, space=space, components=components)
    for d in directions:
        try:
            d.offsets(G.num_layers, G.w_dim)
        except ValueError as exc:
            raise DirectionImportError(f"{Path(path).name} does not fit this generator ({exc}): it was made for "
                                       "another model; pass the --model it belongs to") from None
        mean = d.extra.get("mean")
        if mean is not None and len(mean) != G.w_dim:
            raise DirectionImportError(f"{Path(path).name}: the PCA mean has {len(mean)} values, the generator's "
                                       f"w_dim is {G.w_dim}")
    folder = Path(out).expanduser() if out else learned_directions_folder(G)
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not os.access(probe, os.W_OK):
        raise DirectionImportError(f"{folder} is not writable: pass --out DIR (and edit with --directions DIR)")
    existing = [d.name for d in directions if (folder / f"{d.name}.safetensors").exists()]
    if existing and not force:
        raise DirectionImportError(f"{folder} already holds {', '.join(existing[:8])}"
                                   f"{' and more' if len(existing) > 8 else ''}: pass --force to overwrite, --name "
                                   "to import under another name, or --out DIR")
    info = {d.name: {"note": f"imported from {Path(path).name}; official edit: {d.extra.get('official_edit')}"}
            for d in directions}
    paths = save_directions(directions, folder, info, {"command": "import", "file": str(path)})
    return folder, paths


__all__ = ["DirectionImportError", "FORMATS", "SET_COORDINATE", "e4e_apply_interfacegan", "e4e_ganspace_edit",
           "interfacegan_linear_interpolate", "is_set_coordinate", "read_direction_file", "read_e4e_pt",
           "import_directions", "read_ganspace_npz", "read_interfacegan_npy", "set_coordinate"]
