"""Editing directions in W / W+: what they are, how to store them, and three ways to find them.

A :class:`Direction` is a unit vector ``n`` (``[w_dim]``, the same for every layer) or one unit vector per
W+ layer (``[num_layers, w_dim]``, like the released IDInvert boundaries), plus the layers it is meant for.
Editing moves a code along it: ``w' = w + a * n`` (see :mod:`.manipulate`).

Sources:

* :func:`~.interfacegan.learn_direction` -- InterFaceGAN (Shen et al., CVPR 2020): the normal of a linear
  classifier separating codes by an attribute score (:mod:`.interfacegan` also learns a generator's directions
  from its samples scored by an attribute classifier);
* :func:`ganspace_directions` -- GANSpace (Härkönen et al., NeurIPS 2020): principal components of sampled w;
* :func:`sefa_directions` -- SeFa (Shen & Zhou, CVPR 2021): closed form, the top eigenvectors of ``A^T A``
  where ``A`` stacks the style-modulation weights.

Directions are saved as safetensors (the vector plus a JSON metadata string), never as pickles.

Directions by name: a generator's model folder may hold ``directions/<name>.safetensors`` (plus a
``summary.json`` / ``README.md`` table of how they were made). :func:`find_directions` lists them for a model
name, Hub id or folder, and :func:`load_direction` / :func:`as_direction` accept a bare name when the model is
known. ``idinvert directions learn|sefa|ganspace`` writes them (see :mod:`.interfacegan`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..models.base import Generator

EPS = 1e-12


def _unit(v: torch.Tensor) -> torch.Tensor:
    """Normalise the last axis to unit length (rows that are all zero stay zero)."""
    return v / v.norm(dim=-1, keepdim=True).clamp_min(EPS)


def _canonical_sign(v: torch.Tensor) -> torch.Tensor:
    """Flip ``v`` so that its largest-magnitude entry is positive (PCA / eigenvectors have no sign)."""
    return v if v.flatten()[v.abs().argmax()] >= 0 else -v


@dataclass
class Direction:
    """A unit editing direction in W (``vector`` ``[w_dim]``) or per W+ layer (``[num_layers, w_dim]``).

    ``layers`` lists the W+ layers the direction edits (None: all). ``accuracy`` is the held-out accuracy
    of the classifier it came from, if any; ``source`` names the method ("interfacegan", "ganspace",
    "sefa", ...); ``extra`` holds JSON-serialisable extras (e.g. the explained variance).
    ``normal`` is the unit normal of the attribute boundary when the edit ``vector`` differs from it (a
    covariance-steered direction, see :func:`~idinvert_plugins.editors.interfacegan.learn_direction`);
    :attr:`boundary` is the one to score or classify codes with.
    The vectors are normalised to unit length (per layer for per-layer directions) on construction.
    """

    vector: torch.Tensor
    name: str = ""
    attribute: str | None = None
    layers: list[int] | None = None
    accuracy: float | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    normal: torch.Tensor | None = None

    def __post_init__(self) -> None:
        vector = torch.as_tensor(self.vector).detach().float()
        if vector.ndim == 3 and vector.shape[0] == 1:  # the official [1, L, w_dim] boundary layout
            vector = vector[0]
        if vector.ndim not in (1, 2) or vector.numel() == 0:
            raise ValueError(f"a direction is [w_dim] or [num_layers, w_dim], got {list(vector.shape)}")
        if vector.norm() == 0:
            raise ValueError(f"direction {self.name!r} is the zero vector")
        self.vector = _unit(vector)
        if self.normal is not None:
            normal = torch.as_tensor(self.normal).detach().float().reshape(vector.shape)
            self.normal = _unit(normal)
        if self.layers is not None:
            self.layers = sorted({int(i) for i in self.layers})

    @property
    def boundary(self) -> torch.Tensor:
        """The unit normal of the attribute boundary (the edit vector itself unless it was steered)."""
        return self.normal if self.normal is not None else self.vector

    @property
    def per_layer(self) -> bool:
        return self.vector.ndim == 2

    @property
    def w_dim(self) -> int:
        return self.vector.shape[-1]

    def offsets(self, num_layers: int, w_dim: int, *, boundary: bool = False) -> torch.Tensor:
        """The W+ offset ``[num_layers, w_dim]`` of one unit step: ``n`` on the selected layers, 0 elsewhere
        (with ``boundary``, the boundary's normal instead of the edit vector: for scoring codes)."""
        vector = self.boundary if boundary else self.vector
        if self.w_dim != w_dim:
            raise ValueError(f"direction {self.name!r} has w_dim {self.w_dim}, the generator {w_dim}")
        if self.per_layer and self.vector.shape[0] != num_layers:
            raise ValueError(f"direction {self.name!r} has {self.vector.shape[0]} layers, the generator "
                             f"{num_layers}")
        rows = vector if self.per_layer else vector.expand(num_layers, -1)
        if self.layers is None:
            return rows.clone()
        bad = [i for i in self.layers if not 0 <= i < num_layers]
        if bad:
            raise ValueError(f"direction {self.name!r} selects layers {bad} outside [0, {num_layers})")
        keep = torch.zeros(num_layers, 1, dtype=rows.dtype)
        keep[self.layers] = 1.0
        return rows * keep

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "attribute": self.attribute, "layers": self.layers,
                "accuracy": self.accuracy, "source": self.source, "extra": self.extra}

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (safetensors: tensor ``direction``, optionally ``normal``, + JSON string metadata
        ``direction``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"direction": self.vector.contiguous()}
        if self.normal is not None:
            tensors["normal"] = self.normal.contiguous()
        save_file(tensors, str(path),
                  metadata={"format": "idinvert-direction", "direction": json.dumps(self.metadata())})
        return path

    @classmethod
    def load(cls, path: str | Path) -> Direction:
        """Read a direction written by :meth:`save`. Anything else (pickles, ``.npy``) is refused."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no direction file at {path}")
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise ValueError(f"{path} is not a safetensors direction file ({err}); directions are stored with "
                             "Direction.save, pickled / .npy boundaries are not loaded") from None
        if "direction" not in tensors:
            raise ValueError(f"{path} has no 'direction' tensor (found {sorted(tensors)})")
        info = json.loads(meta.get("direction", "{}"))
        return cls(tensors["direction"], name=info.get("name", ""), attribute=info.get("attribute"),
                   layers=info.get("layers"), accuracy=info.get("accuracy"), source=info.get("source", ""),
                   extra=info.get("extra") or {}, normal=tensors.get("normal"))


# -- directions by name ----------------------------------------------------------------------------------
DIRECTIONS_DIR = "directions"
SUMMARY_NAME = "summary.json"
LEARN_HINT = ("learn them with `idinvert directions learn GENERATOR` (InterFaceGAN, needs an attribute "
              "classifier) or `idinvert directions sefa GENERATOR` / `ganspace` (unsupervised)")


class DirectionNotFoundError(LookupError, ValueError):
    """A direction name that is neither a file nor one of the model's saved directions."""


