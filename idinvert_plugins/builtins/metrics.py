"""Built-in metrics of ``idinvert bench`` (:mod:`idinvert_plugins.metrics.registry`): fidelity (MSE, PSNR, SSIM,
perceptual distance), realism (FD, SWD), attribute preservation, editability (success, cross-talk, FD of the
edited images) and cost (seconds per image, time to IDInvert's MSE)."""

from ..hookspecs import hookimpl


@hookimpl
def register_metrics(register):
    from ..metrics.registry import BUILTIN_METRICS

    for cls in BUILTIN_METRICS:
        register(cls())
