"""Built-in inversion plugin: the embedders (``encoder``, ``mean``, ``w``), the refiners
(``domain-regularized``, ``wplus``, ``pti``), the named methods composed of them (``idinvert``, ``image2stylegan``,
``encoder``, ``pti``), and the VGG16 perceptual trunk as a loadable network (kind ``feature``)."""

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
    from ..inverters.pti import PivotalTuning

    register(DomainRegularizedOptimization())
    register(WPlusOptimization())
    register(PivotalTuning())


@hookimpl
def register_inverters(register):
    from ..inverters import Composition, EncoderInverter, IDInvert, Image2StyleGAN, WEmbedder
    from ..inverters.pti import PivotalTuning

    register(IDInvert())
    register(Image2StyleGAN())
    register(EncoderInverter())
    register(Composition("pti", WEmbedder(), (PivotalTuning(),),
                         description="Pivotal Tuning Inversion: a W-space pivot, then the generator tuned on the "
                                     "image (Roich et al. 2021); --set shared=true tunes one generator for all"))


@hookimpl
def register_networks(register):
    from ..models.vgg import VGG16Features

    register(VGG16Features, kind="feature")
