"""Built-in plugin for the bundled toy-face domain (:mod:`idinvert_plugins.toyfaces`): the domain itself
(:class:`~idinvert_plugins.toyfaces.domain.ToyFacesDomain`: attribute schema, renders, examples, default networks,
presets, photo alignment), its attribute classifier (also the offline feature network for perceptual losses and
Fréchet distances), the ``toyfaces`` aligner (its landmark network on photos of toy faces) and the ``idinvert data``
command."""

from ..hookspecs import hookimpl


@hookimpl
def register_networks(register):
    from ..models.classifier import AttributeClassifier

    # the architecture id the shipped toyfaces-classifier-64 weights carry in their config.json (the class is
    # the generic attribute classifier, registered by builtins.core as "attribute-classifier")
    register(AttributeClassifier, kind="classifier", name="toyfaces-attribute-classifier")


@hookimpl
def register_commands(cli):
    from ..toyfaces.commands import add_data_command

    add_data_command(cli)


@hookimpl
def register_domains(register):
    from ..toyfaces.domain import ToyFacesDomain

    register(ToyFacesDomain())


@hookimpl
def register_aligners(register):
    from ..toyfaces.aligner import ToyFacesAligner

    register(ToyFacesAligner())
