"""Train pSp, e4e or ReStyle encoders for a frozen generator, on the shared training loop (:func:`.loop.run`).

``idinvert train-encoder --objective psp|e4e|restyle --generator GEN --out RUN`` (same conventions as the
IDInvert encoder trainer: resumable ``resume.pt``, ``log.jsonl``, previews, ``--kimg`` / ``--minutes``, torchrun).
The objectives follow the official coaches (facts: ``../shared/research/encoders-and-real-photos.md``):

* **pSp** (``training/coach.py`` of pixel2style2pixel): ``codes = E(x) + latent_avg``, ``y = G(codes)``;
  ``l2 * mse(y, x) + l_feat * perceptual(y, x) + l_id * (1 - cos(ID(y), ID(x)))
  + w_norm * mean_n |codes - latent_avg|``.
* **e4e** (encoder4editing): the pSp losses plus the offset regulariser
  ``delta_norm_lambda * sum_{i=1..stage} mean_n |w_i - w_0|`` and a latent discriminator
  (``LatentCodesDiscriminator``: an MLP on single w vectors) that tells E's codes from the mapping network's:
  E pays ``w_discriminator_lambda * softplus(-D(w_i))`` over the trained layers; D is trained with the logistic
  loss and an R1 penalty (``r1``, every ``d_reg_every`` steps). D's fakes and reals pass through e4e's W pools
  (:class:`LatentCodesPool`, ``w_pool_size`` 50, the official ``--use_w_pool``): one code per image (a random
  trained layer for the fakes), which with probability 0.5 is swapped for one of the ``w_pool_size`` codes kept
  from earlier steps; ``w_pool_size=0`` disables them, and D then sees every trained layer's code of this step.
  The pools are saved in ``resume.pt`` (a resumed single-process run continues them exactly). Progressive
  training: only w0 until ``progressive_start`` images, then one more layer's offset every
  ``progressive_step_every`` images.
* **ReStyle** (``coach_restyle_psp.py``): ``n_iters_per_batch`` iterations per batch, each reading
  ``cat([x, y_prev])`` (the average image ``G(latent_avg)`` first) and adding its output to the previous codes; the
  inputs of each iteration are detached and the losses of all iterations are accumulated into one step.

The loss networks are plugins (``register_loss_networks``, :mod:`idinvert_plugins.losses.networks`), named
``NAME:PATH_OR_HUB_ID`` (a local file, or a Hugging Face Hub id ``org/repo[@revision]`` holding the weights file):

* the perceptual network ``feature_net`` (the forms of :func:`~idinvert_plugins.losses.load_feature_network`:
  ``vgg16-conv43:PATH``, ``classifier:MODEL``, any registered perceptual network); ``"auto"`` (the default): the
  generator's domain's, on the bundled domain its classifier's features, offline;
* the identity network ``id_net`` for ``l_id > 0``: ``arcface-ir-se50:PATH_OR_HUB_ID`` (TreB1eN/InsightFace_Pytorch's
  ``model_ir_se50.pth``; a bare ``PATH`` means that too) or any registered identity network. Missing weights are
  an error naming the file and the option (``--set id_net=arcface-ir-se50:PATH``).

Adam replaces the official Ranger.
:func:`export_style_encoder` writes the encoder as a model folder with a card.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import distributed as tdist
from .distributed import DistInfo
from .loop import PresetTable, Schedule, describe_hardware, image_grid, rank_seed, run, save_png, to_float

STYLE_OBJECTIVES = ("psp", "e4e", "restyle")
CHECKPOINT_NAME = "resume.pt"
LOG_NAME = "log.jsonl"
CHECKPOINT_VERSION = 1
RUN_CONTROL_FIELDS = ("total_kimg", "checkpoint_kimg", "snapshot_kimg", "log_kimg", "workers")

#: named presets (overrides of the :class:`StyleEncoderTrainConfig` defaults): the tiny one here, those of a
#: domain's models in its ``style_encoder_presets`` (:data:`PRESETS` reads both)
_PRESETS: dict[str, dict[str, Any]] = {
    # tests and smoke runs (16-32 px generators)
    "tiny": dict(encoder=dict(stages=[1, 1, 1, 1], widths=[8, 8, 16, 16], stem=8, input_size=16), batch=4,
                 lr=1e-3, n_train=64, n_eval=4, checkpoint_kimg=1.0, snapshot_kimg=1.0, log_kimg=0.008,
                 total_kimg=1.0, progressive_start_kimg=0.008, progressive_step_kimg=0.004, n_iters_per_batch=2),
}

#: every preset by name: the table above and the registered domains' ``style_encoder_presets``
PRESETS = PresetTable("style_encoder", _PRESETS)


@dataclass
class StyleEncoderTrainConfig:
    """Every hyper-parameter of a pSp / e4e / ReStyle training run. Build one with :meth:`preset`."""

    generator: str = ""
    objective: str = "psp"  # psp | e4e | restyle
    encoder: dict[str, Any] = field(default_factory=dict)  # stages, widths, stem, input_size (see models.psp)
    restyle_type: str = "BackboneEncoder"  # ReStyle's encoder_type (ResNet / Progressive variants)
    batch: int = 8
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    l2: float = 1.0  # l2_lambda
    feature_net: str | None = "auto"  # perceptual network; "auto": the generator's domain's; None: none
    l_feat: float | None = None  # its weight (None: the network's recommended weight); the official lpips_lambda 0.8
    l_id: float = 0.0  # id_lambda (0.1 pSp / ReStyle faces, 0.5 e4e faces); needs id_net
    id_net: str | None = None  # identity network: NAME:PATH_OR_HUB_ID (arcface-ir-se50:model_ir_se50.pth), or a PATH
    w_norm: float = 0.0  # w_norm_lambda (pSp)
    delta_norm: float = 2e-4  # delta_norm_lambda (e4e)
    w_discriminator: float = 0.1  # w_discriminator_lambda (e4e); 0: no latent discriminator
    w_discriminator_lr: float = 2e-5
    w_pool_size: int = 50  # e4e's W pools of D's fakes and reals (official --use_w_pool --w_pool_size 50); 0: none
    r1: float = 10.0
    d_reg_every: int = 16
    progressive_start_kimg: float = 20.0  # e4e: w0 alone until here (official: 20000 steps of 8 images = 160 kimg)
    progressive_step_kimg: float = 4.0  # then one more layer every this many kimg (official: 2000 steps)
    n_iters_per_batch: int = 5  # ReStyle
    domain: str | None = None
    data_dir: str | None = None
    data_seed: int = 0
    n_train: int = 65000
    n_total: int = 70000
    n_eval: int = 16
    workers: int = 0
    seed: int = 0
    checkpoint_kimg: float = 20.0
    snapshot_kimg: float = 50.0
    log_kimg: float = 2.0
    total_kimg: float = 500.0

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> StyleEncoderTrainConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r} for the pSp-family objectives; known: {sorted(PRESETS)}")
        values = copy.deepcopy(PRESETS[name])
        for key, value in overrides.items():
            values[key] = {**values.get(key, {}), **value} if key == "encoder" and isinstance(value, dict) else value
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown} for --objective {values.get('objective', 'psp')}; known: "
                             f"{sorted(known)}")
        return cls(**values)

    def __post_init__(self) -> None:
        if self.objective not in STYLE_OBJECTIVES:
            raise ValueError(f"objective {self.objective!r} is not one of {STYLE_OBJECTIVES}")
        if not self.generator:
            raise ValueError("no generator given: name the frozen generator the encoder is for")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if self.l_id and not self.id_net:
            raise ValueError("l_id > 0 needs an identity network: pass --set id_net=arcface-ir-se50:PATH (ArcFace "
                             "IR-SE50 weights, model_ir_se50.pth of TreB1eN/InsightFace_Pytorch, a local file or "
                             "a Hub id org/repo) or id_net=NAME:PATH of another registered identity network "
                             "(`idinvert plugins` lists them), or --set l_id=0")
        if int(self.w_pool_size) < 0:
            raise ValueError(f"w_pool_size {self.w_pool_size} must be >= 0 (0: no W pool)")
        self.w_pool_size = int(self.w_pool_size)
        bad = sorted(set(self.encoder) & {"resolution", "num_layers", "w_dim"})
        if bad:
            raise ValueError(f"encoder settings {bad} come from the generator; leave them out")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StyleEncoderTrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        if values.get("objective") == "e4e" and "w_pool_size" not in values:
            values["w_pool_size"] = 0  # written before the W pools: trained without (resuming needs w_pool_size=0)
        return cls(**values)

    def data_domain(self) -> Any:
        from ..domains import domain_for_model, get_domain

        if self.domain is None:
            found = domain_for_model(self.generator)
            if found is not None:
                return found
        return get_domain(self.domain)


def default_name(cfg: StyleEncoderTrainConfig) -> str:
    """``<generator>-<objective>-encoder`` (e.g. ``mygan-64-e4e-encoder`` for a generator ``mygan-64``)."""
    base = Path(cfg.generator).name if Path(cfg.generator).expanduser().is_dir() else cfg.generator
    return f"{base.replace('/', '--').replace('@', '-')}-{cfg.objective}-encoder"


# -- networks ------------------------------------------------------------------------------------------------
class LatentCodesDiscriminator(nn.Module):
    """e4e's latent discriminator: ``(Linear(w, w) + LeakyReLU 0.2) x (n_mlp - 1)``, then ``Linear(w, 1)``
    (keys ``mlp.{0,2,4}``, ``mlp.6`` for ``n_mlp = 4``)."""

    def __init__(self, style_dim: int = 512, n_mlp: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(n_mlp - 1):
            layers += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(style_dim, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.mlp(w)


def build_style_encoder(cfg: StyleEncoderTrainConfig, G: nn.Module) -> nn.Module:
    """The encoder of ``cfg.objective`` shaped for G, its ``latent_avg`` G's ``w_avg`` on every layer (ReStyle:
    also its average image)."""
    from ..models.e4e import E4EEncoder
    from ..models.psp import PSPEncoder, resize_to
    from ..models.restyle import ReStyleEncoder

    args = dict(resolution=G.resolution, num_layers=G.num_layers, w_dim=G.w_dim, **cfg.encoder)
    if cfg.objective == "psp":
        E = PSPEncoder(**args)
    elif cfg.objective == "e4e":
        E = E4EEncoder(**args)
    else:
        E = ReStyleEncoder(encoder_type=cfg.restyle_type, n_iters=cfg.n_iters_per_batch, **args)
    with torch.no_grad():
        E.latent_avg.copy_(G.w_avg.detach().float().expand(G.num_layers, -1))
        if cfg.objective == "restyle":
            image = G.synthesis(E.latent_avg[None].to(G.w_avg), noise_mode="const").float()
            E.avg_image.copy_(resize_to(image, E.input_size)[0].to(E.avg_image))
    return E


class LatentCodesPool:
    """e4e's pool of past latent codes (``LatentCodesPool`` of encoder4editing, after CycleGAN's image pool): the
    latent discriminator sees codes of earlier steps too, not only those of the latest encoder.

    :meth:`query` returns one code per image of ``codes`` (``[N, w_dim]``, or ``[N, L, w_dim]``, of which one
    random layer per image is taken). While fewer than ``size`` codes are stored, each code is stored and
    returned; then, with probability 0.5, a random stored code is returned and the new one takes its place,
    otherwise the new code is returned. ``size`` 0: ``codes`` are returned unchanged. The draws come from the
    pool's own seeded generator, so a run is reproducible, and :meth:`state_dict` (the stored codes and the
    generator's state) lets a resumed run continue exactly."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = int(size)
        self.codes: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return len(self.codes)

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def query(self, codes: torch.Tensor) -> torch.Tensor:
        if self.size <= 0:
            return codes
        out = []
        for w in codes.detach():
            if w.ndim == 2:  # [L, w_dim]: a random layer of this image
                w = w[self._randint(len(w))]
            if len(self.codes) < self.size:
                self.codes.append(w.clone())
                out.append(w)
            elif float(torch.rand((), generator=self.generator)) > 0.5:
                i = self._randint(self.size)
                out.append(self.codes[i].to(w))
                self.codes[i] = w.clone()
            else:
                out.append(w)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        codes = torch.stack([c.detach().cpu() for c in self.codes]) if self.codes else torch.zeros(0)
        return {"size": self.size, "codes": codes, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["size"]) != self.size:
            raise ValueError(f"a W pool of size {state['size']} cannot be loaded into one of size {self.size}")
        self.codes = [c.clone() for c in state["codes"]] if len(state["codes"]) else []
        self.generator.set_state(state["rng"])


