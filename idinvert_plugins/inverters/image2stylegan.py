"""Image2StyleGAN (Abdal et al., ICCV 2019): optimise a W+ code from the average latent.

Start from ``w_avg`` on every layer and minimise ``l_pix * MSE + l_feat * perceptual`` with Adam (lr 0.01;
the paper ran 5000 steps). There is no encoder and no domain regulariser, so the code can drift out of the
generator's domain: reconstructions are good, edits less so. That contrast is the point of IDInvert.

It is the named composition of the ``mean`` embedder and the ``wplus`` refiner.
"""

from __future__ import annotations

from .embedders import MeanEmbedder
from .refiners import WPlusOptimization
from .stages import Composition


class Image2StyleGAN(Composition):
    name = "image2stylegan"

    def __init__(self) -> None:
        super().__init__(
            "image2stylegan", MeanEmbedder(), (WPlusOptimization(),),
            description="W+ optimisation from the average latent with pixel and perceptual losses (Image2StyleGAN).")
