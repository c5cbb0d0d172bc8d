"""Built-in StyleGAN2 backend: generator, discriminator, and the converters for rosinality ``.pt`` and
NVlabs stylegan2-ada-pytorch state dicts / ``.pkl`` files."""

from ..hookspecs import hookimpl


@hookimpl
def register_generators(register):
    from ..models.stylegan2 import StyleGAN2Generator

    register(StyleGAN2Generator)


@hookimpl
def register_networks(register):
    from ..models.discriminator import StyleGAN2Discriminator

    register(StyleGAN2Discriminator, kind="discriminator")


@hookimpl
def register_converters(register):
    from ..convert.nvlabs import NVlabsFormat
    from ..convert.rosinality import RosinalityFormat

    register(RosinalityFormat())
    register(NVlabsFormat())
