"""Encoder-only inversion: ``w = E(x)`` in one forward pass (plus ``G.w_avg`` for offset encoders).

Fast and always in-domain, but a looser reconstruction than optimisation; IDInvert uses it as the
starting point (see :mod:`.idinvert`).

It is the ``encoder`` embedder alone, as a named composition.
"""

from __future__ import annotations

from .embedders import EncoderEmbedder
from .stages import Composition


class EncoderInverter(Composition):
    name = "encoder"

    def __init__(self) -> None:
        super().__init__("encoder", EncoderEmbedder(), (),
                         description="The domain-guided encoder's code E(x), without optimisation.")
