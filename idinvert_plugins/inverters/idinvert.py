"""In-domain inversion (Zhu et al., "In-Domain GAN Inversion for Real Image Editing", ECCV 2020, sec. 3.3).

Start from the domain-guided encoder's code ``w = E(x)``, then minimise with Adam (lr 0.01, 100 steps)::

    mean((x - G(w))^2) + 5e-5 * mean((F(x) - F(G(w)))^2) + 2 * mean((w - E(G(w)))^2)

where F is VGG16 conv4_3. The last term, the domain regulariser, keeps the code where the encoder maps
images, i.e. in the semantically meaningful part of the latent space. Defaults follow the official
``StyleGANInverter``. With a ``mask`` and ``l_dom=0`` this is the official semantic-diffusion objective.

It is the named composition of the ``encoder`` embedder and the ``domain-regularized`` refiner.
"""

from __future__ import annotations

from .embedders import EncoderEmbedder
from .refiners import DomainRegularizedOptimization
from .stages import Composition


class IDInvert(Composition):
    name = "idinvert"

    def __init__(self) -> None:
        super().__init__(
            "idinvert", EncoderEmbedder(), (DomainRegularizedOptimization(),),
            description=("In-domain inversion: encoder initialisation, then Adam on W+ with pixel, perceptual and "
                         "domain-regularisation losses (IDInvert, eq. 4)."))
