"""Built-in loss networks (:mod:`idinvert_plugins.losses.networks`): the perceptual networks ``vgg16-conv43``
(IDInvert's VGG16 conv4_3; weights not shipped) and ``classifier`` (a classifier model's features; the default
domain's bundled classifier works offline), and the identity network ``arcface-ir-se50`` (pSp's ID loss)."""

from ..hookspecs import hookimpl


@hookimpl
def register_loss_networks(register):
    from ..losses.identity import ArcFaceIRSE50Network
    from ..losses.perceptual import ClassifierNetwork, VGG16Conv43

    register(VGG16Conv43())
    register(ClassifierNetwork())
    register(ArcFaceIRSE50Network())
