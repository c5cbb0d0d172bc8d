"""Train, evaluate and export the toy-face attribute classifier (:class:`AttributeClassifier`).

Training sees only the TRAIN split of the toy-face dataset (images ``0 .. 64,999`` for ``n = 70,000``),
rendered on the fly by index (and kept in memory for the next epoch) or read from a folder written by
``toyfaces.render_dataset``. Losses: binary cross-entropy (binary), cross-entropy (categorical), MSE on the
normalised target (continuous; hues as points on the unit circle), summed over the attributes.

Everything is a function of ``(seed, step)``: the batch at step ``k`` is a slice of a per-epoch permutation
seeded with ``(seed, epoch)``, the augmentation is seeded with ``(seed, step)``. A run stopped at any step
and resumed from ``out_dir/resume.pt`` therefore ends with the same weights as an uninterrupted run.

Some attributes are only visible on some faces (glasses frames only with eyeglasses, hair length not on
bald heads): those heads are trained and scored only on the faces where they are visible
(:data:`VISIBLE_WHEN`).

Command line (the time budget covers training; evaluation and export take about a minute more)::

    python -m idinvert_plugins.training.classifier --out runs/classifier --minutes 20
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data import toyfaces
from ..models.classifier import AttributeClassifier, normalise, toyfaces_heads

RESUME_NAME = "resume.pt"
RESUME_FORMAT = 1
METRICS_NAME = "metrics.json"

#: attribute -> (the attribute it depends on, the class indices of that attribute where it is visible).
VISIBLE_WHEN: dict[str, tuple[str, tuple[int, ...]]] = {
    "glasses_style": ("eyeglasses", (1,)),
    "glasses_color": ("eyeglasses", (1,)),
    "lens_tint": ("eyeglasses", (1,)),
    "hair_length": ("hair_style", tuple(i for i, s in enumerate(toyfaces.HAIR_STYLES) if s != "bald")),
}

# Arguments that define a run: a resume must repeat them (the others only change how it is executed).
_RUN_ARGS = ("seed", "n", "resolution", "steps", "batch", "lr", "warmup", "augment", "channels", "hidden",
             "norm", "data_dir")


# -- data -------------------------------------------------------------------------------------------------
def visible_mask(name: str, targets: dict[str, Any]) -> np.ndarray | None:
    """Boolean mask of the faces on which attribute ``name`` can be seen (None: all of them)."""
    if name not in VISIBLE_WHEN:
        return None
    parent, classes = VISIBLE_WHEN[name]
    return np.isin(np.asarray(targets[parent]), classes)


@lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, 0xC1A55]).permutation(n)


def batch_indices(seed: int, step: int, batch: int, n: int) -> np.ndarray:
    """Positions (into the ``n`` training images) of the batch at ``step``: consecutive slices of one
    random permutation per epoch, so each epoch sees every image once."""
    out: list[np.ndarray] = []
    pos, need = step * batch, batch
    while need:
        epoch, offset = divmod(pos, n)
        take = min(need, n - offset)
        out.append(_permutation(seed, epoch, n)[offset:offset + take])
        pos, need = pos + take, need - take
    return np.concatenate(out)


class RenderedSplit:
    """The training images of the toy-face dataset, rendered when first asked for and then kept.

    ``items`` lists the dataset indices of the split; :meth:`get` takes positions into it.
    """

    def __init__(self, seed: int, items: Sequence[int], resolution: int, cache: bool = True) -> None:
        self.seed, self.items, self.resolution = seed, np.asarray(items, np.int64), resolution
        self.cache = cache
        self.images: np.ndarray | None = None
        self.attrs: dict[str, np.ndarray] = {}
        self.done = np.zeros(len(self.items), bool)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, positions: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if not self.cache:
            return toyfaces.render_batch(self.seed, self.items[positions], self.resolution)
        todo = np.unique(positions[~self.done[positions]])
        if len(todo):
            images, attrs = toyfaces.render_batch(self.seed, self.items[todo], self.resolution)
            if self.images is None:
                self.images = np.zeros((len(self), *images.shape[1:]), np.uint8)
                self.attrs = {k: np.zeros(len(self), v.dtype) for k, v in attrs.items()}
            self.images[todo] = images
            for k, v in attrs.items():
                self.attrs[k][todo] = v
            self.done[todo] = True
        return self.images[positions], {k: v[positions] for k, v in self.attrs.items()}


class FolderSplit:
    """The training images of a folder written by ``toyfaces.render_dataset`` (read through
    :class:`~idinvert_plugins.data.folders.ImageFolderDataset`), kept in memory once read."""

    def __init__(self, folder: str | Path, resolution: int, split: str = "train") -> None:
        from ..data.folders import ImageFolderDataset

        self.dataset = ImageFolderDataset(folder, split=split)
        found = self.dataset.meta.get("resolution")
        if found != resolution:
            raise ValueError(f"{folder} holds {found}x{found} images, the classifier is trained at {resolution}")
        self.images: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def get(self, positions: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        for p in positions:
            if int(p) not in self.images:
                self.images[int(p)] = self.dataset.load(int(p))
        return (np.stack([self.images[int(p)] for p in positions]),
                {k: v[positions] for k, v in self.dataset.attributes.items()})


def to_input(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` -> float ``[N, 3, H, W]`` in [-1, 1] on ``device``."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mild, attribute-preserving degradations (half the images slightly blurred, all with a little noise),
    so the classifier also reads the softer, noisier images a GAN produces. No geometric or colour change:
    position, pose and colour are attributes."""
    n = x.shape[0]
    blur_on = (torch.rand(n, generator=generator) < 0.5).view(n, 1, 1, 1).to(x)
    k = torch.tensor([1.0, 2.0, 1.0], device=x.device)
    k = (k[:, None] * k[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=x.shape[1])
    x = x + blur_on * (blurred - x)
    sigma = (torch.rand(n, generator=generator) * 0.04).view(n, 1, 1, 1).to(x)
    return x + sigma * torch.randn(x.shape, generator=generator).to(x)


# -- loss -------------------------------------------------------------------------------------------------
def attribute_loss(model: AttributeClassifier, outputs: dict[str, torch.Tensor],
                   targets: dict[str, np.ndarray]) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over the heads of each head's loss (mean over the faces where the attribute is visible)."""
    total = torch.zeros((), device=next(iter(outputs.values())).device)
    parts: dict[str, float] = {}
    for spec in model.attributes:
        name, y = spec["name"], outputs[spec["name"]]
        t = torch.as_tensor(np.asarray(targets[name]), device=y.device)
        mask = visible_mask(name, targets)
        if mask is not None:
            if not mask.any():
                continue
            keep = torch.as_tensor(mask, device=y.device)
            y, t = y[keep], t[keep]
        if spec["kind"] == "binary":
            loss = F.binary_cross_entropy_with_logits(y, t.float())
        elif spec["kind"] == "categorical":
            loss = F.cross_entropy(y, t.long())
        else:
            loss = F.mse_loss(y, normalise(spec, t.float()))
        total = total + loss
        parts[name] = float(loss.detach())
    return total, parts


def learning_rate(step: int, lr: float, steps: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to 0 at ``steps``. The first ``warmup``
    steps do not depend on ``steps`` (a time-budgeted run fixes ``steps`` after measuring them)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))


