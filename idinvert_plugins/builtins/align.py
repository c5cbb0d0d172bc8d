"""Built-in plugin for real photos (:mod:`idinvert_plugins.align`): the ``dlib`` and ``json`` aligners, the
heatmap landmark network (the architecture a domain's aligner may load its weights into), and the ``idinvert
align`` / ``idinvert paste`` commands. A domain's own aligner registers from the domain's plugin."""

from ..hookspecs import hookimpl


@hookimpl
def register_aligners(register):
    from ..align.aligners import DlibAligner, SidecarAligner

    register(DlibAligner())
    register(SidecarAligner())


@hookimpl
def register_networks(register):
    from ..models.landmarks import LandmarkNet

    register(LandmarkNet, kind="landmarks")


@hookimpl
def register_commands(cli):
    from ..align.commands import add_parsers

    add_parsers(cli)
