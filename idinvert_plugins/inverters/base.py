"""The inverter contract: what an inversion plugin declares, how it is called and what it returns.

An inverter turns images ``[N, C, R, R]`` in [-1, 1] into latents of a generator, one per image: W+ codes
``[N, num_layers, w_dim]`` (``InversionResult.codes``) plus whatever else the method keeps
(``InversionResult.latent``, see :mod:`idinvert_plugins.latent`). Most inverters are named compositions of an
embedder and refiners (:mod:`.stages`). Its options (steps, learning rate, loss weights, ...) are declared as
:class:`~idinvert_plugins.params.Param` objects, so the CLI and the app render controls for any
inverter, and :meth:`Inverter.invert` validates them. Register inverters with the ``register_inverters``
hook; get them with ``idinvert_plugins.get_inverter(name)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..latent import Latent
from ..models.base import NOISE_MODES, Generator
from ..params import Param, resolve_params

#: ``callback(step, codes, terms)`` after each optimisation step (``step`` counts from 1; ``codes`` is a
#: detached copy ``[N, L, D]``; ``terms`` maps ``"total"`` and each loss term to a tensor ``[N]``, evaluated
#: at the codes *before* the step). Returning True stops the optimisation early.
StepCallback = Callable[[int, torch.Tensor, dict[str, torch.Tensor]], bool | None]


@dataclass
class InversionResult:
    """What an inversion produces.

    * ``codes`` ``[N, num_layers, w_dim]``: the W+ codes (after the last step);
    * ``images`` ``[N, C, R, R]``: their reconstructions ``G.synthesis(codes)``;
    * ``losses``: one dict per optimisation step, ``{"total": [...], "pix": [...], "feat": [...],
      "dom": [...]}`` with one float per image, evaluated at the codes the step started from (so
      ``losses[0]`` is the loss of ``init_codes``). Terms are the unweighted means; ``total`` is the weighted
      sum that was minimised. Terms whose weight is 0 are not computed, except ``pix``;
    * ``final_losses``: the same terms at the returned codes;
    * ``init_codes``: where the optimisation started (for encoder-only inversion, equal to ``codes``);
    * ``seconds``: wall time of the whole call;
    * ``info``: the inverter's name and the options it ran with.
    """

    codes: torch.Tensor
    images: torch.Tensor
    losses: list[dict[str, list[float]]]
    init_codes: torch.Tensor
    seconds: float = 0.0
    final_losses: dict[str, list[float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    #: everything the inversion kept: ``codes`` plus any parts (noise maps, weight offsets, ...); a W+-only
    #: latent of ``codes`` when the inverter sets none
    latent: Latent | None = None

    def __post_init__(self) -> None:
        if self.latent is None:
            self.latent = Latent(self.codes)

    def loss_curve(self, term: str = "total") -> torch.Tensor:
        """``[steps, N]`` tensor of one loss term over the steps."""
        return torch.tensor([step[term] for step in self.losses]).reshape(len(self.losses), -1)


class Inverter:
    """Base class of inversion plugins.

    Subclasses set ``name``, ``description`` and ``params`` and implement :meth:`run`. Callers use
    :meth:`invert`, which validates inputs and options and times the call.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    #: the inverter cannot work without a domain-guided encoder
    requires_encoder: ClassVar[bool] = False
    #: the inverter can use a perceptual feature network (``feature_net=``)
    uses_feature_net: ClassVar[bool] = False
    #: :meth:`run` also receives ``explicit``, the names of the options the caller gave (compositions use it to
    #: let every stage keep its own defaults)
    takes_explicit_options: ClassVar[bool] = False

    def invert(
        self,
        generator: Generator,
        images: torch.Tensor,
        *,
        encoder: nn.Module | None = None,
        feature_net: nn.Module | None = None,
        mask: torch.Tensor | None = None,
        init_codes: torch.Tensor | None = None,
        progress: bool = False,
        callback: StepCallback | None = None,
        **options: Any,
    ) -> InversionResult:
        """Invert ``images`` ``[N, C, R, R]`` (in [-1, 1]) into W+ codes of ``generator``.

        Args:
            encoder: the domain-guided encoder E (needed by ``idinvert`` and ``encoder``).
            feature_net: perceptual feature network F (see :mod:`idinvert_plugins.losses.perceptual`).
            mask: ``[N or 1, 1 or C, R, R]``, 1 where the reconstruction counts. The pixel loss becomes the
                mean over C, H, W of ``((x - G(w)) * mask)^2`` (divided by the full image size, as in the
                official diffusion) and the perceptual loss compares ``F(x * mask)`` with ``F(G(w) * mask)``.
            init_codes: start from these W+ (or W) codes instead of the inverter's own initialisation (for
                compositions, a :class:`~idinvert_plugins.latent.Latent` too: the embedding stage is skipped).
            progress: show a progress bar.
            callback: called after every step, see :data:`StepCallback`.
            options: the inverter's declared ``params`` (``steps``, ``lr``, loss weights, ...).
        """
        start = time.perf_counter()
        extra: dict[str, Any] = {}
        if isinstance(init_codes, Latent):  # start from a whole latent: its parts are kept (compositions)
            extra["init_latent"] = init_codes
            init_codes = init_codes.wp
        if self.takes_explicit_options:
            extra["explicit"] = frozenset(options)
        values = self.resolve_params(options)
        images = check_images(generator, images)
        mask = check_mask(mask, images)
        if init_codes is not None:
            init_codes = generator.to_wplus(init_codes.detach().to(images))
            if init_codes.shape[0] not in (1, images.shape[0]):
                raise ValueError(f"init_codes has {init_codes.shape[0]} codes for {images.shape[0]} images")
            init_codes = init_codes.expand(images.shape[0], -1, -1).clone()
        if self.requires_encoder and encoder is None and init_codes is None:
            raise ValueError(f"inverter {self.name!r} needs an encoder: pass encoder=load_encoder(...)")
        result = self.run(generator, images, encoder=encoder, feature_net=feature_net, mask=mask,
                          init_codes=init_codes, progress=progress, callback=callback, **extra, **values)
        result.seconds = time.perf_counter() - start
        result.info = {"inverter": self.name, "options": values, **result.info}
        return result

    def run(self, generator: Generator, images: torch.Tensor, *, encoder: nn.Module | None,
            feature_net: nn.Module | None, mask: torch.Tensor | None, init_codes: torch.Tensor | None,
            progress: bool, callback: StepCallback | None, **options: Any) -> InversionResult:
        """Do the work on validated inputs (``images``, ``mask`` and ``init_codes`` on the generator's device)."""
        raise NotImplementedError

    def resolve_params(self, options: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults and validate; unknown names are an error listing the declared ones."""
        return resolve_params(self.params, options, f"inverter {self.name!r}")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "requires_encoder": self.requires_encoder, "uses_feature_net": self.uses_feature_net,
                "params": [p.to_dict() for p in self.params]}


# -- shared option declarations ----------------------------------------------------------------------------

def steps_param(default: int) -> Param:
    return Param("steps", "int", default=default, min=0, max=100_000, step=1, help="optimisation steps (Adam)")


def lr_param(default: float = 0.01) -> Param:
    return Param("lr", "float", default=default, min=0.0, max=10.0, step=1e-3, help="Adam learning rate")


L_PIX = Param("l_pix", "float", default=1.0, min=0.0, max=1e6, step=0.1, help="weight of the pixel MSE")
L_FEAT = Param("l_feat", "float", default=None, min=0.0, max=1e6, step=1e-5,
               help="weight of the perceptual MSE; default: the feature network's recommended weight "
                    "(VGG16 conv4_3: 5e-5 as in IDInvert), 0 without a feature network")
L_DOM = Param("l_dom", "float", default=2.0, min=0.0, max=1e6, step=0.1,
              help="weight of the domain regulariser mean((w - E(G(w)))^2) (IDInvert: 2)")
NOISE_MODE = Param("noise_mode", "choice", default="const", choices=NOISE_MODES,
                   help="generator noise: the stored maps (const, deterministic), fresh draws, or none")
ADD_W_AVG = Param("add_w_avg", "bool", default=None,
                  help="add G.w_avg to the encoder output (encoders trained to predict offsets, e.g. for "
                       "StyleGAN2); default: the encoder's config['add_w_avg'], False for IDInvert encoders")
CHUNK_SIZE = Param("chunk_size", "int", default=None, min=1, max=65536, step=1,
                   help="images per forward/backward pass; all chunks' gradients are accumulated before each "
                        "Adam step, so results do not depend on it (up to float noise). Default: the whole "
                        "batch on GPU; on CPU as many images as fit 32k pixels (8 at 64x64, 1 at 256x256), which is "
                        "fastest there")
FEATURE_AUTOCAST = Param("feature_autocast", "bool", default=False,
                         help="run the feature network in bfloat16 autocast (faster on recent CPUs / GPUs, "
                              "slightly different numbers)")
AUTOCAST = Param("autocast", "bool", default=False,
                 help="run the generator, the encoder and the feature network in bfloat16 autocast during the "
                      "optimisation (1.6x faster per step at 256x256 on a 2-core CPU, loss within 1 %); the "
                      "returned reconstructions are float32 renders")


# -- helpers -----------------------------------------------------------------------------------------------

def generator_device(generator: Generator) -> torch.device:
    return generator.w_avg.device


def check_images(generator: Generator, images: torch.Tensor) -> torch.Tensor:
    """Validate ``[N, C, R, R]`` against the generator and move it to the generator's device and dtype."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        what = type(images).__name__ if not isinstance(images, torch.Tensor) else f"a {images.dtype} tensor"
        raise TypeError(f"images must be a float tensor [N, C, R, R] in [-1, 1], got {what} (convert uint8 "
                        "with x / 127.5 - 1)")
    expected = (generator.img_channels, generator.resolution, generator.resolution)
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(f"images must be [N, {', '.join(map(str, expected))}] (the generator's resolution), "
                         f"got {list(images.shape)}; resize them first")
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch")
    return images.detach().to(device=generator_device(generator), dtype=generator.w_avg.dtype)


def check_mask(mask: torch.Tensor | None, images: torch.Tensor) -> torch.Tensor | None:
    """Validate a mask ``[N or 1, 1 or C, R, R]`` (or ``[R, R]``) and broadcast it to ``images``' shape."""
    if mask is None:
        return None
    mask = torch.as_tensor(mask)
    if mask.ndim == 2:
        mask = mask[None, None]
    n, c, h, w = images.shape
    if mask.ndim != 4 or mask.shape[0] not in (1, n) or mask.shape[1] not in (1, c) or mask.shape[2:] != (h, w):
        raise ValueError(f"mask must be [{n} or 1, 1 or {c}, {h}, {w}], got {list(mask.shape)}")
    return mask.detach().to(images).expand(n, c, h, w)


def encode(encoder: nn.Module, generator: Generator, images: torch.Tensor, add_w_avg: bool | None = None
           ) -> torch.Tensor:
    """``E(images)`` as W+ ``[N, num_layers, w_dim]``, plus ``G.w_avg`` for offset-predicting encoders.

    ``add_w_avg=None`` reads ``encoder.config["add_w_avg"]`` (absent, i.e. False, for the IDInvert
    encoders, which output codes directly).
    """
    codes = encoder(images)
    n, L, D = images.shape[0], generator.num_layers, generator.w_dim
    if codes.ndim == 2 and codes.shape[1] == L * D:
        codes = codes.view(n, L, D)
    if tuple(codes.shape) != (n, L, D):
        raise ValueError(f"encoder output {list(codes.shape)} does not fit the generator's W+ code "
                         f"[{n}, {L}, {D}]: the encoder belongs to another generator")
    if add_w_avg is None:
        add_w_avg = bool(getattr(encoder, "config", {}).get("add_w_avg", False))
    return codes + generator.w_avg if add_w_avg else codes
