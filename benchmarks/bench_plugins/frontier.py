"""Candidate points for the frontier question of issue 18: is there a composition of existing stages that beats
both IDInvert and Image2StyleGAN on reconstruction MSE *and* on the FD of edited images? Loaded as a plugins
directory by the leaderboard command (``idinvert --plugins-dir benchmarks/bench_plugins bench ...``, see
docs/leaderboard.md); nothing here is part of the package, and each is only a named composition of registered
stages, as a third-party plugin would write it.

* ``encoder+wplus``: the domain-guided encoder's code, refined in W+ without IDInvert's domain regulariser
  (pixel + perceptual loss only): IDInvert's start, Image2StyleGAN's objective;
* ``idinvert-ldom0.5``: IDInvert with a quarter of its domain-regulariser weight (0.5 instead of 2): a point between
  the two on the regulariser axis of the paper's Fig. 10;
* ``pti@encoder``: PTI tuned around the domain-guided encoder's W+ code instead of a W-space optimisation: no
  pivot search at all, and the only PTI that runs on a StyleGAN v1 (no single W space for the official pivot);
* ``pti@e4e``: PTI around e4e's code, the pairing the PTI paper recommends for editing (e4e's codes are made to
  stay editable); runs where the pipeline declares an e4e encoder.
"""

import idinvert_plugins
from idinvert_plugins.inverters import Composition


@idinvert_plugins.hookimpl
def register_inverters(register):
    register(Composition("encoder+wplus", "encoder", ("wplus",),
                         description="the encoder's code refined in W+ without the domain regulariser"))
    register(Composition("pti@encoder", "encoder", ("pti",),
                         description="PTI tuned around the domain-guided encoder's code (no pivot search)"))
    register(Composition("pti@e4e", "e4e", ("pti",), description="PTI tuned around e4e's code"))
    register(Composition("idinvert-ldom0.5", "encoder", ("domain-regularized",), defaults={"l_dom": 0.5},
                         description="IDInvert with domain-regulariser weight 0.5 (default 2)"))
