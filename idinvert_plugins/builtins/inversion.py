"""Built-in inversion plugin: the embedders (``encoder``, ``mean``, ``w``), the refiners
(``domain-regularized``, ``wplus``, ``pti``; beyond W+: ``noise``, ``inpaint``, ``crossover``, ``superres``,
``colorize``), the named methods composed of them (``idinvert``, ``image2stylegan``, ``encoder``, ``pti``,
``image2stylegan++``, ``inpaint``, ``crossover``, ``superres``, ``colorize``), and the VGG16 perceptual trunk as a
loadable network (kind ``feature``); and the ``idinvert restore`` command (:mod:`..cli_restore`)."""

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
    for refiner in _beyond_wplus_refiners():
        register(refiner)


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
    for composition in _beyond_wplus_compositions():
        register(composition)


def _beyond_wplus_refiners():
    """Image2StyleGAN++'s noise and masked refiners and the restoration refiners."""
    from ..inverters.masked import Crossover, Inpainting
    from ..inverters.noise import NoiseOptimization
    from ..inverters.restoration import Colorization, SuperResolution

    return [NoiseOptimization(), Inpainting(), Crossover(), SuperResolution(), Colorization()]


def _beyond_wplus_compositions():
    """The named methods built from them; each starts from the average code (Image2StyleGAN++'s start, and the
    one that needs no encoder, so they run on any generator)."""
    from ..inverters import Composition, MeanEmbedder

    noise, inpaint, crossover, superres, colorize = _beyond_wplus_refiners()
    return [
        Composition("image2stylegan++", MeanEmbedder(), (noise,),
                    description="Image2StyleGAN++: from the average code, W+ and the noise maps optimised together "
                                "(--set switch_every=K: in turn, the paper's order) under the StyleGAN2 projector's "
                                "noise regularisation"),
        Composition("inpaint", MeanEmbedder(), (inpaint,),
                    description="inpainting (Image2StyleGAN++): fit the known pixels only, the generator fills the "
                                "hole; --set hole=FILE (white = missing pixels)"),
        Composition("crossover", MeanEmbedder(), (crossover,),
                    description="crossover (Image2StyleGAN++): the image inside --set region=FILE (white), "
                                "--set other=FILE outside it"),
        Composition("superres", MeanEmbedder(), (superres,),
                    description="super-resolution by inversion: the render, downsampled x4 (--set factor=), matches "
                                "the input's downsampling; `idinvert restore --task superres` takes low-res files"),
        Composition("colorize", MeanEmbedder(), (colorize,),
                    description="colorization by inversion: the render's grayscale matches the input's"),
    ]


@hookimpl
def register_networks(register):
    from ..models.vgg import VGG16Features

    register(VGG16Features, kind="feature")


@hookimpl
def register_commands(cli):
    from ..cli_restore import add_restore_command

    add_restore_command(cli)