def load_id_network(spec: str, device: torch.device) -> nn.Module:
    """The identity network of ``id_net`` (``NAME:PATH_OR_HUB_ID`` of a registered identity network, or a bare
    path / Hub id of ArcFace IR-SE50 weights), frozen; missing weights are an error naming the file and the
    option (:func:`~idinvert_plugins.losses.networks.load_identity_network`)."""
    from ..losses.networks import load_identity_network

    return load_identity_network(spec, device=device)


# -- the trainer ----------------------------------------------------------------------------------------------
class StyleEncoderTrainer:
    """E (and, for e4e, the latent discriminator), the frozen G and loss networks, the optimisers and one step."""

    def __init__(self, cfg: StyleEncoderTrainConfig, info: DistInfo | None = None) -> None:
        from ..inverters.optimize import resolve_feature_weight
        from ..losses.perceptual import load_feature_network
        from .encoder import load_frozen_generator

        self.cfg, self.info = cfg, info or DistInfo()
        if cfg.batch % self.info.world_size:
            raise ValueError(f"batch {cfg.batch} is not divisible by the world size {self.info.world_size}")
        device = self.info.device
        self.G = load_frozen_generator(cfg.generator, device)
        torch.manual_seed(cfg.seed)
        self.E = build_style_encoder(cfg, self.G).to(device).train()
        tdist.broadcast_module(self.E, self.info)
        self.E_opt = torch.optim.Adam(self.E.parameters(), lr=cfg.lr, betas=cfg.betas)
        spec = cfg.feature_net
        if spec == "auto":
            spec = cfg.data_domain().feature_net
        self.F = load_feature_network(spec, device=device, option="--set feature_net") if spec else None
        self.l_feat = resolve_feature_weight(cfg.l_feat, self.F)
        if self.F is not None:
            self.F.requires_grad_(False)
        self.ID = load_id_network(cfg.id_net, device) if cfg.l_id else None
        self.D: nn.Module | None = None
        self.D_opt: torch.optim.Optimizer | None = None
        if cfg.objective == "e4e" and cfg.w_discriminator > 0:
            self.D = LatentCodesDiscriminator(self.G.w_dim, 4).to(device).train()
            tdist.broadcast_module(self.D, self.info)
            self.D_opt = torch.optim.Adam(self.D.parameters(), lr=cfg.w_discriminator_lr, betas=(0.9, 0.999))
        self.w_pools: dict[str, LatentCodesPool] | None = None
        if self.D is not None and cfg.w_pool_size > 0:  # e4e's real_w_pool and fake_w_pool, seeded per rank
            self.w_pools = {which: LatentCodesPool(cfg.w_pool_size, rank_seed(cfg.seed + 1 + i, self.info.rank, 0))
                            for i, which in enumerate(("fake", "real"))}
        self.step = 0
        self.nimg = 0
        self.update_stage()

    # -- pieces ----------------------------------------------------------------------------------------------
    def progressive_stage(self) -> int:
        """e4e's stage at the current image count: 0 (w0 only) until ``progressive_start_kimg``, then one more
        offset every ``progressive_step_kimg``; other objectives: every layer."""
        cfg, L = self.cfg, self.G.num_layers
        if cfg.objective != "e4e":
            return L
        start, every = round(cfg.progressive_start_kimg * 1000), max(1, round(cfg.progressive_step_kimg * 1000))
        if self.nimg < start:
            return 0
        return min(L - 1, 1 + (self.nimg - start) // every)

    def update_stage(self) -> None:
        if self.cfg.objective == "e4e":
            self.E.set_progressive_stage(self.progressive_stage())

    def identity(self, x: torch.Tensor) -> torch.Tensor:
        """Unit identity embeddings ``[N, D]`` of images by the identity network (ArcFace IR-SE50 reads pSp's
        face crop [35:223, 32:220] of 256 px, scaled, at 112 px: :class:`~.losses.identity.ArcFaceIdentity`)."""
        assert self.ID is not None
        return F.normalize(self.ID(x).flatten(1).float(), dim=1)

    def losses(self, x: torch.Tensor, y: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The reconstruction losses of one forward pass (``codes``: what produced ``y``)."""
        cfg = self.cfg
        l2 = (y - x).square().mean()
        loss = cfg.l2 * l2
        stats = {"l2": l2.item()}
        if self.F is not None and self.l_feat:
            with torch.no_grad():
                target = self.F(x).float()
            feat = (self.F(y).float() - target).square().mean()
            loss = loss + self.l_feat * feat
            stats["feat"] = feat.item()
        if self.ID is not None and cfg.l_id:
            with torch.no_grad():
                target = self.identity(x)
            id_loss = (1 - (self.identity(y) * target).sum(-1)).mean()
            loss = loss + cfg.l_id * id_loss
            stats["id"] = id_loss.item()
        if cfg.w_norm:
            w_norm = (codes - self.E.latent_avg).norm(2, dim=(1, 2)).mean()
            loss = loss + cfg.w_norm * w_norm
            stats["w_norm"] = w_norm.item()
        if cfg.objective == "e4e":
            stage = self.progressive_stage()
            if cfg.delta_norm and stage > 0:
                delta = sum((codes[:, i] - codes[:, 0]).norm(2, dim=1).mean() for i in range(1, stage + 1))
                loss = loss + cfg.delta_norm * delta
                stats["delta"] = float(delta.detach())
            if self.D is not None:
                adv = torch.stack([F.softplus(-self.D(codes[:, i])).mean() for i in range(stage + 1)]).mean()
                loss = loss + cfg.w_discriminator * adv
                stats["adv"] = adv.item()
        return loss, stats

    def _optimise(self, params: list[nn.Parameter], opt: torch.optim.Optimizer) -> None:
        tdist.all_reduce_grads(params, self.info)
        opt.step()

    def train_step(self, real: torch.Tensor) -> dict[str, float]:
        cfg, G, E = self.cfg, self.G, self.E
        self.update_stage()
        stage = self.progressive_stage()
        self.E_opt.zero_grad(set_to_none=True)
        if cfg.objective == "restyle":
            stats: dict[str, float] = {}
            y, codes = None, None
            for it in range(cfg.n_iters_per_batch):
                prev = None if codes is None else codes.detach()
                recon = None if y is None else y.detach()
                codes = E.step(real, recon, prev)
                y = G.synthesis(codes, noise_mode="const").float()
                loss, s = self.losses(real, y, codes)
                loss.backward()
                stats.update({f"{k}_{it}": v for k, v in s.items() if k == "l2"})
                stats["loss_E"] = stats.get("loss_E", 0.0) + loss.item()
            stats.update({k: v for k, v in s.items() if k != "l2"})
            stats["l2"] = s["l2"]
        else:
            codes = E(real)
            y = G.synthesis(codes, noise_mode="const").float()
            loss, stats = self.losses(real, y, codes)
            loss.backward()
            stats["loss_E"] = loss.item()
        self._optimise(list(E.parameters()), self.E_opt)
        if self.D is not None:
            stats.update(self.discriminator_step(codes.detach()))
        if cfg.objective == "e4e":
            stats["stage"] = float(stage)  # the layers this step trained (0: w0 only)
        with torch.no_grad():
            for b in E.buffers():  # BatchNorm statistics agree on every rank
                if b.is_floating_point() and self.info.enabled:
                    b.copy_(tdist.all_reduce_mean(b, self.info))
        self.step += 1
        self.nimg += cfg.batch
        return stats

    def discriminator_step(self, codes: torch.Tensor) -> dict[str, float]:
        """e4e's latent discriminator: E's codes of the trained layers against the mapping network's w, logistic
        loss, R1 on the real w every ``d_reg_every`` steps. With W pools (``w_pool_size`` > 0, as the official
        ``--use_w_pool``) both pass through their pool (:class:`LatentCodesPool`: one code per image, a random
        trained layer for the fakes, swapped half the time for a stored earlier one); without, the fakes are every
        trained layer's code of this step."""
        cfg, G, D = self.cfg, self.G, self.D
        assert D is not None and self.D_opt is not None
        stage = self.progressive_stage()
        trained = codes[:, : stage + 1].detach()
        with torch.no_grad():
            real = G.mapping(torch.randn(codes.shape[0], G.z_dim, device=codes.device))
            real = real[:, 0] if real.ndim == 3 else real
        if self.w_pools is not None:
            fake, real = self.w_pools["fake"].query(trained), self.w_pools["real"].query(real)
        else:
            fake = trained.reshape(-1, codes.shape[-1])
        self.D_opt.zero_grad(set_to_none=True)
        r1_due = cfg.r1 > 0 and self.step % cfg.d_reg_every == 0
        real_ = real.detach().requires_grad_(r1_due)
        real_pred, fake_pred = D(real_), D(fake)
        loss = F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()
        stats = {"loss_D": loss.item()}
        if r1_due:
            (grad,) = torch.autograd.grad(real_pred.sum(), real_, create_graph=True)
            r1 = grad.square().sum(1).mean()
            loss = loss + cfg.r1 / 2 * r1 * cfg.d_reg_every
            stats["r1"] = r1.item()
        loss.backward()
        self._optimise(list(D.parameters()), self.D_opt)
        return stats

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """G(E(x)) with E in eval mode (ReStyle: all ``n_iters_per_batch`` iterations)."""
        from ..inverters.psp_family import restyle_iterations

        was = self.E.training
        self.E.eval()
        try:
            out = []
            for x in images.split(16):
                x = x.to(self.info.device)
                if self.cfg.objective == "restyle":
                    out.append(restyle_iterations(self.E, self.G, x, self.cfg.n_iters_per_batch,
                                                  self.E.avg_image)[1][-1])
                else:
                    out.append(self.G.synthesis(self.E(x), noise_mode="const").float())
            return torch.cat(out)
        finally:
            self.E.train(was)

    def evaluate(self, images: torch.Tensor) -> tuple[float, torch.Tensor]:
        rec = self.reconstruct(images)
        return (rec - images.to(rec)).square().mean().item(), rec

    # -- checkpoints -------------------------------------------------------------------------------------------
    def state_dict(self, wall_s: float) -> dict[str, Any] | None:
        from .encoder import generator_digest

        if not self.info.is_main:
            return None
        state = {"version": CHECKPOINT_VERSION, "config": json.dumps(self.cfg.to_dict()),
                 "encoder_config": json.dumps(self.E.config), "architecture": self.E.architecture,
                 "generator_digest": generator_digest(self.G),
                 "E": {k: v.detach().cpu() for k, v in self.E.state_dict().items()}, "E_opt": self.E_opt.state_dict(),
                 "step": self.step, "nimg": self.nimg, "wall_s": float(wall_s),
                 "world_size": self.info.world_size, "hardware": describe_hardware(self.info),
                 "rng": torch.get_rng_state()}
        if self.D is not None and self.D_opt is not None:
            state["D"] = {k: v.detach().cpu() for k, v in self.D.state_dict().items()}
            state["D_opt"] = self.D_opt.state_dict()
        if self.w_pools is not None:  # rank 0's pools (another world size on resume starts fresh ones)
            state["w_pools"] = {k: pool.state_dict() for k, pool in self.w_pools.items()}
        return state

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        from .encoder import generator_digest

        if ckpt.get("generator_digest") != generator_digest(self.G):
            raise ValueError(f"the generator {self.cfg.generator!r} is not the one this run started with; use "
                             "another --out, or --restart")
        self.E.load_state_dict(ckpt["E"])
        self.E_opt.load_state_dict(ckpt["E_opt"])
        if self.D is not None and self.D_opt is not None:
            self.D.load_state_dict(ckpt["D"])
            self.D_opt.load_state_dict(ckpt["D_opt"])
        self.step, self.nimg = int(ckpt["step"]), int(ckpt["nimg"])
        if int(ckpt["world_size"]) == 1 and self.info.world_size == 1:
            torch.set_rng_state(ckpt["rng"])
            if self.w_pools is not None and "w_pools" in ckpt:
                for k, pool in self.w_pools.items():
                    pool.load_state_dict(ckpt["w_pools"][k])
        else:
            torch.manual_seed(rank_seed(self.cfg.seed, self.info.rank, self.step))
        self.update_stage()


# -- data and the run ----------------------------------------------------------------------------------------
def _sources(cfg: StyleEncoderTrainConfig, resolution: int) -> tuple[Any, np.ndarray, str]:
    """The training images and a fixed held-out batch (uint8 ``[n, R, R, 3]``) with what it is."""
    from .data import DomainImages, FolderImages

    if cfg.data_dir is None:
        dom = cfg.data_domain()
        test = list(range(dom.split_sizes(cfg.n_total)["train"], cfg.n_total))[: cfg.n_eval]
        images, _ = dom.images(cfg.data_seed, test, resolution)
        return (DomainImages(cfg.data_seed, resolution, cfg.n_train, cfg.n_total, domain=dom), np.asarray(images),
                f"{len(test)} held-out test-split images of {dom.name} (seed {cfg.data_seed})")
    from ..data.folders import ImageFolderDataset

    try:
        source = FolderImages(cfg.data_dir, resolution)
        try:
            held = ImageFolderDataset(Path(cfg.data_dir), split="test", resolution=resolution)
            what = f"held-out test-split images of {cfg.data_dir}"
        except (ValueError, FileNotFoundError):
            held = ImageFolderDataset(Path(cfg.data_dir), resolution=resolution)
            what = f"training images of {cfg.data_dir} (it has no test split)"
    except (FileNotFoundError, ValueError) as exc:
        raise ValueError(f"data_dir {cfg.data_dir!r} cannot be used: {exc}. Point --data at a folder of images") \
            from None
    n = min(cfg.n_eval, len(held))
    return source, np.stack([held.load(i) for i in range(n)]), f"the first {n} {what}"


def train_style_encoder(cfg: StyleEncoderTrainConfig, out_dir: str | Path, *, max_kimg: float | None = None,
                        max_minutes: float | None = None, max_steps: int | None = None, resume: bool = True,
                        progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """Train (or continue) a pSp / e4e / ReStyle encoder; the files and stopping rules of the IDInvert encoder
    trainer (:func:`.encoder.train_encoder`). Returns a summary (``step``, ``kimg``, ``wall_s``, ``images_per_s``,
    ``eval_mse``, ``checkpoint``, ``trainer``)."""
    from .data import StepBatches

    created_group = not torch.distributed.is_initialized()
    info = tdist.init_from_env()
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    resumed = resume and ckpt_path.is_file()
    trainer = StyleEncoderTrainer(cfg, info)
    source, eval_uint8, eval_what = _sources(cfg, trainer.G.resolution)
    eval_images = to_float(torch.from_numpy(eval_uint8), torch.device("cpu"), False)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    wall_before, commands = 0.0, []
    if resumed:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        saved = StyleEncoderTrainConfig.from_dict(json.loads(ckpt["config"])).to_dict()
        diff = [k for k, v in cfg.to_dict().items() if k not in RUN_CONTROL_FIELDS and saved.get(k) != v]
        if diff:
            raise ValueError(f"the checkpoint in {out_dir} was trained with other settings ({', '.join(diff)}); use "
                             "another --out, or --restart")
        trainer.load_state_dict(ckpt)
        wall_before, commands = float(ckpt["wall_s"]), list(ckpt.get("commands", []))
    else:
        torch.manual_seed(rank_seed(cfg.seed, info.rank, 0))
        if info.is_main:
            (out_dir / LOG_NAME).unlink(missing_ok=True)
    commands.append(command or "idinvert_plugins.training.style_encoder.train_style_encoder (Python API)")
    # the loader's own generator: its iterator draws a base seed, which from the global generator would shift
    # every later draw of a resumed run against an uninterrupted one
    loader = torch.utils.data.DataLoader(
        StepBatches(source, cfg.batch, info, seed=cfg.seed), batch_size=None,
        sampler=itertools.count(trainer.step), num_workers=cfg.workers, persistent_workers=cfg.workers > 0,
        generator=torch.Generator().manual_seed(rank_seed(cfg.seed, info.rank, trainer.step)))
    data = iter(loader)

    def snapshot() -> float:
        mse, rec = trainer.evaluate(eval_images)
        n = min(8, len(eval_images))
        save_png(image_grid(torch.cat([eval_images[:n], rec[:n].cpu()]), cols=n),
                 out_dir / f"preview_{trainer.nimg // 1000:06d}.png")
        return mse

    def log_fields(means: dict[str, float]) -> dict[str, Any]:
        return {**means, "eval_mse": trainer.evaluate(eval_images)[0]}

    result = run(trainer, Schedule(batch=cfg.batch, total_nimg=int(round((cfg.total_kimg if max_kimg is None
                                                                           else max_kimg) * 1000)),
                                   max_steps=max_steps, max_minutes=max_minutes, log_kimg=cfg.log_kimg,
                                   snapshot_kimg=cfg.snapshot_kimg, checkpoint_kimg=cfg.checkpoint_kimg),
                 info, out_dir=out_dir, checkpoint_name=CHECKPOINT_NAME, log_name=LOG_NAME, wall_before=wall_before,
                 batches=lambda: to_float(next(data), info.device, False), log_fields=log_fields, snapshot=snapshot,
                 extend_state=lambda state: state.update(commands=commands), progress=progress,
                 desc=f"encoder ({cfg.objective})",
                 postfix=lambda s: {k: f"{s[k]:.4f}" for k in ("loss_E", "l2", "loss_D") if k in s})
    eval_mse = snapshot() if info.is_main else None
    if created_group:
        tdist.cleanup()
    return {"step": trainer.step, "kimg": trainer.nimg / 1000, "wall_s": wall_before + result.elapsed,
            "images_per_s": result.images_per_s, "last": result.last, "eval_mse": eval_mse, "eval_images": eval_what,
            "checkpoint": str(ckpt_path), "trainer": trainer}


def export_style_encoder(out_dir: str | Path, dest_root: str | Path, name: str | None = None, *,
                         dtype: torch.dtype | None = torch.float16, license: str | None = None) -> Path:
    """Write a run's encoder as the model folder ``dest_root/<name>`` (fp16 by default) with a card: objective,
    generator, images seen, training time, hardware, held-out MSE of the stored weights, the command."""
    from ..cards import ModelCard, card_stub
    from ..hub import load_encoder, save_pretrained
    from ..plugins import get_plugins
    from .encoder import load_frozen_generator

    out_dir = Path(out_dir)
    ckpt = torch.load(out_dir / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    cfg = StyleEncoderTrainConfig.from_dict(json.loads(ckpt["config"]))
    name = name or default_name(cfg)
    E = get_plugins().get("encoder", ckpt["architecture"])(**json.loads(ckpt["encoder_config"]))
    E.load_state_dict(ckpt["E"])
    folder = Path(dest_root) / name
    save_pretrained(E.eval(), folder, kind="encoder", dtype=dtype)
    G = load_frozen_generator(cfg.generator, torch.device("cpu"))
    trainer = StyleEncoderTrainer.__new__(StyleEncoderTrainer)
    trainer.cfg, trainer.info, trainer.G, trainer.E = cfg, DistInfo(), G, load_encoder(folder)
    _, eval_uint8, eval_what = _sources(cfg, G.resolution)
    mse, _ = trainer.evaluate(to_float(torch.from_numpy(eval_uint8), torch.device("cpu"), False))
    notes = {"objective": cfg.objective, "generator": cfg.generator,
             "images_seen": f"{ckpt['nimg']:,} ({ckpt['nimg'] / 1000:.1f} kimg, {ckpt['step']} steps)",
             "training_time": f"{ckpt['wall_s'] / 3600:.2f} h", "hardware": ckpt["hardware"],
             "reconstruction": f"MSE {mse:.5f} on {eval_what}",
             "training_command": " ; ".join(ckpt.get("commands", [])) or "unknown",
             "training_recipe": f"idinvert_plugins.training.style_encoder; config: {ckpt['config']}"}
    stub = card_stub(name, "encoder", E.architecture, E.config, notes=notes, license=license)
    data = {**stub.data, "local": name, "generator": cfg.generator, "objective": cfg.objective,
            "images_seen": int(ckpt["nimg"]), "eval_mse": round(mse, 6)}
    (folder / "README.md").write_text(ModelCard(data=data, body=stub.body).render(), encoding="utf-8")
    return folder


def measure_speed(cfg: StyleEncoderTrainConfig, iters: int = 3, warmup: int = 1) -> float:
    """Images per second of ``iters`` training steps on random images (after ``warmup``)."""
    import time

    trainer = StyleEncoderTrainer(cfg, DistInfo())
    G = trainer.G
    real = torch.rand(cfg.batch, 3, G.resolution, G.resolution) * 2 - 1
    for _ in range(warmup):
        trainer.train_step(real)
    t = time.perf_counter()
    for _ in range(iters):
        trainer.train_step(real)
    return iters * cfg.batch / (time.perf_counter() - t)




def cmd_train_style_encoder(args: Any) -> int:
    """``idinvert train-encoder --objective psp|e4e|restyle``: the parsed command line of ``train-encoder`` (its
    ``--generator``, ``--preset``, ``--data``, ``--set``, ``--kimg``, ``--minutes``, ``--restart``, ``--export``,
    ``--name``, ``--license``)."""
    import os

    from .encoder import train_encoder_command
    from .loop import parse_overrides

    overrides = parse_overrides(args.set)
    if args.data:
        overrides["data_dir"] = args.data
    preset = args.preset or PRESETS.default()
    cfg = StyleEncoderTrainConfig.preset(preset, generator=args.generator, objective=args.objective, **overrides)
    command = train_encoder_command(args, preset)
    summary = train_style_encoder(cfg, args.out, max_kimg=args.kimg, max_minutes=args.minutes,
                                  resume=not args.restart, command=command)
    print(f"stopped at {summary['kimg']:.3f} kimg after {summary['wall_s'] / 60:.1f} min of training "
          f"({summary['images_per_s']:.1f} img/s this run); checkpoint {summary['checkpoint']}")
    if summary["eval_mse"] is not None:
        print(f"reconstruction MSE {summary['eval_mse']:.5f} on {summary['eval_images']}")
    if args.export and int(os.environ.get("RANK", "0")) == 0:
        folder = export_style_encoder(args.out, args.export, args.name or default_name(cfg), license=args.license)
        print(f"exported {folder}; invert with it: idinvert invert {cfg.generator} IMAGE --encoder {folder} "
              f"--method {cfg.objective} -o out/")
    return 0


__all__ = ["LatentCodesDiscriminator", "LatentCodesPool", "PRESETS", "STYLE_OBJECTIVES", "StyleEncoderTrainConfig",
           "StyleEncoderTrainer", "build_style_encoder", "cmd_train_style_encoder", "default_name",
           "export_style_encoder", "load_id_network", "measure_speed", "train_style_encoder"]
