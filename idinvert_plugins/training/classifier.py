"""Train, evaluate and export a domain's attribute classifier (:class:`AttributeClassifier`).

The domain (:mod:`idinvert_plugins.domains`; by default the first registered one, the bundled domain) supplies
the attribute schema (one head per attribute) and the labelled images: training sees only the TRAIN split of
its dataset (images ``0 .. 64,999`` for ``n = 70,000``), rendered by index (and kept in memory for the next
epoch) or read from a dataset folder with an ``attributes.csv``. Losses: binary cross-entropy (binary),
cross-entropy (categorical), MSE on the normalised target (continuous; hues as points on the unit circle),
summed over the attributes.

The steps run in the loop every trainer shares (:func:`idinvert_plugins.training.loop.run`: log, checkpoint,
Ctrl-C / SIGTERM, time budget, torchrun DDP with the global batch split over the ranks, gradients and BatchNorm
statistics averaged). Everything is a function of ``(seed, step)``: the batch at step ``k`` is a slice of a
per-epoch permutation seeded with ``(seed, epoch)``, the augmentation is seeded with ``(seed, rank, step)``. A
run stopped at any step and resumed from ``out_dir/resume.pt`` therefore ends with the same weights as an
uninterrupted run. Given a time budget and no step count, the run times its first steps and fixes its length
(and so its learning-rate schedule) to fill the budget.

Some attributes are only visible on some images (glasses frames only with eyeglasses, hair length not on bald
heads): those heads are trained and scored only where they are visible (the domain's ``visible_when``).

Command line (the time budget covers training; evaluation and export take about a minute more)::

    python -m idinvert_plugins.training.classifier --out runs/classifier --minutes 20
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..domains import Domain, get_domain
from ..models.classifier import AttributeClassifier, heads_from_specs, normalise
from . import distributed as tdist
from .distributed import DistInfo
from .loop import Schedule, describe_hardware, rank_seed, run, save_atomic

RESUME_NAME = "resume.pt"
#: 2: written through the shared loop (adds nimg, wall_s, world_size, hardware, the network's config);
#: 1 (before it) still loads: the same run, step, weights, optimiser and losses.
RESUME_FORMAT = 2
READABLE_FORMATS = (1, 2)
LOG_NAME = "log.jsonl"
METRICS_NAME = "metrics.json"

# Arguments that define a run: a resume must repeat them (the others only change how it is executed).
_RUN_ARGS = ("seed", "n", "resolution", "steps", "batch", "lr", "warmup", "augment", "channels", "hidden",
             "norm", "data_dir", "domain")


# -- data -------------------------------------------------------------------------------------------------
def visible_mask(name: str, targets: Mapping[str, Any], visible_when: Mapping[str, tuple[str, Sequence[int]]]
                 ) -> np.ndarray | None:
    """Boolean mask of the images on which attribute ``name`` can be seen (None: all of them), by the domain's
    ``visible_when`` rules."""
    if name not in visible_when or visible_when[name][0] not in targets:
        return None
    parent, classes = visible_when[name]
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
    """Labelled images of a domain's dataset (:meth:`Domain.images`), rendered when first asked for and then
    kept.

    ``items`` lists the dataset indices of the split; :meth:`get` takes positions into it.
    """

    def __init__(self, seed: int, items: Sequence[int], resolution: int, cache: bool = True,
                 domain: str | Domain | None = None) -> None:
        self.seed, self.items, self.resolution = seed, np.asarray(items, np.int64), resolution
        self.cache = cache
        self.domain = get_domain(domain)
        self.images: np.ndarray | None = None
        self.attrs: dict[str, np.ndarray] = {}
        self.done = np.zeros(len(self.items), bool)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, positions: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if not self.cache:
            return self.domain.images(self.seed, self.items[positions], self.resolution)
        todo = np.unique(positions[~self.done[positions]])
        if len(todo):
            images, attrs = self.domain.images(self.seed, self.items[todo], self.resolution)
            if self.images is None:
                self.images = np.zeros((len(self), *images.shape[1:]), np.uint8)
                self.attrs = {k: np.zeros(len(self), v.dtype) for k, v in attrs.items()}
            self.images[todo] = images
            for k, v in attrs.items():
                self.attrs[k][todo] = v
            self.done[todo] = True
        return self.images[positions], {k: v[positions] for k, v in self.attrs.items()}


class FolderSplit:
    """The training images of a dataset folder with an ``attributes.csv`` (as ``idinvert data render`` writes;
    read through :class:`~idinvert_plugins.data.folders.ImageFolderDataset`), kept in memory once read."""

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
def attribute_loss(model: AttributeClassifier, outputs: dict[str, torch.Tensor], targets: dict[str, np.ndarray],
                   visible_when: Mapping[str, tuple[str, Sequence[int]]] | None = None
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over the heads of each head's loss (mean over the images where the attribute is visible;
    ``visible_when``: the domain's rules, default the default domain's)."""
    if visible_when is None:
        visible_when = get_domain().visible_when
    total = torch.zeros((), device=next(iter(outputs.values())).device)
    parts: dict[str, float] = {}
    for spec in model.attributes:
        name, y = spec["name"], outputs[spec["name"]]
        t = torch.as_tensor(np.asarray(targets[name]), device=y.device)
        mask = visible_mask(name, targets, visible_when)
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
def read_resume(path: str | Path) -> dict[str, Any]:
    """A classifier run's ``resume.pt`` (loaded safely on the CPU), in the current format. Files of format 1
    (written before the shared training loop) load; anything else raises ``ValueError`` naming the problem."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, not a torch file, or objects that need unpickling
        raise ValueError(f"{path} cannot be read as a classifier resume file ({type(exc).__name__}: {exc}); delete "
                         "it, use another out_dir or pass resume=False to start over") from None
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt not in READABLE_FORMATS:
        what = (f"format {fmt!r}" if fmt is not None else
                "no classifier format (a GAN or encoder run's resume.pt?)" if isinstance(state, dict) and
                "version" in state else "no format")
        raise ValueError(f"{path} is not a classifier resume file this version reads ({what}; it reads formats "
                         f"{', '.join(map(str, READABLE_FORMATS))}): use another out_dir, or pass resume=False "
                         "(--out a new folder) to start over")
    if fmt == 1:  # before the shared loop: no image count, no training time, no network config
        state = {**state, "nimg": int(state["step"]) * int(state["args"]["batch"]), "wall_s": 0.0, "world_size": 1}
    return state


class ClassifierTrainer:
    """The classifier, its optimiser, its data and one step; :func:`run` (the shared loop) drives it.

    ``step`` / ``nimg``: steps done and images shown (all ranks together). ``total``: the run's length in steps
    (None until a budgeted run has timed its first steps; the learning-rate schedule ends there). Under DDP each
    rank takes its slice of the global batch of the step.
    """

    def __init__(self, model: AttributeClassifier, data: RenderedSplit | FolderSplit, args: dict[str, Any],
                 domain: Domain, info: DistInfo, max_minutes: float | None = None) -> None:
        if args["batch"] % info.world_size:
            raise ValueError(f"batch {args['batch']} is not divisible by the world size {info.world_size}")
        self.model, self.data, self.args, self.domain, self.info = model, data, args, domain, info
        self.opt = torch.optim.Adam(model.parameters(), lr=args["lr"])
        self.step, self.nimg, self.losses = 0, 0, []
        self.total: int | None = args["steps"]
        self.schedule: Schedule | None = None  # set by train_classifier; a budgeted run lengthens it once timed
        self.max_minutes = max_minutes
        self._timing: tuple[float, int] | None = None  # (start time, step) of this call's timing

    def batch(self) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        """This rank's images and labels of the current step (augmented when the run says so)."""
        a, info = self.args, self.info
        positions = batch_indices(a["seed"], self.step, a["batch"], len(self.data))
        local = a["batch"] // info.world_size
        images, targets = self.data.get(positions[info.rank * local:(info.rank + 1) * local])
        x = to_input(images, info.device)
        if a["augment"]:
            x = augment(x, torch.Generator().manual_seed(rank_seed(a["seed"], info.rank, self.step)))
        return x, targets

    def train_step(self, batch: tuple[torch.Tensor, dict[str, np.ndarray]]) -> dict[str, float]:
        x, targets = batch
        a = self.args
        if self._timing is None:
            self._timing = (time.monotonic(), self.step)
        for group in self.opt.param_groups:
            group["lr"] = learning_rate(self.step, a["lr"], self.total if self.total is not None else 10**9,
                                        a["warmup"])
        self.model.train()
        loss, _ = attribute_loss(self.model, self.model(x), targets, self.domain.visible_when)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        tdist.all_reduce_grads(self.model.parameters(), self.info)
        self.opt.step()
        tdist.average_buffers(self.model, self.info)
        value = float(tdist.all_reduce_mean(loss.detach(), self.info))
        self.step += 1
        self.nimg += a["batch"]
        self.losses.append(value)
        if self.total is None:
            self._size_run()
        return {"loss": value}

    def _size_run(self) -> None:
        """Fix the run length from the measured speed once the first steps of this call are timed (they are
        warm-up steps, whose learning rate does not depend on the length; see :func:`learning_rate`)."""
        t0, step0 = self._timing
        if self.max_minutes is None or self.step - step0 < max(1, min(self.args["warmup"], 30)):
            return
        per_step = (time.monotonic() - t0) / (self.step - step0)
        left = self.max_minutes * 60 - (time.monotonic() - t0)
        total = float(self.step + max(int(left / per_step), 0))
        total = int(tdist.all_reduce_mean(torch.tensor(total, dtype=torch.float64), self.info))  # ranks agree
        self.total = self.args["steps"] = total
        if self.schedule is not None:
            self.schedule.total_nimg = total * self.args["batch"]

    def state_dict(self, wall_s: float) -> dict[str, Any] | None:
        """What :meth:`load_state_dict` needs (rank 0; None on the others)."""
        if not self.info.is_main:
            return None
        return {"format": RESUME_FORMAT, "args": dict(self.args), "step": self.step, "nimg": self.nimg,
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "model_config": json.dumps(self.model.config), "optimizer": self.opt.state_dict(),
                "losses": torch.tensor(self.losses, dtype=torch.float64), "wall_s": float(wall_s),
                "world_size": self.info.world_size, "hardware": describe_hardware(self.info)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.step, self.nimg = int(state["step"]), int(state["nimg"])
        self.losses = state["losses"].tolist()


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
    domain: str | None = None,
    max_minutes: float | None = None,
    stop_at: int | None = None,
    save_every: int = 500,
    log_every: int = 50,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Train an :class:`AttributeClassifier` on the train split of a domain's dataset; resumable.

    Args:
        out_dir: where ``resume.pt`` (every ``save_every`` steps and when stopping) and ``log.jsonl`` (the mean
            loss every ``log_every`` steps) are written. If it holds a ``resume.pt`` and ``resume`` is true,
            training continues from it; the run arguments must then match.
        seed, n: the dataset (``n`` images with ``seed``; its train split is used).
        steps: length of the run (the learning-rate schedule ends there). None needs ``max_minutes``: the
            run then times its first steps and fixes ``steps`` to fill the budget.
        batch, lr, warmup: Adam batch size (all ranks together), peak learning rate, linear warm-up steps (then
            cosine to 0).
        augment_images: light blur and noise (see :func:`augment`).
        channels, hidden, norm: the network (see :class:`AttributeClassifier`).
        data_dir: read a dataset folder (``attributes.csv``, as ``idinvert data render`` writes) instead of
            rendering on the fly.
        domain: the registered domain whose schema and images are learned (None: the default domain).
        max_minutes: stop (and save ``resume.pt``) when this much wall time has passed.
        stop_at: stop (and save) at this step even if the run is longer (to be resumed later).
        device: None means CUDA when available, else the CPU (under torchrun: this rank's GPU).

    Under torchrun every rank calls this (the process group is created here when needed); only rank 0 writes.
    Returns a dict: ``model`` (in eval mode), ``step`` (steps done), ``steps`` (planned), ``finished``,
    ``losses`` (the loss of every step, from step 0), ``seconds`` (this call), ``out_dir``, ``args``.
    """
    if steps is None and max_minutes is None:
        raise ValueError("give steps, or max_minutes to size the run to the time budget")
    created_group = not torch.distributed.is_initialized()
    info = tdist.init_from_env(device)
    out_dir = Path(out_dir)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    dom = get_domain(domain)
    args: dict[str, Any] = dict(
        seed=int(seed), n=int(n), resolution=int(resolution), steps=None if steps is None else int(steps),
        batch=int(batch), lr=float(lr), warmup=int(warmup), augment=bool(augment_images),
        channels=None if channels is None else [int(c) for c in channels], hidden=int(hidden), norm=norm,
        data_dir=None if data_dir is None else str(data_dir), domain=domain,
    )  # fmt: skip

    resume_path = out_dir / RESUME_NAME
    state = None
    if resume and resume_path.is_file():
        state = read_resume(resume_path)
        saved = state["args"]
        if args["steps"] is None:
            args["steps"] = saved["steps"]  # a budgeted run resumes with the length it fixed
        diff = [f"{k}: {saved.get(k)!r} in {resume_path.name}, {args[k]!r} now" for k in _RUN_ARGS
                if saved.get(k) != args[k]]
        if diff:
            raise ValueError(f"{resume_path} belongs to another run ({'; '.join(diff)}). Use another out_dir, "
                             "repeat the original arguments, or pass resume=False to start over.")
    elif info.is_main:
        (out_dir / LOG_NAME).unlink(missing_ok=True)  # a fresh run starts a fresh log

    n_train = dom.split_sizes(n)["train"]
    data = (FolderSplit(data_dir, resolution) if data_dir is not None
            else RenderedSplit(seed, range(n_train), resolution, domain=dom))
    torch.manual_seed(seed)  # the initial weights (the same on every rank)
    model = AttributeClassifier(heads_from_specs(dom.attributes), resolution=resolution, channels=channels,
                                hidden=hidden, norm=norm).to(info.device)
    trainer = ClassifierTrainer(model, data, args, dom, info, max_minutes=max_minutes)
    if state is not None:
        trainer.load_state_dict(state)
    tdist.broadcast_module(model, info)

    steps_kimg = batch / 1000  # one step, in thousands of images (the loop's unit)
    schedule = Schedule(batch=batch, total_nimg=(args["steps"] if args["steps"] is not None else 10**12) * batch,
                        max_steps=stop_at, max_minutes=max_minutes, log_kimg=log_every * steps_kimg,
                        snapshot_kimg=save_every * steps_kimg, checkpoint_kimg=save_every * steps_kimg)
    trainer.schedule = schedule
    result = run(trainer, schedule, info, out_dir=out_dir, checkpoint_name=RESUME_NAME, log_name=LOG_NAME,
                 batches=trainer.batch, wall_before=float(state["wall_s"]) if state is not None else 0.0,
                 progress=progress, desc="classifier", postfix=lambda stats: {"loss": f"{stats['loss']:.3f}"})
    if trainer.total is None:  # the budget ran out before the run length could be measured
        trainer.total = args["steps"] = trainer.step
        final = trainer.state_dict((float(state["wall_s"]) if state is not None else 0.0) + result.elapsed)
        if final is not None:
            save_atomic(final, resume_path)
    if created_group:
        tdist.cleanup()
    model.eval()
    return {"model": model, "step": trainer.step, "steps": trainer.total, "finished": trainer.step >= trainer.total,
            "losses": trainer.losses, "seconds": result.elapsed, "out_dir": str(out_dir), "args": args}


def load_resume(out_dir: str | Path, device: str | torch.device = "cpu") -> AttributeClassifier:
    """The model stored in ``out_dir/resume.pt`` (eval mode), e.g. to evaluate or export a stopped run."""
    state = read_resume(Path(out_dir) / RESUME_NAME)
    if "model_config" in state:
        model = AttributeClassifier(**json.loads(state["model_config"]))
    else:  # format 1: the schema of the run's domain
        a = state["args"]
        model = AttributeClassifier(heads_from_specs(get_domain(a.get("domain")).attributes),
                                    resolution=a["resolution"], channels=a["channels"], hidden=a["hidden"],
                                    norm=a["norm"])
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
                      heads: Sequence[dict[str, Any]], domain: str | Domain | None = None
                      ) -> dict[str, dict[str, Any]]:
    """Per-attribute scores of :meth:`AttributeClassifier.predict` outputs against the ground truth.

    * binary: ``accuracy`` of ``probability > 0.5``, and ``majority`` (accuracy of always guessing the
      commoner label, for scale);
    * categorical: ``accuracy`` of the class index, and ``majority``;
    * continuous: ``r2`` = 1 - sum((pred - true)^2) / sum((true - mean)^2) and ``mae``; for a cyclic
      attribute the error goes the shorter way round. Where the domain's schema defines a threshold (smile > 0,
      age > 0.5, ...), ``binary_accuracy`` of the thresholded prediction against the thresholded truth.

    Attributes in the domain's ``visible_when`` are scored only where visible; ``n`` is the number scored.
    ``domain``: the schema's domain (None: the default domain).
    """
    dom = get_domain(domain)
    specs = dom.attribute_specs
    out: dict[str, dict[str, Any]] = {}
    for spec in heads:
        name = spec["name"]
        pred = np.asarray(predictions[name], np.float64)
        true = np.asarray(targets[name], np.float64)
        mask = visible_mask(name, targets, dom.visible_when)
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
            t = getattr(specs.get(name), "threshold", None)
            if t is not None:
                entry["threshold"] = t
                entry["binary_accuracy"] = float(((pred > t) == (true > t)).mean())
        out[name] = entry
    return out


def summarise(metrics: dict[str, dict[str, Any]], domain: str | Domain | None = None) -> dict[str, float]:
    """Means of the accuracies and R^2 over the semantic and the nuisance attributes (of ``domain``'s schema;
    None: the default domain)."""
    specs = get_domain(domain).attribute_specs
    groups: dict[str, list[float]] = {}
    for name, m in metrics.items():
        spec = specs.get(name)
        group = "nuisance" if spec is not None and spec.nuisance else "semantic"
        for key in ("accuracy", "r2", "binary_accuracy"):
            if key in m:
                groups.setdefault(f"{group}_mean_{key}", []).append(m[key])
    return {k: float(np.mean(v)) for k, v in sorted(groups.items())}


@torch.no_grad()
def evaluate_classifier(model: torch.nn.Module, seed: int = 0, indices: Sequence[int] | None = None,
                        resolution: int | None = None, *, n: int = 70000, batch: int = 250,
                        progress: bool = False, domain: str | Domain | None = None) -> dict[str, Any]:
    """Score ``model`` on images ``indices`` of the domain's dataset with ``seed`` (default: the whole test
    split of ``n`` images, 65,000 .. 69,999 for n = 70,000). See :func:`attribute_metrics` for the scores.

    ``model`` needs ``attributes`` (head specs) and ``predict(x)``; it is run in eval mode. ``domain``: None
    for the default domain.
    """
    dom = get_domain(domain)
    if indices is None:
        sizes = dom.split_sizes(n)
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
        images, attrs = dom.images(seed, indices[start:start + batch], resolution)
        for k, v in model.predict(to_input(images, device)).items():
            preds.setdefault(k, []).append(v.float().cpu().numpy())
        for k, v in attrs.items():
            targets.setdefault(k, []).append(v)
    model.train(was_training)
    p = {k: np.concatenate(v) for k, v in preds.items()}
    t = {k: np.concatenate(v) for k, v in targets.items()}
    metrics = attribute_metrics(p, t, model.attributes, dom)
    span = f"{indices[0]}..{indices[-1]}" if indices == list(range(indices[0], indices[-1] + 1)) else "custom"
    return {"seed": seed, "resolution": resolution, "num_images": len(indices), "indices": span,
            "attributes": metrics, "summary": summarise(metrics, dom)}


# -- export -----------------------------------------------------------------------------------------------
def _card_body(name: str, model: AttributeClassifier, metrics: dict[str, Any] | None,
               training: dict[str, Any] | None, domain: Domain) -> str:
    lines = [
        f"# {name}", "",
        f"Attribute classifier of the `{domain.name}` domain ({domain.title or domain.name}: {domain.description}): "
        "one head per ground-truth attribute of the domain's schema (binary, categorical, or continuous "
        "regressed on the attribute's range). It also serves as an offline feature network "
        "(`features(x, 'stage2')` for perceptual losses, `features(x, 'pool')` for Fréchet distances), "
        "since no VGG / Inception weights are shipped.", "",
        "## Usage", "", "```python", "import idinvert_plugins as ip", "",
        f'clf = ip.load_model("{name}", kind="classifier")  # or the folder path',
        "scores = clf.predict(images)  # images [N, 3, 64, 64] in [-1, 1]", "```", "",
        "## Training data", "",
        f"Only the train split of the {domain.title or domain.name} (images 0..64999 of the domain's dataset for "
        "n = 70,000), rendered on the fly; light blur and noise augmentation. Trained by "
        "`idinvert_plugins.training.classifier`.",
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
    limits = (f"Valid only for the {domain.label} domain at its resolution; on other images its outputs mean "
              "nothing.")
    if domain.visible_when:
        limits += (" The heads of " + ", ".join(f"{child} (only where {parent} is one of classes "
                                                   f"{list(classes)})"
                                                   for child, (parent, classes) in domain.visible_when.items())
                   + " are only meaningful where the attribute is visible.")
    lines += ["", "## Limitations", "", limits]
    return "\n".join(lines)


def export_classifier(model: AttributeClassifier, folder: str | Path, metrics: dict[str, Any] | None = None,
                      *, name: str | None = None, training: dict[str, Any] | None = None,
                      dtype: torch.dtype = torch.float16, domain: str | Domain | None = None) -> Path:
    """Write the model folder (``config.json``, ``model.safetensors`` in ``dtype``, ``README.md`` card) with
    ``idinvert_plugins.hub.save_pretrained``, plus ``metrics.json`` when ``metrics`` is given. ``domain``: the
    one it was trained on (None: the default domain), named in the card."""
    from ..cards import card_stub
    from ..hub import save_pretrained

    folder = Path(folder)
    name = name or folder.name
    card = card_stub(name, "classifier", model.architecture, model.config, license="mit")
    dom = get_domain(domain)
    card.data["tags"] = [*card.data["tags"], dom.name]
    card.data["files"] = ["config.json", "model.safetensors", *(["metrics.json"] if metrics else [])]
    card.body = _card_body(name, model, metrics, training, dom)
    save_pretrained(model, folder, kind="classifier", card=card, dtype=dtype)
    if metrics is not None:
        (folder / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return folder


# -- command line -----------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m idinvert_plugins.training.classifier",
        description="Train a domain's attribute classifier (by default the default domain's), evaluate it on the "
                    "test split and export it.")
    parser.add_argument("--out", required=True, help="run folder (resume.pt); resumed when it has one")
    parser.add_argument("--minutes", type=float, default=None,
                        help="training time budget; without --steps the run length is sized to fill it")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=70000, help="dataset size (train split = all but the last 7.1 %%)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--data-dir", default=None, help="a dataset folder (attributes.csv, as `idinvert data "
                                                         "render` writes) instead of rendering on the fly")
    parser.add_argument("--domain", default=None, help="the registered domain to learn (default: the default "
                                                       "domain; `idinvert plugins` lists them)")
    parser.add_argument("--eval-n", type=int, default=None, help="score only the first N test images")
    parser.add_argument("--export", default=None, help="model folder to write (default OUT/DOMAIN-classifier-RES)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default=None)
    parser.add_argument("--no-progress", action="store_true")
    a = parser.parse_args(argv)
    if a.steps is None and a.minutes is None:
        parser.error("give --minutes or --steps")
    torch.set_num_threads(a.threads)
    progress = not a.no_progress
    dom = get_domain(a.domain)
    trained = train_classifier(a.out, seed=a.seed, n=a.n, resolution=a.resolution, steps=a.steps, batch=a.batch,
                           lr=a.lr, data_dir=a.data_dir, domain=a.domain, max_minutes=a.minutes, device=a.device,
                           progress=progress)
    model = trained["model"]
    sizes = dom.split_sizes(a.n)
    test = range(sizes["train"], a.n if a.eval_n is None else min(a.n, sizes["train"] + a.eval_n))
    metrics = evaluate_classifier(model, a.seed, test, a.resolution, n=a.n, progress=progress, domain=dom)
    metrics["training"] = {"step": trained["step"], "steps": trained["steps"], "finished": trained["finished"],
                           "batch": a.batch, "lr": a.lr, "final_loss": float(np.mean(trained["losses"][-50:]))}
    folder = Path(a.export or Path(a.out) / f"{dom.name}-classifier-{a.resolution}")
    export_classifier(model, folder, metrics, training={"steps": trained["step"], "batch": a.batch, "lr": a.lr,
                                                         "seed": a.seed, "n": a.n}, domain=dom)
    (Path(a.out) / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(metrics["summary"], indent=2))
    print(f"exported to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
