"""Inversion: images -> latents.

* :mod:`.base` — the :class:`Inverter` contract and :class:`InversionResult`; the shared option declarations
  (the one home of the loss weights ``l_pix``, ``l_feat``, ``l_dom`` and the run options);
* :mod:`.stages` — embed, then refine: :class:`Embedder`, :class:`Refiner`, :class:`Composition`;
* :mod:`.embedders` (``encoder``, ``mean``, ``w``) and :mod:`.refiners` (``domain-regularized``, ``wplus``);
* :mod:`.optimize` — the one optimisation loop;
* the named methods: ``idinvert`` (:mod:`.idinvert`), ``image2stylegan`` (:mod:`.image2stylegan`) and
  ``encoder`` (:mod:`.encoder`).
"""

from .base import InversionResult, Inverter, StepCallback, encode
from .embedders import EncoderEmbedder, MeanEmbedder, WEmbedder
from .encoder import EncoderInverter
from .idinvert import IDInvert
from .image2stylegan import Image2StyleGAN
from .optimize import ReconstructionObjective, frozen, optimize_codes, run_inversion
from .refiners import DomainRegularizedOptimization, WPlusOptimization
from .stages import Composition, Embedder, InversionContext, Refiner, RefineResult, evaluate_latent

__all__ = [
    "Composition", "DomainRegularizedOptimization", "Embedder", "EncoderEmbedder", "EncoderInverter", "IDInvert",
    "Image2StyleGAN", "InversionContext", "InversionResult", "Inverter", "MeanEmbedder", "ReconstructionObjective",
    "RefineResult", "Refiner", "StepCallback", "WEmbedder", "WPlusOptimization", "encode", "evaluate_latent",
    "frozen", "optimize_codes", "run_inversion",
]