def _resolved_model(model: Any) -> Any:
    """A :class:`~idinvert_plugins.hub.ResolvedModel` for a name / Hub id / folder, a ResolvedModel, or a
    loaded model carrying ``.resolved`` (what :func:`~idinvert_plugins.hub.load_model` attaches)."""
    from ..hub import ResolvedModel, resolve_model

    if isinstance(model, ResolvedModel):
        return model
    if isinstance(model, (str, Path)):
        return resolve_model(model)
    resolved = getattr(model, "resolved", None)
    if isinstance(resolved, ResolvedModel):
        return resolved
    raise TypeError(f"cannot tell which model folder {type(model).__name__} came from: pass a model name, "
                    "Hub id or folder (generators loaded with load_generator carry it as .resolved)")


def directions_folder(model: Any) -> Path:
    """The ``directions/`` folder of a model (it may not exist yet)."""
    return Path(_resolved_model(model).folder) / DIRECTIONS_DIR


def user_directions_folder(model: Any) -> Path:
    """Where ``idinvert directions learn|sefa|ganspace`` writes ``model``'s directions by default when its own
    folder is bundled, installed or in the Hub cache: ``idinvert_home()/directions/<model>/`` (``<model>``: the
    named model, the Hub id with ``/`` as ``--``, or the folder's name). :func:`find_directions` searches it."""
    from ..hub import idinvert_home

    resolved = _resolved_model(model)
    key = resolved.name if resolved.origin in ("bundled", "hub") else Path(resolved.folder).resolve().name
    return idinvert_home() / DIRECTIONS_DIR / key.replace("/", "--").replace("\\", "--")


