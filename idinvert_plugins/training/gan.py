"""Train a StyleGAN2 or StyleGAN (v1) generator with its discriminator, on a domain's images or an image folder.

The recipe is StyleGAN2's (Karras et al. 2020, NVlabs config F), for both backends:

* non-saturating logistic loss, ``softplus(D(G(z)))`` + ``softplus(-D(x))`` for D and ``softplus(-D(G(z)))``
  for G;
* R1 on reals, applied lazily every ``r1_interval`` steps with the penalty scaled by the interval (and Adam's
  lr / betas adjusted by ``interval / (interval + 1)``, as the paper);
* optional path-length regularisation (``pl_weight`` > 0), lazy every ``pl_interval`` steps;
* style mixing: with probability ``style_mixing_prob`` the layers from a random cutoff on get the w of
  another z;
* an exponential moving average of G's weights (``G_ema``, half-life ``ema_kimg`` thousand images, ramped up
  over the first ``ema_rampup`` of training), and ``w_avg`` tracked as an EMA of the batch-mean w (layer 0's w
  for v1 models without a W space, as TF IDInvert tracks ``dlatent_avg``);
* bf16 autocast and channels_last (CPU and CUDA).

For v1 this is the paper's original loss (non-saturating logistic + R1, which StyleGAN introduced over
ProGAN's WGAN-GP), but **without progressive growing**: both networks are trained at full resolution from
the start, and R1 is lazy (every 16 steps, the same average strength) to save CPU time.

Distributed: run under ``torchrun --nproc_per_node=K``; ``batch`` is the global batch, each rank renders
different images, gradients are averaged explicitly (see :mod:`.distributed`), only rank 0 writes files.

Outputs in ``out_dir``: ``resume.pt`` (everything needed to continue, overwritten atomically, loadable with
``torch.load(weights_only=True)``), ``log.jsonl``, ``samples_{kimg:06d}.png`` (8x8 grids of G_ema on fixed z)
and ``reals.png``. :func:`export` turns a run into model folders.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import distributed as tdist
from .data import DomainImages, FolderImages, StepBatches
from .distributed import DistInfo
from .loop import (
    PresetTable,
    Schedule,
    describe_hardware,
    image_grid,
    parse_overrides,
    rank_seed,
    run,
    save_atomic,
    save_png,
    to_float,
)

CHECKPOINT_NAME = "resume.pt"
LOG_NAME = "log.jsonl"
CHECKPOINT_VERSION = 1

# Fields that only steer a run (how long, how often to write); they may change between resumptions.
RUN_CONTROL_FIELDS = ("total_kimg", "checkpoint_kimg", "snapshot_kimg", "log_kimg", "workers")

#: Named presets: overrides of the :class:`TrainConfig` defaults. One table, so every hyperparameter of a
#: shipped model has exactly one home: the tiny ones here, those of a domain's models in its ``gan_presets``
#: (the table reads both; see :class:`~idinvert_plugins.training.loop.PresetTable`).
_PRESETS: dict[str, dict[str, Any]] = {
    # Tiny networks for tests and smoke runs.
    "tiny-stylegan2": dict(
        backend="stylegan2",
        resolution=16,
        generator=dict(z_dim=32, w_dim=32, mapping_layers=2, channels={"4": 16, "8": 16, "16": 16}),
        discriminator=dict(channels={"4": 16, "8": 16, "16": 16}),
        batch=4,
        r1_interval=2,
        ema_kimg=0.01,
        bf16=False,
        channels_last=False,
        n_train=256,
        checkpoint_kimg=1,
        snapshot_kimg=1,
        log_kimg=0.01,
        total_kimg=1,
    ),
    "tiny-stylegan": dict(
        backend="stylegan",
        resolution=16,
        generator=dict(
            z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16, repeat_w=False, final_tanh=True
        ),
        discriminator=dict(channel_base=256, channel_max=16),
        batch=4,
        lr=0.002,
        r1_interval=2,
        ema_kimg=0.01,
        bf16=False,
        channels_last=False,
        n_train=256,
        checkpoint_kimg=1,
        snapshot_kimg=1,
        log_kimg=0.01,
        total_kimg=1,
    ),
}

#: every preset by name: the table above and the registered domains' ``gan_presets``
PRESETS = PresetTable("gan", _PRESETS)


@dataclass
class TrainConfig:
    """Every hyperparameter of a GAN training run. Build one with :meth:`preset`."""

    backend: str = "stylegan2"  # "stylegan2" | "stylegan" (v1)
    resolution: int = 64
    generator: dict[str, Any] = field(default_factory=dict)  # generator kwargs besides resolution
    discriminator: dict[str, Any] = field(default_factory=dict)  # discriminator kwargs besides resolution
    batch: int = 32  # global batch: all ranks together
    lr: float = 0.0025  # Adam, both networks
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    r1_gamma: float = 0.1
    r1_interval: int = 16  # lazy R1: every this many steps (1 = every step)
    pl_weight: float = 0.0  # path-length regularisation weight (0 = off; StyleGAN2 config F uses 2)
    pl_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing_prob: float = 0.9
    ema_kimg: float = 10.0  # G_ema half-life in thousands of images
    ema_rampup: float | None = 0.05  # half-life at most this fraction of the images seen so far (None = off)
    w_avg_beta: float = 0.995
    bf16: bool = True  # bf16 autocast for the networks' forward passes
    channels_last: bool = True
    domain: str | None = None  # the registered domain whose dataset trains it (None: the default domain) ...
    data_seed: int = 0  # ... its dataset seed
    n_train: int = 65000  # train on the first n_train train-split images of the domain's dataset ...
    n_total: int = 70000  # ... of this many images (the train/test split is defined over these)
    data_dir: str | None = None  # or train on this folder of images instead
    workers: int = 0  # DataLoader worker processes rendering / reading images
    seed: int = 0
    checkpoint_kimg: float = 50.0
    snapshot_kimg: float = 100.0
    log_kimg: float = 4.0
    total_kimg: float = 3000.0

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """The named preset (see :data:`PRESETS`) with ``overrides``; dict-valued overrides of
        ``generator`` / ``discriminator`` update the preset's dict instead of replacing it."""
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        values = copy.deepcopy(PRESETS[name])
        for key, value in overrides.items():
            if key in ("generator", "discriminator") and isinstance(value, dict):
                values[key] = {**values.get(key, {}), **value}
            else:
                values[key] = value
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown GAN training setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def __post_init__(self) -> None:
        if self.backend not in ("stylegan2", "stylegan"):
            raise ValueError(f"backend must be 'stylegan2' or 'stylegan', got {self.backend!r}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        for name in ("r1_interval", "pl_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


# -- networks ------------------------------------------------------------------------------------------
def build_networks(cfg: TrainConfig) -> tuple[nn.Module, nn.Module]:
    """Fresh generator and discriminator for ``cfg`` (initialised from the current torch RNG)."""
    from ..models.discriminator import StyleGAN2Discriminator, StyleGANDiscriminator

    if cfg.backend == "stylegan2":
        from ..models.stylegan2 import StyleGAN2Generator

        G = StyleGAN2Generator(resolution=cfg.resolution, **cfg.generator)
        D = StyleGAN2Discriminator(resolution=cfg.resolution, **cfg.discriminator)
    else:
        from ..models.stylegan import StyleGANGenerator

        G = StyleGANGenerator(resolution=cfg.resolution, **cfg.generator)
        D = StyleGANDiscriminator(resolution=cfg.resolution, **cfg.discriminator)
    return G, D


def training_images(cfg: TrainConfig) -> DomainImages | FolderImages:
    """The training set ``cfg`` names: ``data_dir`` if set, else the domain's dataset."""
    if cfg.data_dir is not None:
        return FolderImages(cfg.data_dir, cfg.resolution)
    return DomainImages(cfg.data_seed, cfg.resolution, cfg.n_train, cfg.n_total, domain=cfg.domain)


# -- the training loop ---------------------------------------------------------------------------------
class GANTrainer:
    """G, D, G_ema, their optimisers and one training step. :func:`train_gan` drives it."""

    def __init__(self, cfg: TrainConfig, info: DistInfo | None = None) -> None:
        self.cfg, self.info = cfg, info or DistInfo()
        if cfg.batch % self.info.world_size:
            raise ValueError(f"batch {cfg.batch} is not divisible by the world size {self.info.world_size}")
        self.local_batch = cfg.batch // self.info.world_size
        device = self.info.device
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format

        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        G, D = build_networks(cfg)
        self.G = G.to(device, memory_format=self.memory_format).train().requires_grad_(False)
        self.D = D.to(device, memory_format=self.memory_format).train().requires_grad_(False)
        self.G_ema = copy.deepcopy(self.G).eval()
        tdist.broadcast_module(self.G, self.info)
        tdist.broadcast_module(self.D, self.info)
        tdist.broadcast_module(self.G_ema, self.info)

        def adam(module: nn.Module, reg_interval: int | None) -> torch.optim.Adam:
            # Regularisation as a separate step every `reg_interval` main steps means Adam takes
            # interval + 1 steps where it would have taken interval; rescale to keep the same dynamics.
            ratio = 1.0 if reg_interval is None else reg_interval / (reg_interval + 1)
            betas = (cfg.betas[0] ** ratio, cfg.betas[1] ** ratio)
            return torch.optim.Adam(module.parameters(), lr=cfg.lr * ratio, betas=betas, eps=cfg.eps)

        self.G_opt = adam(self.G, cfg.pl_interval if cfg.pl_weight > 0 else None)
        self.D_opt = adam(self.D, cfg.r1_interval if cfg.r1_gamma > 0 else None)
        self.pl_mean = torch.zeros([], device=device)
        self.step = 0  # optimisation steps done
        self.nimg = 0  # real images shown to D, all ranks together

    # -- pieces --------------------------------------------------------------------------------------
    def autocast(self) -> torch.autocast:
        return torch.autocast(self.info.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    def sample_ws(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """W+ codes ``[n, L, w_dim]`` of random z through G's mapping, style-mixed with probability
        ``style_mixing_prob`` (one random cutoff per batch), and the per-image w used for ``w_avg``."""
        G, device = self.G, self.info.device
        w = G.mapping(torch.randn(n, G.z_dim, device=device))
        w_track = w if w.ndim == 2 else w[:, 0]
        ws = G.to_wplus(w)
        if self.cfg.style_mixing_prob > 0 and float(torch.rand([])) < self.cfg.style_mixing_prob:
            cutoff = int(torch.randint(1, G.num_layers, []))
            ws2 = G.to_wplus(G.mapping(torch.randn(n, G.z_dim, device=device)))
            ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return ws, w_track

    def _optimise(self, module: nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        tdist.all_reduce_grads(module.parameters(), self.info)
        opt.step()

    def d_step(self, real: torch.Tensor) -> dict[str, float]:
        """D's part of a step: the logistic loss on ``real`` (this rank's float batch in [-1, 1]) and fresh
        fakes, then R1 when the step counter is due. Returns this rank's losses."""
        cfg, G, D = self.cfg, self.G, self.D
        D.requires_grad_(True)
        with torch.no_grad(), self.autocast():
            fake = G.synthesis(self.sample_ws(self.local_batch)[0], noise_mode="random")
        with self.autocast():
            logits_fake = D(fake.to(memory_format=self.memory_format)).float()
            logits_real = D(real).float()
        loss = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
        self._optimise(D, self.D_opt, loss)
        stats = dict(loss_D=loss.item(), D_real=logits_real.mean().item(), D_fake=logits_fake.mean().item())

        # R1: penalise D's gradient on real images (lazy: every r1_interval steps, scaled up to match).
        if cfg.r1_gamma > 0 and self.step % cfg.r1_interval == 0:
            real_ = real.detach().requires_grad_(True)
            with self.autocast():
                logits = D(real_).float()
            (grad,) = torch.autograd.grad(logits.sum(), real_, create_graph=True)
            penalty = grad.float().square().sum(dim=[1, 2, 3])
            self._optimise(D, self.D_opt, penalty.mean() * (cfg.r1_gamma / 2) * cfg.r1_interval)
            stats["r1_penalty"] = penalty.mean().item()
        D.requires_grad_(False)
        return stats

    def g_step(self) -> tuple[dict[str, float], torch.Tensor]:
        """G's part of a step: the non-saturating loss, then path length when due. Returns this rank's
        losses and the w of the main batch (for ``w_avg``)."""
        cfg, G, D = self.cfg, self.G, self.D
        G.requires_grad_(True)
        ws, w_track = self.sample_ws(self.local_batch)
        with self.autocast():
            logits = D(G.synthesis(ws, noise_mode="random").to(memory_format=self.memory_format)).float()
        loss = F.softplus(-logits).mean()
        self._optimise(G, self.G_opt, loss)
        stats = {"loss_G": loss.item()}

        # Path length: keep |J^T y| (image-space noise y pulled back to W+) constant over the latent space.
        if cfg.pl_weight > 0 and self.step % cfg.pl_interval == 0:
            ws_pl, _ = self.sample_ws(max(1, self.local_batch // cfg.pl_batch_shrink))
            with self.autocast():
                img = G.synthesis(ws_pl, noise_mode="random").float()
            noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
            (grad,) = torch.autograd.grad((img * noise).sum(), ws_pl, create_graph=True)
            lengths = grad.float().square().sum(2).mean(1).sqrt()
            batch_mean = tdist.all_reduce_mean(lengths.mean().detach(), self.info)
            self.pl_mean.copy_(self.pl_mean.lerp(batch_mean, cfg.pl_decay))
            penalty = (lengths - self.pl_mean).square()
            self._optimise(G, self.G_opt, penalty.mean() * cfg.pl_weight * cfg.pl_interval)
            stats["pl_penalty"] = penalty.mean().item()
        G.requires_grad_(False)
        return stats, w_track.detach()

    def train_step(self, real: torch.Tensor) -> dict[str, float]:
        """One step: :meth:`d_step`, :meth:`g_step`, then ``w_avg`` and G_ema. Returns this rank's losses."""
        stats = self.d_step(real)
        g_stats, w_track = self.g_step()
        stats.update(g_stats)
        self.step += 1
        self.nimg += self.cfg.batch
        with torch.no_grad():
            w_mean = tdist.all_reduce_mean(w_track.float().mean(0), self.info)
            self.G.w_avg.copy_(w_mean.lerp(self.G.w_avg, self.cfg.w_avg_beta))
            self.update_ema()
        return stats

    @torch.no_grad()
    def update_ema(self) -> None:
        """G_ema <- lerp(G, G_ema, beta) with beta from the half-life; buffers (w_avg, noise) are copied."""
        ema_nimg = self.cfg.ema_kimg * 1000
        if self.cfg.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.nimg * self.cfg.ema_rampup)
        beta = 0.5 ** (self.cfg.batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    @torch.no_grad()
    def sample_grid(self, z: torch.Tensor) -> np.ndarray:
        """G_ema's images of ``z`` (stored noise), as one uint8 grid."""
        with self.autocast():
            images = [self.G_ema(zc.to(self.info.device), noise_mode="const").float() for zc in z.split(16)]
        return image_grid(torch.cat(images))

    # -- checkpointing -------------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, torch.Tensor]:
        state = {"cpu": torch.get_rng_state()}
        if self.info.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.info.device)
        return state

    def state_dict(self, wall_s: float) -> dict[str, Any] | None:
        """Everything :meth:`load_state_dict` needs (on rank 0; None on the others). Collective: every
        rank must call it (each rank's RNG state is gathered)."""
        rng = tdist.gather_objects(self._rng_state(), self.info)
        if not self.info.is_main:
            return None

        def cpu(sd: dict[str, Any]) -> dict[str, Any]:
            return {k: v.detach().cpu().contiguous() if torch.is_tensor(v) else v for k, v in sd.items()}

        return {
            "version": CHECKPOINT_VERSION,
            "config": json.dumps(self.cfg.to_dict()),
            "G": cpu(self.G.state_dict()),
            "D": cpu(self.D.state_dict()),
            "G_ema": cpu(self.G_ema.state_dict()),
            "G_opt": self.G_opt.state_dict(),
            "D_opt": self.D_opt.state_dict(),
            "pl_mean": self.pl_mean.detach().cpu(),
            "step": self.step,
            "nimg": self.nimg,
            "wall_s": float(wall_s),
            "world_size": self.info.world_size,
            "hardware": describe_hardware(self.info),
            "rng": rng,
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (restores this rank's RNG when the world size is unchanged,
        otherwise re-seeds from (seed, rank, step))."""
        self.G.load_state_dict(ckpt["G"])
        self.D.load_state_dict(ckpt["D"])
        self.G_ema.load_state_dict(ckpt["G_ema"])
        self.G_opt.load_state_dict(ckpt["G_opt"])
        self.D_opt.load_state_dict(ckpt["D_opt"])
        self.pl_mean.copy_(ckpt["pl_mean"])
        self.step, self.nimg = int(ckpt["step"]), int(ckpt["nimg"])
        if int(ckpt["world_size"]) == self.info.world_size:
            rng = ckpt["rng"][self.info.rank]
            torch.set_rng_state(rng["cpu"])
            if "cuda" in rng and self.info.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.info.device)
        else:
            torch.manual_seed(rank_seed(self.cfg.seed, self.info.rank, self.step))


def load_checkpoint(out_dir: str | Path) -> dict[str, Any]:
    """The run's ``resume.pt``, loaded safely (``weights_only=True``) on the CPU."""
    return torch.load(Path(out_dir) / CHECKPOINT_NAME, map_location="cpu", weights_only=True)


def compact_checkpoint(out_dir: str | Path) -> Path:
    """Store the optimisers' moments of ``out_dir/resume.pt`` in bfloat16, in place (a quarter smaller).

    For the one resume point a repository commits between sessions. Resuming works unchanged:
    ``Optimizer.load_state_dict`` casts the moments back to the parameters' float32. The networks stay exact;
    only Adam's running averages lose precision, once.
    """
    path = Path(out_dir) / CHECKPOINT_NAME
    ckpt = load_checkpoint(out_dir)
    for key in ("G_opt", "D_opt"):
        for state in ckpt[key]["state"].values():
            for name in ("exp_avg", "exp_avg_sq"):
                if name in state:
                    state[name] = state[name].to(torch.bfloat16)
    save_atomic(ckpt, path)
    return path


def _check_same_run(cfg: TrainConfig, saved: TrainConfig) -> None:
    a, b = cfg.to_dict(), saved.to_dict()
    diff = [k for k in a if k not in RUN_CONTROL_FIELDS and a[k] != b.get(k)]
    if diff:
        details = "; ".join(f"{k}: checkpoint {b.get(k)!r} vs given {a[k]!r}" for k in diff)
        raise ValueError(
            f"the checkpoint in this folder was trained with a different configuration ({details}). "
            "Use another out_dir, or resume=False to start over."
        )


def train_gan(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    max_kimg: float | None = None,
    max_minutes: float | None = None,
    max_steps: int | None = None,
    resume: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or continue training) a GAN; see the module docstring for the recipe and the files written.

    Stops when ``max_kimg`` (default ``cfg.total_kimg``) thousand images have been shown, after
    ``max_minutes`` of wall-clock time in this call, or at ``max_steps`` total steps, whichever comes
    first; it always writes a checkpoint before returning. With ``resume`` an existing ``resume.pt`` in
    ``out_dir`` is continued (its configuration must match ``cfg`` except the run-control fields).
    Under torchrun every rank calls this; the process group is created here when needed.

    Returns a summary: ``step``, ``kimg``, ``wall_s`` (training time, all calls), ``images_per_s`` (this
    call), ``last`` (this rank's last losses), ``checkpoint`` (its path) and ``trainer`` (the
    :class:`GANTrainer`, with this rank's networks).
    """
    created_group = not torch.distributed.is_initialized()
    info = tdist.init_from_env()
    out_dir = Path(out_dir)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    total_nimg = int(round((cfg.total_kimg if max_kimg is None else max_kimg) * 1000))

    trainer = GANTrainer(cfg, info)
    wall_before = 0.0
    ckpt_path = out_dir / CHECKPOINT_NAME
    resumed = resume and ckpt_path.is_file()
    if resumed:
        ckpt = load_checkpoint(out_dir)
        _check_same_run(cfg, TrainConfig.from_dict(json.loads(ckpt["config"])))
        trainer.load_state_dict(ckpt)
        wall_before = float(ckpt["wall_s"])
        del ckpt
    else:
        torch.manual_seed(rank_seed(cfg.seed, info.rank, 0))
        if info.is_main:
            (out_dir / LOG_NAME).unlink(missing_ok=True)  # a fresh run starts a fresh log

    source = training_images(cfg)
    # The loader gets its own generator: drawing its worker seed from the global RNG would make a resumed
    # run differ from an uninterrupted one.
    loader = torch.utils.data.DataLoader(
        StepBatches(source, cfg.batch, info, seed=cfg.seed), batch_size=None,
        sampler=itertools.count(trainer.step), num_workers=cfg.workers, persistent_workers=cfg.workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed),
    )  # fmt: skip
    grid_z = torch.randn(64, trainer.G.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 12345))
    if info.is_main and not resumed:
        reals = torch.from_numpy(source.images(list(range(min(64, len(source))))))
        save_png(image_grid(to_float(reals, torch.device("cpu"), False)), out_dir / "reals.png")
        save_png(trainer.sample_grid(grid_z), out_dir / f"samples_{0:06d}.png")

    data = iter(loader)
    result = run(
        trainer, Schedule(batch=cfg.batch, total_nimg=total_nimg, max_steps=max_steps, max_minutes=max_minutes,
                          log_kimg=cfg.log_kimg, snapshot_kimg=cfg.snapshot_kimg, checkpoint_kimg=cfg.checkpoint_kimg),
        info, out_dir=out_dir, checkpoint_name=CHECKPOINT_NAME, log_name=LOG_NAME, wall_before=wall_before,
        batches=lambda: to_float(next(data), info.device, cfg.channels_last),
        snapshot=lambda: save_png(trainer.sample_grid(grid_z), out_dir / f"samples_{trainer.nimg // 1000:06d}.png"),
        progress=progress, postfix=lambda stats: {"G": f"{stats['loss_G']:.3f}", "D": f"{stats['loss_D']:.3f}"},
    )  # fmt: skip
    if info.is_main:
        save_png(trainer.sample_grid(grid_z), out_dir / f"samples_{trainer.nimg // 1000:06d}.png")
    if created_group:
        tdist.cleanup()
    return {
        "step": trainer.step,
        "kimg": trainer.nimg / 1000,
        "wall_s": wall_before + result.elapsed,
        "images_per_s": result.images_per_s,
        "last": result.last,
        "checkpoint": str(ckpt_path),
        "trainer": trainer,
    }


# -- export and speed --------------------------------------------------------------------------------
def export(
    out_dir: str | Path,
    dest_root: str | Path,
    names: dict[str, str],
    *,
    dtype: torch.dtype | None = torch.float16,
    recompute_w_avg: bool = True,
) -> list[Path]:
    """Write a run's G_ema and D as model folders ``dest_root/<name>`` via :func:`hub.save_pretrained`.

    ``names``: ``{"generator": "my-stylegan2-64", "discriminator": "my-stylegan2-64-d"}``
    (either key may be left out). ``dtype`` is the storage type (fp16 by default). With
    ``recompute_w_avg`` G_ema's ``w_avg`` is re-measured over 10k z of G_ema itself (the tracked value
    follows G's mapping, not the averaged one). Each folder's card records images seen, training time,
    hardware and the training configuration.
    """
    from ..hub import save_pretrained

    unknown = set(names) - {"generator", "discriminator"}
    if unknown:
        raise ValueError(f"names may only have the keys 'generator' and 'discriminator', got {sorted(unknown)}")
    ckpt = load_checkpoint(out_dir)
    cfg = TrainConfig.from_dict(json.loads(ckpt["config"]))
    G, D = build_networks(cfg)
    G.load_state_dict(ckpt["G_ema"])
    D.load_state_dict(ckpt["D"])
    G.eval()
    D.eval()
    if recompute_w_avg:
        G.w_avg.copy_(G.compute_w_avg(n=10_000, seed=cfg.seed))
    card = {
        "images_seen": f"{ckpt['nimg']:,} ({ckpt['nimg'] / 1000:.1f} kimg, {ckpt['step']} steps)",
        "training_time": f"{ckpt['wall_s'] / 3600:.2f} h ({ckpt['wall_s']:.0f} s)",
        "hardware": ckpt["hardware"],
        "training_recipe": f"idinvert_plugins.training.gan ({cfg.backend}); config: {ckpt['config']}",
    }
    written = []
    for kind, model in (("generator", G), ("discriminator", D)):
        if kind in names:
            written.append(save_pretrained(model, Path(dest_root) / names[kind], kind=kind,
                                           card={"name": names[kind], **card}, dtype=dtype))  # fmt: skip
    return written


def measure_speed(cfg: TrainConfig, iters: int = 10, warmup: int = 2) -> float:
    """Time ``iters`` training steps on random images (after ``warmup``); prints and returns images/s."""
    info = DistInfo(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    trainer = GANTrainer(cfg, info)
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format
    real = (torch.rand(cfg.batch, trainer.G.img_channels, cfg.resolution, cfg.resolution, device=info.device) * 2 - 1)
    real = real.contiguous(memory_format=mf)
    for _ in range(warmup):
        trainer.train_step(real)
    if info.device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        trainer.train_step(real)
    if info.device.type == "cuda":
        torch.cuda.synchronize()
    speed = iters * cfg.batch / (time.perf_counter() - t)
    print(f"{cfg.backend} {cfg.resolution}px batch {cfg.batch}: {speed:.1f} images/s ({speed * 3.6:.0f} kimg/h)")
    return speed


__all__ = ["PRESETS", "GANTrainer", "TrainConfig", "build_networks", "export", "load_checkpoint",
           "measure_speed", "parse_overrides", "train_gan"]  # fmt: skip
