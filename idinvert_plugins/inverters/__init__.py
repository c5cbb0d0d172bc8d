"""Inverters: the contract (:mod:`.base`), the shared optimisation loop (:mod:`.optimize`) and the built-in
methods: ``idinvert`` (:mod:`.idinvert`), ``image2stylegan`` (:mod:`.image2stylegan`) and ``encoder``
(:mod:`.encoder`)."""

from .base import InversionResult, Inverter, StepCallback, encode
from .encoder import EncoderInverter
from .idinvert import IDInvert
from .image2stylegan import Image2StyleGAN
from .optimize import ReconstructionObjective, frozen, optimize_codes, run_inversion

__all__ = [
    "EncoderInverter", "IDInvert", "Image2StyleGAN", "InversionResult", "Inverter", "ReconstructionObjective",
    "StepCallback", "encode", "frozen", "optimize_codes", "run_inversion",
]