def learned_directions_folder(model: Any) -> Path:
    """Where new directions of ``model`` go by default: its own ``directions/`` when the model folder is the
    user's (a local folder outside any installation, writable), else :func:`user_directions_folder` (bundled and
    installed models, the Hub cache). Commands never write into shipped folders unless told with ``--out``."""
    import os

    from ..hub import is_shipped_folder

    resolved = _resolved_model(model)
    folder = Path(resolved.folder)
    if resolved.origin == "path" and not is_shipped_folder(folder):
        own = folder / DIRECTIONS_DIR
        if os.access(own if own.is_dir() else folder, os.W_OK):
            return own
    return user_directions_folder(resolved)


def find_directions(model: Any, extra_dirs: Sequence[str | Path] = ()) -> dict[str, Path]:
    """Saved directions of ``model`` (a name, Hub id, folder, or loaded generator), by name (the file stem).

    Searched: the model's own ``directions/``, then the user's folder for it (:func:`user_directions_folder`,
    where learned directions go), then ``extra_dirs``; a later one wins on a name clash.
    """
    found: dict[str, Path] = {}
    folders = _model_folders(model) if model is not None else []
    for folder in [*folders, *reversed([Path(d) for d in extra_dirs])]:
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.safetensors")) if p.is_file()})
    return dict(sorted(found.items()))


def _model_folders(model: Any) -> list[Path]:
    """The model's own ``directions/`` and, when different, the folder its learned directions go to."""
    resolved = _resolved_model(model)
    own, learned = directions_folder(resolved), learned_directions_folder(resolved)
    return [own] if learned == own else [own, learned]


def _looks_like_path(text: str) -> bool:
    return text.endswith(".safetensors") or "/" in text or "\\" in text or text.startswith(".")


def load_direction(spec: Direction | str | Path | torch.Tensor, model: Any = None,
                   extra_dirs: Sequence[str | Path] = ()) -> Direction:
    """A :class:`Direction` from a Direction, a raw vector, a path to a saved one, or a bare name looked up
    in ``model``'s ``directions/`` folder (and ``extra_dirs``).

    An unknown name raises :class:`DirectionNotFoundError` listing the available names and how to learn one.
    """
    if isinstance(spec, Direction):
        return spec
    if isinstance(spec, torch.Tensor):
        return Direction(spec)
    if not isinstance(spec, (str, Path)):
        raise TypeError(f"expected a Direction, a path, a name or a tensor, got {type(spec).__name__}")
    path = Path(spec).expanduser()
    if isinstance(spec, Path) or _looks_like_path(str(spec)) or (path.suffix and path.is_file()):
        return Direction.load(path)
    name = str(spec)
    if model is None and not extra_dirs:
        raise DirectionNotFoundError(
            f"direction {name!r} is not a file, and a bare name is looked up among a generator's saved "
            "directions: pass the model (model=..., --model NAME) or the path of a .safetensors direction")
    available = find_directions(model, extra_dirs)
    if name in available:
        return Direction.load(available[name])
    where = ", ".join(str(p) for p in (_model_folders(model) if model is not None else []) +
                      [Path(d) for d in extra_dirs])
    listing = ", ".join(available) if available else "none"
    raise DirectionNotFoundError(f"no direction {name!r} in {where}. Available: {listing}. To add one, {LEARN_HINT}.")


