"""Built-in inversion plugin: the embedders (``encoder``, ``mean``, ``w``), the refiners
(``domain-regularized``, ``wplus``), the named methods composed of them (``idinvert``, ``image2stylegan``,
``encoder``), and the VGG16 perceptual trunk as a loadable network (kind ``feature``)."""

from ..hookspecs import hookimpl


@hookimpl
def register_embedders(register):
    from ..inverters import EncoderEmbedder, MeanEmbedder, WEmbedder

    register(EncoderEmbedder())
    register(MeanEmbedder())
    register(WEmbedder())


@hookimpl
def register_refiners(register):
    from ..inverters import DomainRegularizedOptimization, WPlusOptimization

    register(DomainRegularizedOptimization())
    register(WPlusOptimization())


@hookimpl
def register_inverters(register):
    from ..inverters import EncoderInverter, IDInvert, Image2StyleGAN

    register(IDInvert())
    register(Image2StyleGAN())
    register(EncoderInverter())


@hookimpl
def register_networks(register):
    from ..models.vgg import VGG16Features

    register(VGG16Features, kind="feature")
