"""Train an encoder E for a frozen generator G: IDInvert's domain-guided encoder, or the conventional baseline.

**Domain-guided** (In-Domain GAN Inversion, Zhu et al. 2020, Sec. III-A): E learns from *real* images x (the
domain's train split, or an image folder) to reconstruct them through G, while a discriminator D keeps
the reconstructions on G's image manifold::

    L_E = l_pix * mean((x - G(E(x)))^2) + l_feat * mean((F(x) - F(G(E(x))))^2) + l_adv * mean(softplus(-D(G(E(x)))))
    L_D = mean(softplus(D(G(E(x))))) + mean(softplus(-D(x))) + r1_gamma / 2 * mean(|grad_x D(x)|^2)

The paper writes the adversarial term as ``-l_adv * E[D(G(E(x)))]``; the official code (TF ``loss_encoder.py``
and genforce's ``EncoderLoss``) uses the non-saturating form ``softplus(-D(.))`` above, and so do we. F is a
perceptual feature network (:mod:`idinvert_plugins.losses.perceptual`; VGG16 conv4_3 with the paper's 5e-5 when
given one, by default the domain's classifier with its own recommended weight), D starts from G's own
discriminator (``<generator>-d``) and trains alongside. G runs frozen with its stored noise (``noise_mode="const"``),
as the official code runs it with ``randomize_noise=False``. Optimiser: Adam (0.9, 0.99) with lr 1e-4 for both
networks and an exponential learning-rate decay (0.8 per quarter of the run in the official recipe).

**Noise** (the paper's Sec. VI-C, objective ``noise``): the domain-guided objective for
:class:`~idinvert_plugins.models.noise_encoder.NoiseEncoder`, which also predicts the noise maps of the generator's
first ``noise_blocks`` synthesis blocks (B-1 ... B-k); G renders ``G(E_w(x), noise=E_n(x))``. Its noise heads
train at ``noise_lr_mul`` times the learning rate (they start at zero on top of G's stored noise, while the rest
of E usually starts trained: ``init_encoder`` takes a domain-guided encoder, whose body and W+ head are copied).
``noise_blocks=0`` trains the plain encoder through the same code (the paper's k = 0 row).

**Conventional** (the paper's baseline [9]): the same encoder and budget, trained on G's own samples: z -> W
(broadcast to W+ for StyleGAN2; IDInvert's StyleGAN v1 models map z straight to W+), x = G.synthesis(w), loss
``mean((w - E(x))^2)``. No D, no feature network.

The encoder is :class:`~idinvert_plugins.models.idinvert_encoder.IDInvertEncoder` sized to G (num_layers, w_dim,
resolution). It outputs W+ codes directly: its output BatchNorm's shift starts at G's mean W+ code (``w_avg`` per
layer), which is the same function family and the same Adam dynamics as an encoder that predicts offsets and
gets ``+ w_avg`` added (what :func:`idinvert_plugins.inverters.base.encode` does when ``add_w_avg`` is set), but
the exported model needs no flag and does not move if G's ``w_avg`` is re-estimated later. The BatchNorm's scale,
frozen at 1 in the official encoder, starts at the per-dimension spread of G's codes and trains: frozen at 1 it
forces every output dimension to unit variance over a batch, whatever the spread of G's W space (which depends
on the trained mapping network), so a randomly initialised encoder starts off emitting codes G never produced.
``init_encoder`` warm-starts E from an existing encoder instead (``--set init_encoder=NAME``): after its
generator was trained on, or to fine-tune a published encoder on your own images; the card names it.

The run machinery is :func:`.loop.run`, shared with the GAN trainer: resumable ``resume.pt`` (safe ``weights_only``
loading; config checked on resume, and G's weights too), ``log.jsonl`` (means since the last record, plus the
reconstruction MSE of a fixed held-out batch), ``preview_{kimg:06d}.png`` (held-out images over their
reconstructions), tqdm progress, ``--kimg`` / ``--minutes`` budgets, bf16 autocast, channels_last, and
torchrun/gloo DDP (``batch`` is global, gradients averaged explicitly, BatchNorm running statistics averaged after
every step, only rank 0 writes).
:func:`export_encoder` turns a run into a model folder with a card.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
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
    save_png,
    to_float,
)

CHECKPOINT_NAME = "resume.pt"
LOG_NAME = "log.jsonl"
CHECKPOINT_VERSION = 1
OBJECTIVES = ("domain-guided", "conventional", "noise")

# Fields that only steer a run (how long, how often to write); they may change between resumptions.
RUN_CONTROL_FIELDS = ("total_kimg", "checkpoint_kimg", "snapshot_kimg", "log_kimg", "workers")

#: Named presets: overrides of the :class:`EncoderTrainConfig` defaults (one home per hyperparameter): the tiny
#: one here, those of a domain's models in its ``encoder_presets`` (:data:`PRESETS` reads both). The generator
#: and the objective are not part of a preset; they are given with it.
_PRESETS: dict[str, dict[str, Any]] = {
    # Tiny runs for tests and smoke runs (16-32 px generators).
    "tiny": dict(
        encoder=dict(channel_base=8, channel_max=16),
        batch=4,
        lr=1e-3,
        d_lr=1e-3,
        lr_decay=1.0,
        bf16=False,
        channels_last=False,
        n_train=256,
        n_eval=8,
        checkpoint_kimg=1.0,
        snapshot_kimg=1.0,
        log_kimg=0.008,
        total_kimg=1.0,
    ),
}

#: every preset by name: the table above and the registered domains' ``encoder_presets``
PRESETS = PresetTable("encoder", _PRESETS)


@dataclass
class EncoderTrainConfig:
    """Every hyperparameter of an encoder training run. Build one with :meth:`preset`."""

    generator: str = ""  # the frozen generator: a named model, Hub id or model folder
    # "domain-guided" (IDInvert) | "conventional" (regress w from G's samples) | "noise" (Sec. VI-C: + noise maps)
    objective: str = "domain-guided"
    discriminator: str | None = None  # D's initial weights (domain-guided); None = "<generator>-d"
    # F (domain-guided; see load_feature_network); "auto": the feature_net of the generator's domain (by its naming
    # rule), else of ``domain`` / the default domain, resolved when the config is made
    feature_net: str | None = "auto"
    encoder: dict[str, Any] = field(default_factory=dict)  # IDInvertEncoder kwargs besides G's shape
    init_from_codes: bool = True  # output BatchNorm starts at G's code mean (shift) and spread (scale)
    init_encoder: str | None = None  # warm start: E starts as this encoder (named model, Hub id or folder)
    noise_blocks: int = 0  # objective "noise": predict the noise maps of the generator's first k synthesis blocks
    noise_lr_mul: float = 10.0  # objective "noise": learning-rate multiplier of the noise heads (they start at zero)
    head_bn_scale: bool = True  # train the output BatchNorm's scale (frozen in the official encoder)
    batch: int = 32  # global batch: all ranks together
    lr: float = 1e-4  # Adam, E
    d_lr: float = 1e-4  # Adam, D
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    lr_decay: float = 0.8  # both learning rates are multiplied by this ...
    lr_decay_kimg: float | None = None  # ... every this many thousand images (continuously; None = no decay)
    l_pix: float = 1.0
    l_feat: float | None = None  # None = the feature network's recommended weight (VGG16: 5e-5)
    l_adv: float = 0.1  # paper: 0.1 (the official scripts ran 0.08)
    r1_gamma: float = 10.0
    r1_interval: int = 1  # R1 every this many steps, scaled up to match (1 = every step, as the paper)
    bf16: bool = True  # bf16 autocast for the networks' forward passes
    channels_last: bool = True
    domain: str | None = None  # the registered domain whose dataset trains it (None: the default domain) ...
    data_seed: int = 0  # ... its dataset seed
    n_train: int = 65000  # train on the first n_train train-split images of the domain's dataset ...
    n_total: int = 70000  # ... of this many images (the train/test split is defined over these)
    data_dir: str | None = None  # or train on this folder of images instead
    n_eval: int = 64  # held-out images for the logged reconstruction MSE and the preview
    workers: int = 0  # DataLoader worker processes rendering / reading images
    seed: int = 0
    checkpoint_kimg: float = 20.0
    snapshot_kimg: float = 50.0
    log_kimg: float = 4.0
    total_kimg: float = 1000.0

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> EncoderTrainConfig:
        """The named preset (see :data:`PRESETS`) with ``overrides``; a dict-valued ``encoder`` override
        updates the preset's dict instead of replacing it."""
        if name not in PRESETS:
            raise ValueError(f"unknown encoder preset {name!r}; known: {sorted(PRESETS)}")
        values = copy.deepcopy(PRESETS[name])
        for key, value in overrides.items():
            if key == "encoder" and isinstance(value, dict):
                values[key] = {**values.get(key, {}), **value}
            else:
                values[key] = value
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown encoder training setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}: use 'domain-guided' (IDInvert's encoder, "
                             "trained on real images), 'conventional' (regresses w from the generator's samples) "
                             "or 'noise' (the domain-guided encoder that also predicts noise maps, noise_blocks=K)")
        if not self.generator:
            raise ValueError("no generator given: name the frozen generator the encoder is for "
                             "(e.g. generator='my-stylegan2-64' or a model folder)")
        if self.feature_net == "auto":
            self.feature_net = self.data_domain(by_generator=True).feature_net
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if isinstance(self.noise_blocks, bool) or not isinstance(self.noise_blocks, int) or self.noise_blocks < 0:
            raise ValueError(f"noise_blocks must be an integer >= 0, got {self.noise_blocks!r}")
        if self.noise_blocks and self.objective != "noise":
            raise ValueError(f"noise_blocks={self.noise_blocks} is a setting of objective 'noise' (the encoder that "
                             f"predicts noise maps); this run's objective is {self.objective!r}")
        if self.noise_lr_mul <= 0:
            raise ValueError(f"noise_lr_mul must be positive, got {self.noise_lr_mul}")
        if self.r1_interval < 1:
            raise ValueError(f"r1_interval must be >= 1, got {self.r1_interval}")
        if self.batch < 1 or self.n_eval < 1:
            raise ValueError(f"batch and n_eval must be >= 1, got {self.batch} and {self.n_eval}")
        bad = sorted(set(self.encoder) & {"resolution", "num_layers", "w_dim", "img_channels"})
        if bad:
            raise ValueError(f"encoder settings {bad} come from the generator; leave them out")

    def data_domain(self, by_generator: bool = False) -> Any:
        """The registered domain of the run: ``domain``, else (``by_generator``) the one whose naming rule claims
        the generator, else the default domain."""
        from ..domains import domain_for_model, get_domain

        if self.domain is None and by_generator:
            found = domain_for_model(self.generator)
            if found is not None:
                return found
        return get_domain(self.domain)

    @property
    def discriminator_name(self) -> str:
        return self.discriminator or f"{self.generator}-d"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EncoderTrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def train_encoder_command(args: Any, preset: str) -> str:
    """The ``idinvert train-encoder`` command line as given (rebuilt from the parsed flags; ``torchrun ...`` in
    front under several processes): what the model card records."""
    import os
    import shlex

    parts = ["idinvert", "train-encoder", "--generator", args.generator, "--objective", args.objective,
             "--out", args.out, "--preset", preset]
    for flag, value in (("--data", args.data), ("--kimg", args.kimg), ("--minutes", args.minutes)):
        if value is not None:
            parts += [flag, str(value)]
    for item in args.set or []:
        parts += ["--set", item]
    parts += ["--restart"] if args.restart else []
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (f"torchrun --nproc_per_node {world} ... " if world > 1 else "") + shlex.join(parts)


