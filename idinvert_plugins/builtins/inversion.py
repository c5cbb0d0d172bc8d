"""Built-in inversion plugin: the ``idinvert``, ``image2stylegan`` and ``encoder`` inverters, and the VGG16
perceptual trunk as a loadable network (kind ``feature``)."""

from ..hookspecs import hookimpl


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