# -- training ---------------------------------------------------------------------------------------------
def _save_resume(path: Path, model: AttributeClassifier, opt: torch.optim.Optimizer, args: dict[str, Any],
                 step: int, losses: list[float]) -> None:
    state = {"format": RESUME_FORMAT, "args": args, "step": step, "model": model.state_dict(),
             "optimizer": opt.state_dict(), "losses": torch.tensor(losses, dtype=torch.float64)}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # never leave a half-written resume file behind


def train_classifier(
    out_dir: str | Path,
    *,
    seed: int = 0,
    n: int = 70000,
    resolution: int = 64,
    steps: int | None = 2000,
    batch: int = 64,
    lr: float = 2e-3,
    warmup: int = 100,
    augment_images: bool = True,
    channels: Sequence[int] | None = None,
    hidden: int = 256,
    norm: str = "batch",
    data_dir: str | Path | None = None,
    max_minutes: float | None = None,
    stop_at: int | None = None,
    save_every: int = 500,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Train an :class:`AttributeClassifier` on the train split of the toy faces; resumable.

    Args:
        out_dir: where ``resume.pt`` is written (every ``save_every`` steps and when stopping). If it holds
            one and ``resume`` is true, training continues from it; the run arguments must then match.
        seed, n: the toy-face dataset (``n`` images with ``seed``; its train split is used).
        steps: length of the run (the learning-rate schedule ends there). None needs ``max_minutes``: the
            run then times its first steps and fixes ``steps`` to fill the budget.
        batch, lr, warmup: Adam batch size, peak learning rate, linear warm-up steps (then cosine to 0).
        augment_images: light blur and noise (see :func:`augment`).
        channels, hidden, norm: the network (see :class:`AttributeClassifier`).
        data_dir: read a folder from ``toyfaces.render_dataset`` instead of rendering on the fly.
        max_minutes: stop (and save ``resume.pt``) when this much wall time has passed.
        stop_at: stop (and save) at this step even if the run is longer (to be resumed later).
        device: None means CUDA when available, else the CPU.

    Returns a dict: ``model`` (in eval mode), ``step`` (steps done), ``steps`` (planned), ``finished``,
    ``losses`` (the loss of every step, from step 0), ``seconds`` (this call), ``out_dir``, ``args``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if steps is None and max_minutes is None:
        raise ValueError("give steps, or max_minutes to size the run to the time budget")
    args: dict[str, Any] = dict(
        seed=int(seed), n=int(n), resolution=int(resolution), steps=None if steps is None else int(steps),
        batch=int(batch), lr=float(lr), warmup=int(warmup), augment=bool(augment_images),
        channels=None if channels is None else [int(c) for c in channels], hidden=int(hidden), norm=norm,
        data_dir=None if data_dir is None else str(data_dir),
    )  # fmt: skip

    resume_path = out_dir / RESUME_NAME
    state = None
    if resume and resume_path.is_file():
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
        saved = state["args"]
        if args["steps"] is None:
            args["steps"] = saved["steps"]  # a budgeted run resumes with the length it fixed
        diff = [f"{k}: {saved.get(k)!r} in {resume_path.name}, {args[k]!r} now" for k in _RUN_ARGS
                if saved.get(k) != args[k]]
        if diff:
            raise ValueError(f"{resume_path} belongs to another run ({'; '.join(diff)}). Use another out_dir, "
                             "repeat the original arguments, or pass resume=False to start over.")

    n_train = toyfaces.split_sizes(n)["train"]
    data = (FolderSplit(data_dir, resolution) if data_dir is not None
            else RenderedSplit(seed, range(n_train), resolution))
    torch.manual_seed(seed)  # the initial weights
    heads = toyfaces_heads()
    model = AttributeClassifier(heads, resolution=resolution, channels=channels, hidden=hidden,
                                norm=norm).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    step, losses = 0, []
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, losses = int(state["step"]), state["losses"].tolist()

    from tqdm import tqdm

    start = time.monotonic()
    deadline = None if max_minutes is None else start + 60.0 * max_minutes
    timing_steps = max(1, min(warmup, 30))
    plan_from = step
    total = args["steps"]
    bar = tqdm(total=total, initial=step, disable=not progress, desc="classifier", unit="step")
    model.train()
    while total is None or step < total:
        if stop_at is not None and step >= stop_at:
            break
        if deadline is not None and time.monotonic() > deadline:
            break
        positions = batch_indices(seed, step, batch, len(data))
        images, targets = data.get(positions)
        x = to_input(images, device)
        if args["augment"]:
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + step)
            x = augment(x, g)
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, lr, total if total is not None else 10**9, warmup)
        loss, _ = attribute_loss(model, model(x), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
        if total is None and step - plan_from >= timing_steps:
            # fix the run length from the measured speed (no-op for the warm-up, see learning_rate)
            per_step = (time.monotonic() - start) / (step - plan_from)
            total = args["steps"] = step + max(int((deadline - time.monotonic()) / per_step), 0)
            bar.total = total
            bar.refresh()
        if step % save_every == 0 and (total is None or step < total):
            _save_resume(resume_path, model, opt, args, step, losses)
    bar.close()
    if total is None:  # the budget ran out before the run length could be measured
        total = args["steps"] = step
    _save_resume(resume_path, model, opt, args, step, losses)
    model.eval()
    return {"model": model, "step": step, "steps": total, "finished": step >= total, "losses": losses,
            "seconds": time.monotonic() - start, "out_dir": str(out_dir), "args": args}


def load_resume(out_dir: str | Path, device: str | torch.device = "cpu") -> AttributeClassifier:
    """The model stored in ``out_dir/resume.pt`` (eval mode), e.g. to evaluate or export a stopped run."""
    state = torch.load(Path(out_dir) / RESUME_NAME, map_location="cpu", weights_only=True)
    a = state["args"]
    model = AttributeClassifier(toyfaces_heads(), resolution=a["resolution"], channels=a["channels"],
                                hidden=a["hidden"], norm=a["norm"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()


# -- evaluation -------------------------------------------------------------------------------------------
def _r2(pred: np.ndarray, true: np.ndarray, period: float | None = None) -> float:
    residual = pred - true
    if period is not None:  # the shorter way round the circle
        residual = (residual + period / 2) % period - period / 2
    ss_tot = float(((true - true.mean()) ** 2).sum())
    return 1.0 - float((residual**2).sum()) / ss_tot if ss_tot > 0 else float("nan")


def attribute_metrics(predictions: dict[str, np.ndarray], targets: dict[str, np.ndarray],
                      heads: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-attribute scores of :meth:`AttributeClassifier.predict` outputs against the ground truth.

    * binary: ``accuracy`` of ``probability > 0.5``, and ``majority`` (accuracy of always guessing the
      commoner label, for scale);
    * categorical: ``accuracy`` of the class index, and ``majority``;
    * continuous: ``r2`` = 1 - sum((pred - true)^2) / sum((true - mean)^2) and ``mae``; for a cyclic
      attribute the error goes the shorter way round. Where the toy-face spec defines a threshold (smile > 0,
      age > 0.5, ...), ``binary_accuracy`` of the thresholded prediction against the thresholded truth.

    Attributes in :data:`VISIBLE_WHEN` are scored only where visible; ``n`` is the number scored.
    """
    out: dict[str, dict[str, Any]] = {}
    for spec in heads:
        name = spec["name"]
        pred = np.asarray(predictions[name], np.float64)
        true = np.asarray(targets[name], np.float64)
        mask = visible_mask(name, targets)
        if mask is not None:
            pred, true = pred[mask], true[mask]
        entry: dict[str, Any] = {"kind": spec["kind"], "n": len(true)}
        if len(true) == 0:
            out[name] = entry
            continue
        if spec["kind"] == "binary":
            entry["accuracy"] = float(((pred > 0.5) == (true > 0.5)).mean())
            entry["majority"] = float(max(true.mean(), 1 - true.mean()))
        elif spec["kind"] == "categorical":
            entry["accuracy"] = float((pred == true).mean())
            entry["majority"] = float(np.bincount(true.astype(np.int64)).max() / len(true))
        else:
            lo, hi = spec["range"]
            period = hi - lo if spec.get("cyclic") else None
            error = pred - true if period is None else (pred - true + period / 2) % period - period / 2
            entry["r2"] = _r2(pred, true, period)
            entry["mae"] = float(np.abs(error).mean())
            t = getattr(toyfaces.ATTRIBUTE_SPECS.get(name), "threshold", None)
            if t is not None:
                entry["threshold"] = t
                entry["binary_accuracy"] = float(((pred > t) == (true > t)).mean())
        out[name] = entry
    return out


def summarise(metrics: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Means of the accuracies and R^2 over the semantic and the nuisance attributes."""
    groups: dict[str, list[float]] = {}
    for name, m in metrics.items():
        spec = toyfaces.ATTRIBUTE_SPECS.get(name)
        group = "nuisance" if spec is not None and spec.nuisance else "semantic"
        for key in ("accuracy", "r2", "binary_accuracy"):
            if key in m:
                groups.setdefault(f"{group}_mean_{key}", []).append(m[key])
    return {k: float(np.mean(v)) for k, v in sorted(groups.items())}


@torch.no_grad()
def evaluate_classifier(model: torch.nn.Module, seed: int = 0, indices: Sequence[int] | None = None,
                        resolution: int | None = None, *, n: int = 70000, batch: int = 250,
                        progress: bool = False) -> dict[str, Any]:
    """Score ``model`` on toy faces ``indices`` of the dataset with ``seed`` (default: the whole test split
    of ``n`` images, 65,000 .. 69,999 for n = 70,000). See :func:`attribute_metrics` for the scores.

    ``model`` needs ``attributes`` (head specs) and ``predict(x)``; it is run in eval mode.
    """
    if indices is None:
        sizes = toyfaces.split_sizes(n)
        indices = range(sizes["train"], n)
    indices = [int(i) for i in indices]
    resolution = resolution or model.resolution
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    preds: dict[str, list[np.ndarray]] = {}
    targets: dict[str, list[np.ndarray]] = {}
    from tqdm import tqdm

    for start in tqdm(range(0, len(indices), batch), disable=not progress, desc="evaluate", unit="batch"):
        images, attrs = toyfaces.render_batch(seed, indices[start:start + batch], resolution)
        for k, v in model.predict(to_input(images, device)).items():
            preds.setdefault(k, []).append(v.float().cpu().numpy())
        for k, v in attrs.items():
            targets.setdefault(k, []).append(v)
    model.train(was_training)
    p = {k: np.concatenate(v) for k, v in preds.items()}
    t = {k: np.concatenate(v) for k, v in targets.items()}
    metrics = attribute_metrics(p, t, model.attributes)
    span = f"{indices[0]}..{indices[-1]}" if indices == list(range(indices[0], indices[-1] + 1)) else "custom"
    return {"seed": seed, "resolution": resolution, "num_images": len(indices), "indices": span,
            "attributes": metrics, "summary": summarise(metrics)}


# -- export -----------------------------------------------------------------------------------------------
def _card_body(name: str, model: AttributeClassifier, metrics: dict[str, Any] | None,
               training: dict[str, Any] | None) -> str:
    lines = [
        f"# {name}", "",
        "Attribute classifier of the procedural toy-face domain bundled with idinvert-plugins: one head per "
        "ground-truth attribute of `idinvert_plugins.data.toyfaces` (binary, categorical, or continuous "
        "regressed on the attribute's range). It also serves as the bundled feature network "
        "(`features(x, 'stage2')` for perceptual losses, `features(x, 'pool')` for Fréchet distances), "
        "since no VGG / Inception weights are shipped.", "",
        "## Usage", "", "```python", "import idinvert_plugins as ip", "",
        f'clf = ip.load_model("{name}", kind="classifier")  # or the folder path',
        "scores = clf.predict(images)  # images [N, 3, 64, 64] in [-1, 1]", "```", "",
        "## Training data", "",
        "Only the train split of the toy faces (`render_batch(seed, 0..64999)` for n = 70,000), rendered on "
        "the fly; light blur and noise augmentation. Trained by `idinvert_plugins.training.classifier`.",
    ]
    if training:
        lines += ["", "Run: " + ", ".join(f"{k}={v}" for k, v in training.items())]
    if metrics:
        lines += ["", f"## Test metrics ({metrics['num_images']} test images {metrics['indices']}, seed "
                      f"{metrics['seed']})", "", "| attribute | kind | n | metric |", "|---|---|---|---|"]
        for attr, m in metrics["attributes"].items():
            if "accuracy" in m:
                score = f"accuracy {m['accuracy']:.3f} (majority {m['majority']:.3f})"
            elif "r2" in m:
                score = f"R2 {m['r2']:.3f}, MAE {m['mae']:.3f}"
                if "binary_accuracy" in m:
                    score += f", > {m['threshold']} accuracy {m['binary_accuracy']:.3f}"
            else:
                score = "-"
            lines.append(f"| {attr} | {m['kind']} | {m['n']} | {score} |")
        lines += ["", "Full numbers: `metrics.json`."]
    lines += ["", "## Limitations", "",
              "Valid only for the toy-face domain at its resolution; on other images its outputs mean nothing. "
              "Glasses frame/tint heads are only meaningful on faces with eyeglasses, hair length not on "
              "bald heads."]
    return "\n".join(lines)


def export_classifier(model: AttributeClassifier, folder: str | Path, metrics: dict[str, Any] | None = None,
                      *, name: str | None = None, training: dict[str, Any] | None = None,
                      dtype: torch.dtype = torch.float16) -> Path:
    """Write the model folder (``config.json``, ``model.safetensors`` in ``dtype``, ``README.md`` card) with
    ``idinvert_plugins.hub.save_pretrained``, plus ``metrics.json`` when ``metrics`` is given."""
    from ..cards import card_stub
    from ..hub import save_pretrained

    folder = Path(folder)
    name = name or folder.name
    card = card_stub(name, "classifier", model.architecture, model.config, license="mit")
    card.data["tags"] = [*card.data["tags"], "toyfaces"]
    card.data["files"] = ["config.json", "model.safetensors", *(["metrics.json"] if metrics else [])]
    card.body = _card_body(name, model, metrics, training)
    save_pretrained(model, folder, kind="classifier", card=card, dtype=dtype)
    if metrics is not None:
        (folder / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return folder


# -- command line -----------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m idinvert_plugins.training.classifier",
        description="Train the toy-face attribute classifier, evaluate it on the test split and export it.")
    parser.add_argument("--out", required=True, help="run folder (resume.pt); resumed when it has one")
    parser.add_argument("--minutes", type=float, default=None,
                        help="training time budget; without --steps the run length is sized to fill it")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=70000, help="dataset size (train split = all but the last 7.1 %%)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--data-dir", default=None, help="a folder from toyfaces.render_dataset instead of "
                                                         "rendering on the fly")
    parser.add_argument("--eval-n", type=int, default=None, help="score only the first N test images")
    parser.add_argument("--export", default=None, help="model folder to write (default OUT/toyfaces-classifier-RES)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default=None)
    parser.add_argument("--no-progress", action="store_true")
    a = parser.parse_args(argv)
    if a.steps is None and a.minutes is None:
        parser.error("give --minutes or --steps")
    torch.set_num_threads(a.threads)
    progress = not a.no_progress
    run = train_classifier(a.out, seed=a.seed, n=a.n, resolution=a.resolution, steps=a.steps, batch=a.batch,
                           lr=a.lr, data_dir=a.data_dir, max_minutes=a.minutes, device=a.device,
                           progress=progress)
    model = run["model"]
    sizes = toyfaces.split_sizes(a.n)
    test = range(sizes["train"], a.n if a.eval_n is None else min(a.n, sizes["train"] + a.eval_n))
    metrics = evaluate_classifier(model, a.seed, test, a.resolution, n=a.n, progress=progress)
    metrics["training"] = {"step": run["step"], "steps": run["steps"], "finished": run["finished"],
                           "batch": a.batch, "lr": a.lr, "final_loss": float(np.mean(run["losses"][-50:]))}
    folder = Path(a.export or Path(a.out) / f"toyfaces-classifier-{a.resolution}")
    export_classifier(model, folder, metrics, training={"steps": run["step"], "batch": a.batch, "lr": a.lr,
                                                         "seed": a.seed, "n": a.n})
    (Path(a.out) / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(metrics["summary"], indent=2))
    print(f"exported to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
