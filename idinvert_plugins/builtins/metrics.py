"""Built-in metrics of ``idinvert bench`` (:mod:`idinvert_plugins.metrics.registry`): fidelity (MSE, PSNR, SSIM,
perceptual distance), realism (FD, SWD), attribute preservation, editability (success, cross-talk, FD of the
edited images) and cost (seconds per image, time to IDInvert's MSE); the ``idinvert bench`` command that runs them."""

from ..hookspecs import hookimpl


@hookimpl
def register_metrics(register):
    from ..metrics.registry import BUILTIN_METRICS

    for cls in BUILTIN_METRICS:
        register(cls())


@hookimpl
def register_commands(cli):
    from ..evaluation.bench_cli import add_bench_command

    add_bench_command(cli)
