"""The training loop the GAN, encoder and classifier trainers share (:func:`run`: step, log, snapshot,
checkpoint, stop, DDP), and the pieces around it: interval checks, running loss means for the log, the per-step
decision whether to stop, seeds, atomic checkpoints, image grids, hardware descriptions and ``--set`` overrides.
Each trainer (:mod:`.gan`, :mod:`.encoder`, :mod:`.classifier`) supplies its networks, its step and its state."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from . import distributed as tdist
from .distributed import DistInfo
from .stopping import GracefulStop


def crossed(interval_kimg: float, before: int, after: int) -> bool:
    """True when a step that took the image count from ``before`` to ``after`` crossed a multiple of
    ``interval_kimg`` thousand images (log, snapshot and checkpoint schedules)."""
    every = max(1, int(round(interval_kimg * 1000)))
    return after // every > before // every


class RunningMeans:
    """Means of each loss term since the last :meth:`clear` (what one log record holds)."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def add(self, stats: dict[str, float]) -> None:
        for k, v in stats.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
            self._counts[k] = self._counts.get(k, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self._sums[k] / self._counts[k] for k in self._sums}

    def clear(self) -> None:
        self._sums.clear()
        self._counts.clear()

    def __bool__(self) -> bool:
        return bool(self._sums)


def should_stop(*, done: bool, stop: GracefulStop, t_start: float, max_minutes: float | None,
                info: DistInfo) -> bool:
    """Stop before the next step? ``done``: the image/step budget is reached; also a Ctrl-C / SIGTERM or the
    ``max_minutes`` wall-clock budget on any rank (one collective per step under DDP)."""
    out_of_time = max_minutes is not None and time.perf_counter() - t_start >= max_minutes * 60
    return tdist.any_rank(done or stop.requested or out_of_time, info)


