"""Evaluation of inversion and editing on a domain's test split (``idinvert evaluate``; the default domain
unless ``--domain`` names another).

* :mod:`.inversions`: the test split, and every method's inversions with their on-disk cache (one path and one
  cache for ``idinvert evaluate`` and ``idinvert bench``);
* :mod:`.measures`: every registered metric of one method's inversions, kept in its cache record (the one
  measuring path: ``idinvert bench``'s rows and ``idinvert evaluate``'s Table I and editability read its values);
* :mod:`.tables`: the paper's Table I, semantic property (Fig. 3) and l_dom sweep (Fig. 10) as functions;
* :mod:`.editability`: attribute change per unit step, disentanglement, success rates (Table II), read from the
  cross-talk measurement;
* :mod:`.runner`: :func:`evaluate` (one generator, loaded models) and :func:`run_evaluation` (by name);
* :mod:`.report`: the markdown report; :mod:`.plots`: figures drawn with Pillow.
"""

from .editability import AttributeTarget, measure_editability, resolve_targets
from .inversions import METHOD_LABELS, METHODS, LatentCache, TestImages, invert_cached, load_test_images
from .report import write_report
from .runner import SECTIONS, EvalConfig, evaluate, run_evaluation
from .tables import (
    FD_NAME,
    average_precision,
    precision_recall_curve,
    projection_scores,
    reconstruction_metrics,
    semantic_property,
    table1,
)

__all__ = [
    "FD_NAME", "METHODS", "METHOD_LABELS", "SECTIONS", "AttributeTarget", "EvalConfig", "LatentCache", "TestImages",
    "average_precision", "evaluate", "invert_cached", "load_test_images", "measure_editability",
    "precision_recall_curve", "projection_scores", "reconstruction_metrics", "resolve_targets", "run_evaluation",
    "semantic_property", "table1", "write_report",
]