def as_direction(value: Direction | str | Path | torch.Tensor, model: Any = None) -> Direction:
    """Accept a :class:`Direction`, a path to a saved one, a raw vector, or (when ``model`` is given) the
    name of one of the model's saved directions. Same as :func:`load_direction`."""
    return load_direction(value, model)


def read_summary(folder: str | Path) -> dict[str, Any]:
    """The ``summary.json`` of a directions folder (``{"directions": {name: info}}``; empty if absent)."""
    path = Path(folder) / SUMMARY_NAME
    if not path.is_file():
        return {"directions": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it, it is rewritten on the next save") from None
    data.setdefault("directions", {})
    return data


def save_directions(directions: Sequence[Direction], folder: str | Path, info: dict[str, dict[str, Any]] | None = None,
                    run: dict[str, Any] | None = None) -> list[Path]:
    """Write each direction as ``folder/<name>.safetensors`` and merge their rows into ``summary.json`` and
    the ``README.md`` table (source, held-out accuracy, samples). ``info`` adds per-name table fields, ``run``
    records how this batch was made (under ``runs`` in the summary)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = read_summary(folder)
    skipped: dict[str, str] = dict(summary.get("skipped") or {})
    paths = []
    for d in directions:
        if not d.name or _looks_like_path(d.name) or d.name != Path(d.name).name:
            raise ValueError(f"direction name {d.name!r} cannot be a file name; use letters, digits, - and _")
        paths.append(d.save(folder / f"{d.name}.safetensors"))
        row = {"source": d.source, "attribute": d.attribute, "accuracy": d.accuracy, "layers": d.layers,
               "n_samples": d.extra.get("n_samples")}
        row.update((info or {}).get(d.name, {}))
        summary["directions"][d.name] = row
        skipped.pop(d.name, None)
    if run:
        skipped.update(run.get("skipped") or {})
        summary.setdefault("runs", []).append(run)
    summary["skipped"] = skipped
    (folder / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    lines = ["# Editing directions", "",
             "Unit vectors in W written by idinvert-plugins (`Direction.save`); edit with "
             "`idinvert edit IMAGE --model MODEL --edit NAME=STRENGTH`. Held-out accuracy: of the linear "
             "classifier (the attribute's boundary) on the held-out codes; the direction is the boundary's normal, "
             "or, for a source ending in `-covariance`, the normal steered by the covariance of W (`--steer "
             "covariance`), for one ending in `-class-means`, the difference of the two classes' mean codes "
             "(`--steer class-means`; for both the normal is kept in the file for scoring codes); majority share: "
             "the accuracy of "
             "always guessing the larger class (for imbalanced labels; `!`: the boundary does no better). "
             "Sources ending in `-conditional` / `-conditional-class-means`: the normal / class-mean vector with "
             "the other attribute families' boundaries projected out (`--steer conditional`, InterFaceGAN's "
             "conditional manipulation); `-compensated`: the class-mean vector minus the other families' class-mean "
             "vectors that cancel their boundary scores (`--steer compensated`); `-optimized`: a vector optimised "
             "through the generator and the attribute classifier to move its attribute while the other families stay "
             "still (`editors/optimized_steering.py`, chosen by `benchmarks/crosstalk.py`).", ""]
    measured = {n: r["crosstalk"] for n, r in summary["directions"].items() if r.get("crosstalk")}
    if measured:
        first = next(iter(measured.values()))
        test_n = sum(bool((c.get("test_faces") or {}).get("clean")) for c in measured.values())
        lines += [f"Cross-talk (`benchmarks/crosstalk.py`, step {first.get('step', 3):g}): *success*, the share of "
                  "faces whose attribute moves the intended way; *cross-talk*, the most an attribute of another family "
                  "moves (classifier change in spreads of real faces"
                  + (", mean of its absolute change per face: what one sees on single faces"
                     if first.get("statistic") == "absolute" else ", signed mean over faces")
                  + ") relative to the target's own change, and which; "
                  "*clean*: success >= 90 % and cross-talk <= 0.5, else *weak* (shipped, but expect other attributes "
                  f"to move). Clean on G's own samples: {sum(bool(c.get('clean')) for c in measured.values())} of "
                  f"{len(measured)}; on inverted held-out test faces: {test_n} of {len(measured)}.", ""]
        if (folder / "crosstalk.png").is_file():
            lines += ["![Cross-talk before and after the choice of edit vectors](crosstalk.png)", ""]
    lines += ["| name | source | held-out accuracy | majority share | samples | success | cross-talk (moved most) | "
              "edit | test faces | note |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in sorted(summary["directions"].items()):
        acc = "" if row.get("accuracy") is None else f"{row['accuracy']:.3f}"
        maj = "" if row.get("majority") is None else f"{row['majority']:.3f}"
        if acc and maj and row["accuracy"] <= row["majority"]:
            acc += " !"
        ct = row.get("crosstalk") or {}
        test = ct.get("test_faces") or {}
        worst = "" if not ct else ("inf" if ct.get("worst") is None else f"{ct['worst']:.2f}")
        worst += f" ({ct['worst_attribute']})" if ct.get("worst_attribute") else ""
        success = "" if ct.get("success") is None else f"{ct['success']:.0%}"
        edit = "" if not ct else ("clean" if ct.get("clean") else "weak")
        tested = "" if not test else f"{test['success']:.0%}, {'clean' if test.get('clean') else 'weak'}"
        lines.append(f"| {name} | {row.get('source') or ''} | {acc} | {maj} | {row.get('n_samples') or ''} | "
                     f"{success} | {worst} | {edit} | {tested} | {row.get('note') or ''} |")
    if skipped:
        lines += ["", "Not learned (no usable boundary):", ""]
        lines += [f"- {name}: {why}" for name, why in sorted(skipped.items())]
    (folder / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def orthogonalize(direction: Direction, others: Direction | Sequence[Direction]) -> Direction:
    """InterFaceGAN conditional manipulation: remove from ``direction`` its component in the span of
    ``others`` so that editing it leaves those attributes unchanged. The result is unit-norm and orthogonal
    to each of ``others``' boundary normal (per layer when any of them is per-layer)."""
    others = [others] if isinstance(others, Direction) else list(others)
    if not others:
        return direction
    per_layer = direction.per_layer or any(o.per_layer for o in others)
    num_layers = max([d.vector.shape[0] for d in (direction, *others) if d.per_layer], default=1)

    def rows(v: torch.Tensor, d: Direction) -> torch.Tensor:  # [L, D] (L = 1 when nothing is per-layer)
        v = v.double()
        return v if d.per_layer else v.expand(num_layers, -1)

    # An edit leaves attribute B's linear score unchanged when it is orthogonal to B's boundary normal
    # (the same as B's edit vector unless B was steered).
    target = rows(direction.vector, direction)
    basis = torch.stack([rows(o.boundary, o) for o in others], dim=1)  # [L, K, D]
    if basis.shape[-1] != target.shape[-1]:
        raise ValueError("directions to orthogonalise have different w_dim")
    q, _ = torch.linalg.qr(basis.transpose(1, 2))  # [L, D, K], orthonormal basis of span(others)
    rest = target - torch.einsum("ldk,lk->ld", q, torch.einsum("ldk,ld->lk", q, target))
    if (rest.norm(dim=-1) < 1e-6).any():
        raise ValueError(f"direction {direction.name!r} lies in the span of the conditions; nothing is left")
    vector = rest if per_layer else rest[0]
    names = ",".join(o.name or "?" for o in others)
    return Direction(vector.float(), name=f"{direction.name}|{names}", attribute=direction.attribute,
                     layers=direction.layers, accuracy=direction.accuracy, source=direction.source,
                     extra={**direction.extra, "conditioned_on": [o.name for o in others]},
                     normal=direction.normal)


@torch.no_grad()
def ganspace_directions(
    G: Generator, n_samples: int = 10_000, k: int = 10, seed: int = 0, batch: int = 1000
) -> list[Direction]:
    """GANSpace: the top ``k`` principal components of ``n_samples`` mapped codes w, by decreasing variance.

    Models without a single W space (IDInvert StyleGAN, ``repeat_w=False``) use W+ layer 0. Each direction
    keeps its variance and explained-variance ratio in ``extra``; signs are fixed (largest entry positive).
    """
    z = G.sample_z(n_samples, seed=seed)
    ws = []
    for i in range(0, n_samples, batch):
        w = G.mapping(z[i : i + batch])
        ws.append((w[:, 0] if w.ndim == 3 else w).double().cpu())
    w = torch.cat(ws)
    w = w - w.mean(0)
    variance, vectors = torch.linalg.eigh(w.T @ w / (len(w) - 1))  # ascending
    variance, vectors = variance.flip(0), vectors.flip(1)
    k = min(k, G.w_dim)
    total = float(variance.sum())
    return [
        Direction(_canonical_sign(vectors[:, i]).float(), name=f"ganspace_{i:02d}", source="ganspace",
                  extra={"component": i, "variance": float(variance[i]),
                         "explained": float(variance[i]) / total})
        for i in range(k)
    ]


def sefa_weight(G: Generator, layers: Sequence[int] | None = None) -> torch.Tensor:
    """The matrix ``A`` of SeFa: the style-modulation weights of the W+ ``layers`` stacked row-wise
    (``[sum of channels, w_dim]``), each row normalised to unit length as in the official code.

    StyleGAN2: the ``affine`` weights of the modulated convs (``conv0``/``conv1``, not ``torgb``).
    StyleGAN v1: the scale half of each AdaIN ``style`` dense layer.
    """
    wanted = set(range(G.num_layers)) if layers is None else {int(i) for i in layers}
    synthesis = getattr(G, "synthesis_network", None)
    rows = []
    if synthesis is not None and hasattr(synthesis, "blocks"):  # StyleGAN2
        for name, layer, idx in synthesis.layers():
            if idx in wanted and not name.endswith("torgb"):
                rows.append(layer.affine.weight)
    elif synthesis is not None and isinstance(getattr(synthesis, "layers", None), torch.nn.ModuleList):  # v1
        for idx, layer in enumerate(synthesis.layers):
            if idx in wanted:
                rows.append(layer.style.weight[: layer.style.weight.shape[0] // 2])
    else:
        raise TypeError(f"SeFa does not know where {type(G).__name__} keeps its style-modulation weights")
    if not rows:
        raise ValueError(f"layers {sorted(wanted)} select no modulated layer of a {G.num_layers}-layer generator")
    return _unit(torch.cat(rows).detach().double().cpu())


@torch.no_grad()
def sefa_directions(G: Generator, k: int = 5, layers: Sequence[int] | None = None) -> list[Direction]:
    """SeFa: the top ``k`` eigenvectors of ``A^T A`` (``A`` from :func:`sefa_weight`), by decreasing eigenvalue.

    The directions edit the ``layers`` they were computed from (None: all). Signs are fixed (largest entry
    positive); each keeps its eigenvalue in ``extra``.
    """
    A = sefa_weight(G, layers)
    values, vectors = torch.linalg.eigh(A.T @ A)
    values, vectors = values.flip(0), vectors.flip(1)
    chosen = None if layers is None else sorted({int(i) for i in layers})
    return [
        Direction(_canonical_sign(vectors[:, i]).float(), name=f"sefa_{i:02d}", layers=chosen, source="sefa",
                  extra={"component": i, "eigenvalue": float(values[i])})
        for i in range(min(k, G.w_dim))
    ]