# -- files and images the trainers write ------------------------------------------------------------------
def rank_seed(seed: int, rank: int, step: int) -> int:
    """The torch seed of ``rank`` at ``step`` (fresh runs, and resumptions with another world size)."""
    return (seed * 1_000_003 + rank * 7919 + step) % (2**63)


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def to_float(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1] on ``device``."""
    x = images.to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def image_grid(images: torch.Tensor, cols: int = 8) -> np.ndarray:
    """Float NCHW in [-1, 1] -> one uint8 HWC grid image."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    n, h, w, c = x.shape
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    for i in range(n):
        grid[(i // cols) * h : (i // cols + 1) * h, (i % cols) * w : (i % cols + 1) * w] = x[i]
    return grid[..., 0] if c == 1 else grid


def save_png(grid: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(grid).save(path)


def describe_hardware(info: DistInfo) -> str:
    """What a run trained on, for checkpoints and model cards."""
    if info.device.type == "cuda":
        where = torch.cuda.get_device_name(info.device)
    else:
        where = f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"
    threads = torch.get_num_threads()
    return f"{info.world_size} x {where}, torch {torch.__version__}, {threads} thread{'s' * (threads != 1)}/process"


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``--set`` values of ``idinvert train-gan`` / ``train-encoder`` -> a dict of preset overrides, e.g.
    ``["batch=16", "l_adv=0.08", '{"encoder": {"channel_max": 256}}']``.

    Each item is ``key=value`` (the value read as JSON, else kept as a string) or a JSON object.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        text = item.strip()
        if not text:
            continue
        if text.startswith("{"):
            try:
                values = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"--set {text!r} is not valid JSON ({exc})") from None
            out.update(values)
            continue
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value (e.g. batch=16) or a JSON object, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


class PresetTable(Mapping[str, dict[str, Any]]):
    """Named training presets: a trainer's own table plus the ``gan_presets`` / ``encoder_presets`` /
    ``style_encoder_presets`` (``kind``) of every registered domain (:mod:`idinvert_plugins.domains`; a name of the
    trainer's own table wins), read from the registry on each access, so the presets of a domain plugin appear once
    it is installed."""

    def __init__(self, kind: str, own: dict[str, dict[str, Any]]) -> None:
        self.kind, self.own = kind, own

    def _table(self) -> dict[str, dict[str, Any]]:
        from ..domains import domains

        merged: dict[str, dict[str, Any]] = {}
        for domain in domains():
            merged.update({k: dict(v) for k, v in domain.presets(self.kind).items()})
        return {**merged, **self.own}

    def __getitem__(self, name: str) -> dict[str, Any]:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def default(self) -> str:
        """The default domain's default preset of this kind (else the first preset)."""
        from ..domains import default_domain

        name = getattr(default_domain(), f"default_{self.kind}_preset", None)
        return name if name in self else next(iter(self))


# -- the loop ------------------------------------------------------------------------------------------------
class Trainer(Protocol):
    """What :func:`run` drives: a step counter, the images shown so far (all ranks together), one training
    step, and a checkpoint (a collective: every rank calls it, rank 0 gets the dict, the others None)."""

    step: int
    nimg: int

    def train_step(self, batch: Any) -> dict[str, float]: ...

    def state_dict(self, wall_s: float) -> dict[str, Any] | None: ...


@dataclass
class Schedule:
    """How long a call of :func:`run` trains and how often it writes (intervals in thousands of images)."""

    batch: int  # the global batch (images per step, all ranks together)
    total_nimg: int  # stop when this many images have been shown (read before every step: a trainer may
    # fix it during the run, as the classifier does once it has timed its first steps) ...
    max_steps: int | None = None  # ... or at this many steps ...
    max_minutes: float | None = None  # ... or after this many minutes of this call
    log_kimg: float = 4.0
    snapshot_kimg: float = 100.0
    checkpoint_kimg: float = 50.0


@dataclass
class RunResult:
    """What :func:`run` did: the loss means of the last step (this rank), its training time and speed."""

    last: dict[str, float]
    elapsed: float
    images_per_s: float


def run(
    trainer: Trainer,
    schedule: Schedule,
    info: DistInfo,
    *,
    out_dir: Path,
    checkpoint_name: str,
    log_name: str,
    batches: Callable[[], Any],
    wall_before: float = 0.0,
    log_fields: Callable[[dict[str, float]], dict[str, Any]] | None = None,
    snapshot: Callable[[], Any] | None = None,
    extend_state: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = True,
    desc: str | None = None,
    postfix: Callable[[dict[str, float]], dict[str, str]] | None = None,
) -> RunResult:
    """The training loop every trainer shares: step, log, snapshot, checkpoint, stop.

    Each step takes ``batches()`` (this rank's input of the step, or None) to ``trainer.train_step``. When a
    step crosses a multiple of ``log_kimg`` the means of the losses since the last record go to ``log_name``
    (rank 0; ``log_fields(means)`` may add to them), of ``snapshot_kimg`` rank 0 calls ``snapshot()``, of
    ``checkpoint_kimg`` the trainer's state (with ``extend_state`` applied) is saved atomically as
    ``checkpoint_name``. It stops before a step when the image or step budget is reached, after
    ``max_minutes``, or on Ctrl-C / SIGTERM (any rank; all ranks stop at the same step), then writes the last
    log record and the final checkpoint. Under torchrun every rank calls it; only rank 0 writes.
    """
    bar = None
    if info.is_main and progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=schedule.total_nimg / 1000, initial=trainer.nimg / 1000, unit="kimg", dynamic_ncols=True,
                   desc=desc, bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} kimg [{elapsed}<{remaining}{postfix}]")

    t_start = time.perf_counter()
    nimg_start, t_log, nimg_log = trainer.nimg, t_start, trainer.nimg
    means = RunningMeans()
    stats: dict[str, float] = {}

    def write_log() -> None:
        nonlocal t_log, nimg_log
        now = time.perf_counter()
        if info.is_main and means:
            record = {
                "step": trainer.step,
                "kimg": trainer.nimg / 1000,
                "wall_s": round(wall_before + now - t_start, 3),
                "images_per_s": round((trainer.nimg - nimg_log) / max(now - t_log, 1e-9), 2),
                **(log_fields(means.means()) if log_fields is not None else means.means()),
            }
            with open(out_dir / log_name, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            now = time.perf_counter()  # what log_fields evaluates does not count against the speed
        means.clear()
        t_log, nimg_log = now, trainer.nimg

    def checkpoint() -> None:
        state = trainer.state_dict(wall_before + time.perf_counter() - t_start)
        if state is not None:
            if extend_state is not None:
                extend_state(state)
            save_atomic(state, out_dir / checkpoint_name)

    stop = GracefulStop().install()  # Ctrl-C / SIGTERM: finish the step, write the checkpoint
    try:
        while True:
            done = trainer.nimg >= schedule.total_nimg or (
                schedule.max_steps is not None and trainer.step >= schedule.max_steps)
            if should_stop(done=done, stop=stop, t_start=t_start, max_minutes=schedule.max_minutes, info=info):
                break
            if bar is not None and bar.total != schedule.total_nimg / 1000:
                bar.total = schedule.total_nimg / 1000
                bar.refresh()
            batch = batches()
            before = trainer.nimg
            stats = trainer.train_step(batch)
            means.add(stats)
            if bar is not None:
                bar.update(schedule.batch / 1000)
                if postfix is not None:
                    bar.set_postfix(postfix(stats), refresh=False)
            if crossed(schedule.log_kimg, before, trainer.nimg):
                write_log()
            if crossed(schedule.snapshot_kimg, before, trainer.nimg) and info.is_main and snapshot is not None:
                snapshot()
            if crossed(schedule.checkpoint_kimg, before, trainer.nimg):
                checkpoint()
    finally:
        stop.restore()
        if bar is not None:
            bar.close()

    write_log()
    elapsed = time.perf_counter() - t_start
    checkpoint()
    return RunResult(last=stats, elapsed=elapsed, images_per_s=(trainer.nimg - nimg_start) / max(elapsed, 1e-9))