def default_encoder_name(cfg: EncoderTrainConfig) -> str:
    """``<generator>-encoder`` (domain-guided) or ``<generator>-encoder-conventional`` (see
    :data:`idinvert_plugins.hub.ENCODER_SUFFIXES`, by which the CLI, the app and the evaluation find it);
    ``<generator>-encoder-noise-k<K>`` for the noise objective."""
    from ..hub import ENCODER_SUFFIXES

    base = Path(cfg.generator).name if Path(cfg.generator).expanduser().is_dir() else cfg.generator
    base = base.replace("/", "--").replace("@", "-")
    if cfg.objective == "noise":
        return f"{base}-encoder-noise-k{cfg.noise_blocks}"
    return base + ENCODER_SUFFIXES[cfg.objective]


# -- networks and data ---------------------------------------------------------------------------------
def load_frozen_generator(name: str, device: torch.device) -> nn.Module:
    """The generator ``name``, frozen (eval, no parameter gradients)."""
    from ..hub import ModelLoadError, load_generator

    try:
        G = load_generator(name, device=device)
    except ModelLoadError as exc:
        raise ModelLoadError(f"--generator {name!r} cannot be used: {exc}") from None
    return G.eval().requires_grad_(False)


@torch.no_grad()
def code_stats(G: nn.Module, n: int = 10_000, seed: int = 0, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation ``[num_layers, w_dim]`` of G's W+ codes over ``n`` random z (for models with
    a W space the mean is ``w_avg`` on every layer; IDInvert's StyleGAN v1 models have per-layer statistics)."""
    z = G.sample_z(n, seed=seed)
    total = torch.zeros(G.num_layers, G.w_dim, dtype=torch.float64, device=z.device)
    squares = torch.zeros_like(total)
    for i in range(0, n, batch):
        w = G.to_wplus(G.mapping(z[i : i + batch])).double()
        total += w.sum(0)
        squares += w.square().sum(0)
    mean = total / n
    var = (squares / n - mean.square()).clamp_min(0) * n / max(n - 1, 1)
    return mean.float(), var.sqrt().float()


def build_encoder(cfg: EncoderTrainConfig, G: nn.Module, source: nn.Module | None = None) -> nn.Module:
    """A fresh :class:`IDInvertEncoder` shaped for G (initialised from the current torch RNG; with
    ``cfg.init_from_codes`` its output BatchNorm starts at the mean and spread of G's codes); for the noise
    objective a :class:`~idinvert_plugins.models.noise_encoder.NoiseEncoder` predicting the noise of G's first
    ``cfg.noise_blocks`` synthesis blocks.

    With ``cfg.init_encoder`` it starts as that encoder instead (a warm start: the previous release's encoder
    after its generator was trained on, or a published encoder to fine-tune on your own images); it must
    have the architecture ``cfg.encoder`` describes for G (pass it as ``source`` if already loaded). A noise
    encoder takes the body and W+ head of a plain one (its noise heads stay fresh) or all of a noise encoder."""
    from ..models.idinvert_encoder import IDInvertEncoder
    from ..models.noise_encoder import NoiseEncoder

    if cfg.objective == "noise":
        E: nn.Module = NoiseEncoder.for_generator(G, cfg.noise_blocks, **cfg.encoder)
    else:
        E = IDInvertEncoder(resolution=G.resolution, num_layers=G.num_layers, w_dim=G.w_dim,
                            img_channels=G.img_channels, **cfg.encoder)  # fmt: skip
    if cfg.init_encoder:
        _copy_initial_encoder(E, source if source is not None else load_initial_encoder(cfg.init_encoder),
                              cfg.init_encoder)
    elif cfg.init_from_codes:
        if E.head.bn is None:
            raise ValueError("init_from_codes needs the encoder's output BatchNorm (use_bn=True); set "
                             "init_from_codes=False for use_bn=False")
        mean, std = code_stats(G, seed=cfg.seed)
        with torch.no_grad():
            E.head.bn.bias.copy_(mean.flatten())
            E.head.bn.weight.copy_(std.flatten().clamp_min(1e-3))
    if cfg.head_bn_scale and E.head.bn is not None:
        E.head.bn.weight.requires_grad_(True)
    return E


def load_initial_encoder(name: str) -> nn.Module:
    """The encoder ``name`` of a warm start (``init_encoder``), with a message naming the setting if it fails."""
    from ..hub import ModelLoadError, ModelNotFoundError, load_encoder

    try:
        return load_encoder(name)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(f"init_encoder {name!r} cannot be used: {exc}") from None
    except ModelLoadError as exc:
        raise ModelLoadError(f"init_encoder {name!r} cannot be used: {exc}") from None


def describe_initial_encoder(source: nn.Module) -> str:
    """Where a warm start's weights came from, for the model card: name, origin, Hub commit, the images its own
    card says it saw, and a hash of its weights file (a name can later point at other weights)."""
    from ..cards import read_card
    from ..hub import WEIGHTS_NAME

    resolved = getattr(source, "resolved", None)
    if resolved is None:
        return "an encoder given as a module"
    parts = [f"`{resolved.name}`", resolved.origin]
    if resolved.repo_id:
        parts.append(f"{resolved.repo_id}@{resolved.commit or resolved.revision or 'main'}")
    card = resolved.card
    if card is None and (resolved.folder / "README.md").is_file():
        card = read_card(resolved.folder / "README.md")
    if card is not None and card.data.get("images_seen"):
        parts.append(f"{int(card.data['images_seen']):,} images seen by its card")
    digest = hashlib.sha256((resolved.folder / WEIGHTS_NAME).read_bytes()).hexdigest()
    parts.append(f"weights sha256 {digest[:16]}")
    return ", ".join(parts)


#: the configuration of a noise encoder beyond the plain encoder's: a plain encoder warm-starts one all the same
NOISE_CONFIG_KEYS = ("noise_layers", "noise_hidden")


def _copy_initial_encoder(E: nn.Module, source: nn.Module, name: str) -> None:
    """Copy the weights of ``source`` (the warm start ``name``) into ``E``, or say what differs. A noise encoder
    ``E`` starting from a plain encoder takes its body and W+ head; its noise heads keep their fresh weights."""
    theirs, ours = getattr(source, "config", {}), E.config
    partial = "noise_layers" in ours and "noise_layers" not in theirs
    skip = NOISE_CONFIG_KEYS if partial else ()
    differ = sorted(k for k in set(theirs) | set(ours) if k not in skip and theirs.get(k) != ours.get(k))
    if differ:
        detail = ", ".join(f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in differ)
        raise ValueError(f"init_encoder {name!r} has another architecture than this run's encoder ({detail}); "
                         "set the run's `encoder` settings to match it, or leave init_encoder unset")
    state = {k: v.float() for k, v in source.state_dict().items()}
    with torch.no_grad():
        if partial:
            state.update({k: v for k, v in E.state_dict().items() if k.startswith("noise_heads.")})
        E.load_state_dict(state)


def load_discriminator(cfg: EncoderTrainConfig, G: nn.Module, device: torch.device) -> nn.Module:
    from ..hub import ModelLoadError, ModelNotFoundError, load_model

    name = cfg.discriminator_name
    try:
        D = load_model(name, kind="discriminator", device=device)
    except (ModelNotFoundError, ModelLoadError) as exc:
        raise ModelLoadError(f"domain-guided training starts D from the generator's discriminator, and {name!r} "
                             f"cannot be loaded ({exc}). Give one with discriminator=NAME_OR_FOLDER "
                             "(--set discriminator=...), or train the conventional encoder instead.") from None
    if getattr(D, "resolution", G.resolution) != G.resolution:
        raise ValueError(f"discriminator {name!r} is for {D.resolution} px images, the generator makes "
                         f"{G.resolution} px")
    return D


def real_images(cfg: EncoderTrainConfig, resolution: int) -> DomainImages | FolderImages:
    """The training set: ``cfg.data_dir`` (its train split if it is a rendered dataset folder) or the domain's
    dataset."""
    if cfg.data_dir is None:
        return DomainImages(cfg.data_seed, resolution, cfg.n_train, cfg.n_total, domain=cfg.data_domain())
    try:
        return FolderImages(cfg.data_dir, resolution)
    except (FileNotFoundError, ValueError) as exc:
        raise _data_error(cfg, exc) from None


def _data_error(cfg: EncoderTrainConfig, exc: Exception) -> ValueError:
    return ValueError(f"data_dir {cfg.data_dir!r} cannot be used: {exc}. Point --data at a folder of images "
                      "(.png, .jpg, ...), or leave it out to train on the domain's dataset.")


def heldout_images(cfg: EncoderTrainConfig, resolution: int) -> tuple[np.ndarray, str]:
    """A fixed evaluation batch, uint8 ``[n_eval, R, R, 3]``, and what it is.

    The first ``n_eval`` test-split images of the domain's dataset; for ``data_dir`` its test split when it has
    one, else its first ``n_eval`` images (then not held out, and said so).
    """
    if cfg.data_dir is None:
        dom = cfg.data_domain()
        test = list(range(dom.split_sizes(cfg.n_total)["train"], cfg.n_total))[: cfg.n_eval]
        images, _ = dom.images(cfg.data_seed, test, resolution)
        return np.asarray(images), f"{len(test)} held-out test-split {dom.title or dom.name} (seed {cfg.data_seed})"
    from ..data.folders import ImageFolderDataset

    root = Path(cfg.data_dir)
    try:
        dataset = ImageFolderDataset(root, split="test", resolution=resolution)
        what = f"held-out test-split images of {root}"
    except (ValueError, FileNotFoundError):
        try:
            dataset = ImageFolderDataset(root, resolution=resolution)
        except (ValueError, FileNotFoundError) as exc:
            raise _data_error(cfg, exc) from None
        what = f"training images of {root} (it has no test split)"
    n = min(cfg.n_eval, len(dataset))
    return np.stack([dataset.load(i) for i in range(n)]), f"the first {n} {what}"


def generator_digest(G: nn.Module) -> str:
    """sha256 of G's tensors: a resumed run must continue on the very same generator."""
    h = hashlib.sha256()
    for k, v in sorted(G.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def reconstruct(E: nn.Module, G: nn.Module, images: torch.Tensor, chunk: int = 32,
                memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """``G(E(x))`` in float32 with E in eval mode (running statistics), rendered with E's noise maps when it
    predicts them (the rest of G's noise: its stored maps)."""
    from ..models.noise_encoder import encode_with_noise

    was_training = E.training
    E.eval()
    device = G.w_avg.device
    try:
        out = []
        for x in images.split(chunk):
            codes, noise = encode_with_noise(E, x.to(device).contiguous(memory_format=memory_format))
            kwargs = {"noise": {k: v.float() for k, v in noise.items()}} if noise else {}
            out.append(G.synthesis(codes.float(), noise_mode="const", **kwargs).float())
        return torch.cat(out)
    finally:
        E.train(was_training)


def encoder_class(architecture: str | None) -> type[nn.Module]:
    """The encoder class a checkpoint's ``encoder_architecture`` names (checkpoints before it: IDInvertEncoder)."""
    from ..models.idinvert_encoder import IDInvertEncoder
    from ..models.noise_encoder import NoiseEncoder

    classes = {cls.architecture: cls for cls in (IDInvertEncoder, NoiseEncoder)}
    if architecture is not None and architecture not in classes:
        raise ValueError(f"this checkpoint's encoder is a {architecture!r}, not one this trainer makes "
                         f"({', '.join(classes)})")
    return classes[architecture or IDInvertEncoder.architecture]


# -- the trainer ---------------------------------------------------------------------------------------
class EncoderTrainer:
    """E (and D, F for the domain-guided and noise objectives), the frozen G, the optimisers and one training step.
    :func:`train_encoder` drives it. With ``initialise=False`` E skips its initialisation (``init_encoder`` /
    ``init_from_codes``): for a run about to :meth:`load_state_dict` a checkpoint."""

    def __init__(self, cfg: EncoderTrainConfig, info: DistInfo | None = None, *, initialise: bool = True) -> None:
        from ..inverters.optimize import resolve_feature_weight
        from ..losses.perceptual import load_feature_network

        self.cfg, self.info = cfg, info or DistInfo()
        if cfg.batch % self.info.world_size:
            raise ValueError(f"batch {cfg.batch} is not divisible by the world size {self.info.world_size}")
        self.local_batch = cfg.batch // self.info.world_size
        device = self.info.device
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format

        self.G = load_frozen_generator(cfg.generator, device).to(memory_format=self.memory_format)
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        source = load_initial_encoder(cfg.init_encoder) if cfg.init_encoder and initialise else None
        self.init_source = describe_initial_encoder(source) if source is not None else None
        build_cfg = cfg if initialise else dataclasses.replace(cfg, init_encoder=None, init_from_codes=False)
        self.E = build_encoder(build_cfg, self.G, source).to(device, memory_format=self.memory_format).train()
        del source
        tdist.broadcast_module(self.E, self.info)
        self.E_params = [p for p in self.E.parameters() if p.requires_grad]
        heads = {id(p) for name, p in self.E.named_parameters() if name.startswith("noise_heads.")}
        groups = [{"params": [p for p in self.E_params if id(p) not in heads], "lr_mul": 1.0}]
        if heads:  # the noise heads start at zero: their own learning rate (noise_lr_mul)
            groups.append({"params": [p for p in self.E_params if id(p) in heads], "lr_mul": cfg.noise_lr_mul})
        self.E_opt = torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)

        self.D: nn.Module | None = None
        self.D_opt: torch.optim.Optimizer | None = None
        self.F: nn.Module | None = None
        self.l_feat = 0.0
        if cfg.objective in ("domain-guided", "noise"):
            D = load_discriminator(cfg, self.G, device)
            self.D = D.to(device, memory_format=self.memory_format).train().requires_grad_(False)
            tdist.broadcast_module(self.D, self.info)
            self.D_opt = torch.optim.Adam(self.D.parameters(), lr=cfg.d_lr, betas=cfg.betas, eps=cfg.eps)
            self.F = load_feature_network(cfg.feature_net, device=device)
            self.l_feat = resolve_feature_weight(cfg.l_feat, self.F)
            if self.l_feat and self.F is None:
                raise ValueError(f"l_feat={self.l_feat} needs a feature network; set feature_net or l_feat=0")
            if self.F is not None:
                self.F.requires_grad_(False)
        self.step = 0  # optimisation steps done
        self.nimg = 0  # images shown to E, all ranks together

    # -- pieces --------------------------------------------------------------------------------------
    def autocast(self) -> torch.autocast:
        return torch.autocast(self.info.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    def lr_factor(self) -> float:
        if self.cfg.lr_decay_kimg is None or self.cfg.lr_decay == 1.0:
            return 1.0
        return self.cfg.lr_decay ** (self.nimg / (self.cfg.lr_decay_kimg * 1000))

    def _optimise(self, params: list[nn.Parameter], opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        tdist.all_reduce_grads(params, self.info)
        opt.step()

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """E's W+ codes ``[N, num_layers, w_dim]`` (float32) of images in [-1, 1]."""
        with self.autocast():
            return self.E(images.contiguous(memory_format=self.memory_format)).float()

    def encode_with_noise(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """E's W+ codes (float32) and, for a noise encoder, its noise maps ``{layer: [N, 1, r, r]}`` (else ``{}``)."""
        from ..models.noise_encoder import encode_with_noise

        with self.autocast():
            codes, noise = encode_with_noise(self.E, images.contiguous(memory_format=self.memory_format))
        return codes.float(), {k: v.float() for k, v in noise.items()}

    def synthesize(self, codes: torch.Tensor, noise: dict[str, torch.Tensor]) -> torch.Tensor:
        """G's render of codes with the given noise maps (the layers not given: G's stored noise)."""
        return self.G.synthesis(codes, noise_mode="const", **({"noise": noise} if noise else {}))

    def domain_guided_step(self, real: torch.Tensor) -> dict[str, float]:
        """E's step on this rank's real batch, then D's (on the same reconstructions). The noise objective
        renders with E's noise maps as well."""
        cfg, D = self.cfg, self.D
        assert D is not None and self.D_opt is not None
        codes, noise = self.encode_with_noise(real)
        with self.autocast():
            rec = self.synthesize(codes, noise)
        pix = (rec.float() - real).square().mean()
        loss = cfg.l_pix * pix
        stats = {"pix": pix.item()}
        if self.F is not None and self.l_feat:
            with torch.no_grad(), self.autocast():
                target = self.F(real).float()
            with self.autocast():
                feat = (self.F(rec).float() - target).square().mean()
            loss = loss + self.l_feat * feat
            stats["feat"] = feat.item()
        if cfg.l_adv:
            with self.autocast():
                # non-saturating form of -E[D(G(E(x)))], as in the official code
                adv = F.softplus(-D(rec.to(memory_format=self.memory_format)).float()).mean()
            loss = loss + cfg.l_adv * adv
            stats["adv"] = adv.item()
        self._optimise(self.E_params, self.E_opt, loss)
        stats["loss_E"] = loss.item()

        # D: logistic loss on the reconstructions vs the reals, R1 on the reals (in the same backward pass).
        D.requires_grad_(True)
        r1_due = cfg.r1_gamma > 0 and self.step % cfg.r1_interval == 0
        real_ = real.detach().requires_grad_(r1_due)
        with self.autocast():
            logits_fake = D(rec.detach().to(memory_format=self.memory_format)).float()
            logits_real = D(real_).float()
        loss_D = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
        stats.update(loss_D=loss_D.item(), D_real=logits_real.mean().item(), D_fake=logits_fake.mean().item())
        if r1_due:
            (grad,) = torch.autograd.grad(logits_real.sum(), real_, create_graph=True)
            penalty = grad.float().square().sum(dim=[1, 2, 3])
            loss_D = loss_D + penalty.mean() * (cfg.r1_gamma / 2) * cfg.r1_interval
            stats["r1_penalty"] = penalty.mean().item()
        self._optimise(list(D.parameters()), self.D_opt, loss_D)
        D.requires_grad_(False)
        return stats

    def conventional_step(self) -> dict[str, float]:
        """E's step on a fresh batch of G's samples: regress their W+ codes."""
        G = self.G
        with torch.no_grad():
            w = G.to_wplus(G.mapping(torch.randn(self.local_batch, G.z_dim, device=self.info.device)))
            with self.autocast():
                x = G.synthesis(w, noise_mode="const").float()
        loss = (self.encode(x) - w).square().mean()
        self._optimise(self.E_params, self.E_opt, loss)
        return {"loss_E": loss.item(), "code_mse": loss.item()}

    def train_step(self, real: torch.Tensor | None = None) -> dict[str, float]:
        """One step (``real``: this rank's float batch in [-1, 1]; unused by the conventional objective).
        Returns this rank's losses."""
        factor = self.lr_factor()
        for opt, lr in ((self.E_opt, self.cfg.lr), (self.D_opt, self.cfg.d_lr)):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = lr * factor * group.get("lr_mul", 1.0)
        if self.cfg.objective in ("domain-guided", "noise"):
            if real is None:
                raise ValueError("the domain-guided objective trains on real images: pass real=")
            stats = self.domain_guided_step(real)
        else:
            stats = self.conventional_step()
        with torch.no_grad():
            tdist.average_buffers(self.E, self.info)
        self.step += 1
        self.nimg += self.cfg.batch
        return stats

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, chunk: int = 32) -> torch.Tensor:
        """G(E(x)) with E in eval mode (running statistics), in float32 (with E's noise maps, if it has them)."""
        return reconstruct(self.E, self.G, images, chunk, self.memory_format)

    def evaluate(self, images: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Reconstruction MSE of ``images`` (float NCHW in [-1, 1]) and the reconstructions."""
        rec = self.reconstruct(images)
        return (rec - images.to(rec)).square().mean().item(), rec

    # -- checkpointing -------------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, torch.Tensor]:
        state = {"cpu": torch.get_rng_state()}
        if self.info.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.info.device)
        return state

    def state_dict(self, wall_s: float) -> dict[str, Any] | None:
        """Everything :meth:`load_state_dict` needs (on rank 0; None on the others). Collective: every rank
        must call it."""
        rng = tdist.gather_objects(self._rng_state(), self.info)
        if not self.info.is_main:
            return None

        def cpu(sd: dict[str, Any]) -> dict[str, Any]:
            return {k: v.detach().cpu().contiguous() if torch.is_tensor(v) else v for k, v in sd.items()}

        state = {
            "version": CHECKPOINT_VERSION,
            "config": json.dumps(self.cfg.to_dict()),
            "encoder_config": json.dumps(self.E.config),
            "encoder_architecture": self.E.architecture,
            "generator_digest": generator_digest(self.G),
            "init_source": self.init_source,
            "E": cpu(self.E.state_dict()),
            "E_opt": self.E_opt.state_dict(),
            "step": self.step,
            "nimg": self.nimg,
            "wall_s": float(wall_s),
            "world_size": self.info.world_size,
            "hardware": describe_hardware(self.info),
            "rng": rng,
        }
        if self.D is not None and self.D_opt is not None:
            state["D"] = cpu(self.D.state_dict())
            state["D_opt"] = self.D_opt.state_dict()
        return state

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (restores this rank's RNG when the world size is unchanged,
        otherwise re-seeds from (seed, rank, step))."""
        if ckpt.get("generator_digest") != generator_digest(self.G):
            raise ValueError(f"the generator {self.cfg.generator!r} is not the one this run started with (its "
                             "weights changed). Use another out_dir, or resume=False / --restart to start over.")
        self.E.load_state_dict(ckpt["E"])
        self.E_opt.load_state_dict(ckpt["E_opt"])
        self.init_source = ckpt.get("init_source", self.init_source)  # what the run started from
        if self.D is not None and self.D_opt is not None:
            self.D.load_state_dict(ckpt["D"])
            self.D_opt.load_state_dict(ckpt["D_opt"])
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
    path = Path(out_dir) / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{out_dir} holds no encoder training run ({CHECKPOINT_NAME} is missing)")
    return torch.load(path, map_location="cpu", weights_only=True)


def _check_same_run(cfg: EncoderTrainConfig, saved: EncoderTrainConfig) -> None:
    a, b = cfg.to_dict(), saved.to_dict()
    diff = [k for k in a if k not in RUN_CONTROL_FIELDS and a[k] != b.get(k)]
    if diff:
        details = "; ".join(f"{k}: checkpoint {b.get(k)!r} vs given {a[k]!r}" for k in diff)
        raise ValueError(
            f"the checkpoint in this folder was trained with a different configuration ({details}). "
            "Use another out_dir, or resume=False (--restart) to start over."
        )


def _preview(reals: torch.Tensor, recs: torch.Tensor, cols: int = 8) -> np.ndarray:
    """Rows of held-out images, each followed by a row of their reconstructions."""
    n = min(len(reals), 2 * cols)
    rows = []
    for start in range(0, n, cols):
        rows += [reals[start : min(start + cols, n)], recs[start : min(start + cols, n)].cpu()]
    return image_grid(torch.cat(rows), cols=min(cols, n))


def train_encoder(
    cfg: EncoderTrainConfig,
    out_dir: str | Path,
    *,
    max_kimg: float | None = None,
    max_minutes: float | None = None,
    max_steps: int | None = None,
    resume: bool = True,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Train (or continue training) an encoder; see the module docstring for the objectives and the files.

    Stops when ``max_kimg`` (default ``cfg.total_kimg``) thousand images have been shown, after
    ``max_minutes`` of wall-clock time in this call, or at ``max_steps`` total steps, whichever comes first;
    it always writes a checkpoint before returning. With ``resume`` an existing ``resume.pt`` in ``out_dir``
    is continued (same configuration except the run-control fields, same generator weights). ``command`` is
    recorded for the model card. Under torchrun every rank calls this.

    Returns a summary: ``step``, ``kimg``, ``wall_s`` (training time, all calls), ``images_per_s`` (this
    call), ``last`` (this rank's last losses), ``eval_mse`` (held-out reconstruction MSE at the end, rank 0),
    ``checkpoint`` and ``trainer`` (the :class:`EncoderTrainer`).
    """
    created_group = not torch.distributed.is_initialized()
    info = tdist.init_from_env()
    out_dir = Path(out_dir)
    total_nimg = int(round((cfg.total_kimg if max_kimg is None else max_kimg) * 1000))

    ckpt_path = out_dir / CHECKPOINT_NAME
    resumed = resume and ckpt_path.is_file()
    trainer = EncoderTrainer(cfg, info, initialise=not resumed)  # a resumed E comes from the checkpoint
    resolution = trainer.G.resolution
    # Check the data before anything is written.
    source = real_images(cfg, resolution) if cfg.objective != "conventional" else None
    eval_uint8, eval_what = heldout_images(cfg, resolution)
    eval_images = to_float(torch.from_numpy(eval_uint8), torch.device("cpu"), False)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)

    wall_before = 0.0
    commands: list[str] = []
    if resumed:
        ckpt = load_checkpoint(out_dir)
        _check_same_run(cfg, EncoderTrainConfig.from_dict(json.loads(ckpt["config"])))
        trainer.load_state_dict(ckpt)
        wall_before = float(ckpt["wall_s"])
        commands = list(ckpt.get("commands", []))
        del ckpt
    else:
        torch.manual_seed(rank_seed(cfg.seed, info.rank, 0))
        if info.is_main:
            (out_dir / LOG_NAME).unlink(missing_ok=True)  # a fresh run starts a fresh log
    commands.append(command or "idinvert_plugins.training.encoder.train_encoder (Python API)")

    data = None
    if source is not None:
        loader = torch.utils.data.DataLoader(
            StepBatches(source, cfg.batch, info, seed=cfg.seed), batch_size=None,
            sampler=itertools.count(trainer.step), num_workers=cfg.workers, persistent_workers=cfg.workers > 0,
            generator=torch.Generator().manual_seed(cfg.seed),
        )  # fmt: skip
        data = iter(loader)

    def snapshot() -> float:
        mse, rec = trainer.evaluate(eval_images)
        save_png(_preview(eval_images, rec), out_dir / f"preview_{trainer.nimg // 1000:06d}.png")
        return mse

    if info.is_main and not resumed:
        snapshot()

    def log_fields(means: dict[str, float]) -> dict[str, Any]:
        """A log record's fields after the run's: learning rate, loss means, held-out MSE (rank 0)."""
        return {"lr": cfg.lr * trainer.lr_factor(), **means, "eval_mse": trainer.evaluate(eval_images)[0]}

    def extend_state(state: dict[str, Any]) -> None:
        state["commands"] = commands

    result = run(
        trainer, Schedule(batch=cfg.batch, total_nimg=total_nimg, max_steps=max_steps, max_minutes=max_minutes,
                          log_kimg=cfg.log_kimg, snapshot_kimg=cfg.snapshot_kimg, checkpoint_kimg=cfg.checkpoint_kimg),
        info, out_dir=out_dir, checkpoint_name=CHECKPOINT_NAME, log_name=LOG_NAME, wall_before=wall_before,
        batches=lambda: to_float(next(data), info.device, cfg.channels_last) if data is not None else None,
        log_fields=log_fields, snapshot=snapshot, extend_state=extend_state, progress=progress,
        desc=f"encoder ({cfg.objective})",
        postfix=lambda stats: {k: f"{stats[k]:.4f}" for k in ("loss_E", "pix", "loss_D") if k in stats},
    )  # fmt: skip
    eval_mse = snapshot() if info.is_main else None
    if created_group:
        tdist.cleanup()
    return {
        "step": trainer.step,
        "kimg": trainer.nimg / 1000,
        "wall_s": wall_before + result.elapsed,
        "images_per_s": result.images_per_s,
        "last": result.last,
        "eval_mse": eval_mse,
        "eval_images": eval_what,
        "checkpoint": str(ckpt_path),
        "trainer": trainer,
    }


# -- export and speed --------------------------------------------------------------------------------
LOG_META_KEYS = ("step", "kimg", "wall_s", "images_per_s", "lr")


def _last_log_record(out_dir: Path) -> dict[str, Any]:
    path = out_dir / LOG_NAME
    if not path.is_file():
        return {}
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else {}


def export_encoder(
    out_dir: str | Path,
    dest_root: str | Path,
    name: str | None = None,
    *,
    dtype: torch.dtype | None = torch.float16,
    license: str | None = None,
) -> Path:
    """Write a run's encoder as the model folder ``dest_root/<name>`` via :func:`hub.save_pretrained`.

    ``name`` defaults to :func:`default_encoder_name`. The card records the objective and the generator (also
    in its front matter), images seen, training time, hardware, the last log record's loss means, the
    reconstruction MSE / PSNR of the exported encoder (with ``dtype`` storage) on the held-out batch, and the
    training command(s), and ``license`` if given. The folder loads with ``load_encoder`` and works with the
    ``encoder`` and ``idinvert`` inverters (it outputs W+ codes; no ``add_w_avg`` needed).
    """
    from .. import metrics
    from ..cards import ModelCard, card_stub
    from ..hub import load_encoder, save_pretrained

    out_dir = Path(out_dir)
    ckpt = load_checkpoint(out_dir)
    cfg = EncoderTrainConfig.from_dict(json.loads(ckpt["config"]))
    name = name or default_encoder_name(cfg)
    E = encoder_class(ckpt.get("encoder_architecture"))(**json.loads(ckpt["encoder_config"]))
    E.load_state_dict(ckpt["E"])
    E.eval()
    folder = Path(dest_root) / name
    save_pretrained(E, folder, kind="encoder", dtype=dtype)  # weights first: measure what was written

    G = load_frozen_generator(cfg.generator, torch.device("cpu"))
    if ckpt.get("generator_digest") != generator_digest(G):
        raise ValueError(f"the generator {cfg.generator!r} changed since the encoder was trained; its "
                         "reconstruction metrics would be meaningless")
    E_saved = load_encoder(folder)
    eval_uint8, eval_what = heldout_images(cfg, G.resolution)
    x = to_float(torch.from_numpy(eval_uint8), torch.device("cpu"), False)
    rec = reconstruct(E_saved, G, x)
    mse = float(metrics.mse(rec, x, reduction="mean"))
    psnr = float(metrics.psnr(rec, x, reduction="mean"))

    last = _last_log_record(out_dir)
    losses = {k: round(v, 6) for k, v in last.items() if k not in LOG_META_KEYS and isinstance(v, float)}
    objective = {
        "domain-guided": "domain-guided (IDInvert: pixel + perceptual + adversarial, on real images)",
        "conventional": "conventional (regress W+ codes of the generator's samples)",
        "noise": (f"noise (IDInvert Sec. VI-C: the domain-guided objective, the encoder also predicting the noise "
                  f"maps of the generator's first {cfg.noise_blocks} synthesis blocks)"),
    }[cfg.objective]
    notes = {
        "objective": objective,
        "generator": cfg.generator,
        "images_seen": f"{ckpt['nimg']:,} ({ckpt['nimg'] / 1000:.1f} kimg, {ckpt['step']} steps)",
        "training_time": f"{ckpt['wall_s'] / 3600:.2f} h ({ckpt['wall_s']:.0f} s)",
        "hardware": ckpt["hardware"],
        "final_losses": (f"means over the last log window (to {last.get('kimg', 0):.1f} kimg): "
                         + ", ".join(f"{k} {v:.5g}" for k, v in losses.items())) if losses else "no log",
        "reconstruction": f"MSE {mse:.5f}, PSNR {psnr:.2f} dB on {eval_what} (images in [-1, 1])",
        **({"initialised_from": f"{ckpt.get('init_source') or cfg.init_encoder} (a warm start: images seen "
                                "and training time count from there)"} if cfg.init_encoder else {}),
        "training_command": " ; ".join(ckpt.get("commands", [])) or "unknown",
        "training_recipe": f"idinvert_plugins.training.encoder; config: {ckpt['config']}",
    }
    stub = card_stub(name, "encoder", E.architecture, E.config, notes=notes, license=license)
    # `local` makes this card usable as-is in model_cards/ (a named model bundled under weights/<name>)
    data = {**stub.data, "local": name, "generator": cfg.generator, "objective": cfg.objective,
            "images_seen": int(ckpt["nimg"]), "eval_mse": round(mse, 6), "eval_psnr": round(psnr, 3)}
    body = stub.body.replace(
        "(to be written by the model's author)",
        f"Encoder for `{cfg.generator}` ({objective}). It maps an image [N, {E.img_channels}, {E.resolution}, "
        f"{E.resolution}] in [-1, 1] to a W+ code [N, {E.num_layers}, {E.w_dim}] of that generator (absolute "
        "codes: no add_w_avg)" + (
            f" and the noise maps of its layers {', '.join(n for n, _ in E.noise_layers)} (the latent's `noise` "
            "part: `idinvert invert GENERATOR IMAGE --method encoder --encoder THIS` renders with them)"
            if getattr(E, "noise_layers", None) else "")
        + ". Use it with the `encoder` and `idinvert` inverters of idinvert-plugins.",
    ).replace('idinvert_plugins.load_model("PATH/TO/', 'idinvert_plugins.load_encoder("PATH/TO/')
    (folder / "README.md").write_text(ModelCard(data=data, body=body).render(), encoding="utf-8")
    return folder


def measure_speed(cfg: EncoderTrainConfig, iters: int = 5, warmup: int = 1) -> float:
    """Time ``iters`` training steps on random images (after ``warmup``); prints and returns images/s."""
    info = DistInfo(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    trainer = EncoderTrainer(cfg, info)
    G = trainer.G
    real = torch.rand(cfg.batch, G.img_channels, G.resolution, G.resolution, device=info.device) * 2 - 1
    real = real.contiguous(memory_format=trainer.memory_format)
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
    print(f"{cfg.objective} encoder, {G.resolution}px batch {cfg.batch}: {speed:.1f} images/s "
          f"({speed * 3.6:.0f} kimg/h)")
    return speed


__all__ = ["OBJECTIVES", "PRESETS", "EncoderTrainConfig", "EncoderTrainer", "build_encoder",
           "code_stats", "default_encoder_name", "export_encoder", "load_checkpoint", "measure_speed",
           "parse_overrides", "train_encoder"]  # fmt: skip
