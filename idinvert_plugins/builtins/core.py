"""Built-in latent spaces (Z, W, W+), latent parts (noise, styles, features, weights), the
backend-independent editors and the attribute classifier network (any domain's schema)."""

from ..editors.diffusion import Diffuse
from ..editors.interpolate import Interpolate, StyleMix
from ..editors.manipulate import Manipulate
from ..hookspecs import hookimpl
from ..spaces import WPlusSpace, WSpace, ZSpace


@hookimpl
def register_latent_spaces(register):
    register(ZSpace())
    register(WSpace())
    register(WPlusSpace())


@hookimpl
def register_latent_parts(register):
    from ..latent import BUILTIN_PARTS

    for part in BUILTIN_PARTS:
        register(part)


@hookimpl
def register_editors(register):
    register(Interpolate())
    register(StyleMix())
    register(Manipulate())
    register(Diffuse())
    from ..editors.stylespace import StyleChannelEdit

    register(StyleChannelEdit())


@hookimpl
def register_networks(register):
    from ..models.classifier import AttributeClassifier

    register(AttributeClassifier, kind="classifier")
