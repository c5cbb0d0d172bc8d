"""Built-in StyleGAN (v1) backend, as released with IDInvert: generator, discriminator, the domain-guided
encoder (and its noise-space variant of the paper's Sec. VI-C, for either StyleGAN), and the converter for
genforce/IDInvert ``.pth`` files."""

from ..hookspecs import hookimpl


@hookimpl
def register_generators(register):
    from ..models.stylegan import StyleGANGenerator

    register(StyleGANGenerator)


@hookimpl
def register_networks(register):
    from ..models.discriminator import StyleGANDiscriminator
    from ..models.idinvert_encoder import IDInvertEncoder
    from ..models.noise_encoder import NoiseEncoder

    register(IDInvertEncoder, kind="encoder")
    register(NoiseEncoder, kind="encoder")
    register(StyleGANDiscriminator, kind="discriminator")


@hookimpl
def register_converters(register):
    from ..convert.genforce import GenforceFormat

    register(GenforceFormat())
