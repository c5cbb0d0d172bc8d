"""Built-in pSp-family plugin: the pSp, e4e and ReStyle encoders (networks of kind ``encoder``), the converters
of their official checkpoints (``psp``, ``e4e``, ``restyle``), their embedders and the named methods
(``idinvert invert DIR IMAGE --method psp|e4e|restyle``)."""

from ..hookspecs import hookimpl


@hookimpl
def register_networks(register):
    from ..models.e4e import E4EEncoder
    from ..models.psp import PSPEncoder
    from ..models.restyle import ReStyleEncoder

    register(PSPEncoder, kind="encoder")
    register(E4EEncoder, kind="encoder")
    register(ReStyleEncoder, kind="encoder")


@hookimpl
def register_converters(register):
    from ..convert.psp import E4EFormat, PSPFormat, ReStyleFormat

    register(PSPFormat())
    register(E4EFormat())
    register(ReStyleFormat())


@hookimpl
def register_embedders(register):
    from ..inverters.psp_family import E4EEmbedder, PSPEmbedder, ReStyleEmbedder

    register(PSPEmbedder())
    register(E4EEmbedder())
    register(ReStyleEmbedder())


@hookimpl
def register_inverters(register):
    from ..inverters.psp_family import compositions

    for composition in compositions():
        register(composition)
