"""Built-in plugin for real photos (:mod:`idinvert_plugins.align`): the ``dlib``, ``toyfaces`` and ``json``
aligners, the toy-face landmark network, and the ``idinvert align`` / ``idinvert paste`` commands."""

from ..hookspecs import hookimpl


@hookimpl
def register_aligners(register):
    from ..align.aligners import DlibAligner, SidecarAligner, ToyFacesAligner

    register(DlibAligner())
    register(ToyFacesAligner())
    register(SidecarAligner())


@hookimpl
def register_networks(register):
    from ..models.landmarks import LandmarkNet

    register(LandmarkNet, kind="landmarks")


@hookimpl
def register_commands(cli):
    from ..align.commands import add_parsers

    add_parsers(cli)
