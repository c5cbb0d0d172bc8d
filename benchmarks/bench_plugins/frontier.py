"""Candidate points for the frontier question of issue 18: is there a composition of existing stages that beats
both IDInvert and Image2StyleGAN on reconstruction MSE *and* on the FD of edited images? Loaded as a plugins
directory by the leaderboard command (``idinvert --plugins-dir benchmarks/bench_plugins bench ...``, see
docs/leaderboard.md); nothing here is part of the package, and each is only a named composition of registered
stages, as a third-party plugin would write it.

* ``encoder+wplus``: the domain-guided encoder's code, refined in W+ without IDInvert's domain regulariser
  (pixel + perceptual loss only): IDInvert's start, Image2StyleGAN's objective;
* ``idinvert-ldom0.5``: IDInvert with a quarter of its domain-regulariser weight (0.5 instead of 2): a point between
  the two on the regulariser axis of the paper's Fig. 10.
"""

import idinvert_plugins
from idinvert_plugins.inverters import Composition


@idinvert_plugins.hookimpl
def register_inverters(register):
    register(Composition("encoder+wplus", "encoder", ("wplus",),
                         description="the encoder's code refined in W+ without the domain regulariser"))
    register(Composition("idinvert-ldom0.5", "encoder", ("domain-regularized",), defaults={"l_dom": 0.5},
                         description="IDInvert with domain-regulariser weight 0.5 (default 2)"))
