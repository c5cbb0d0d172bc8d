"""A worked example of a third-party editor plugin, discovered from the ``hooks/`` folder.

Drop a ``*.py`` file like this one into ``hooks/`` (or a folder named by ``IDINVERT_PLUGINS_DIR`` /
``idinvert --plugins-dir``), or ship it in your own package with an entry point::

    [project.entry-points.idinvert_plugins]
    toward_average = "my_package.toward_average"

The editor below pulls a code part of the way towards the generator's average code ``w_avg``: the
classic truncation trick applied to an inverted image, which tames artefacts at the price of identity.
Everything the app and the CLI need comes from ``name``, ``description`` and ``params``.
"""

import torch

import idinvert_plugins
from idinvert_plugins.editors import Editor, Param


class TowardAverage(Editor):
    name = "toward-average"
    description = "Move the code towards the average face: strength 0 keeps it, 1 gives the average."
    layerwise = True  # the `layers` parameter restricts the change to a range of W+ layers
    params = (
        Param("strength", "float", default=0.5, min=0.0, max=1.0, step=0.05,
              help="fraction of the way to w_avg"),
        Param("layers", "layers", default=None, help="(start, stop) W+ layers to change; all if empty"),
    )

    def edit(self, generator, codes: torch.Tensor, *, strength: float, layers=None) -> torch.Tensor:
        return torch.lerp(codes, generator.w_avg.to(codes), strength)


@idinvert_plugins.hookimpl
def register_editors(register):
    register(TowardAverage())
