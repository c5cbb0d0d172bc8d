"""Built-in plugin for the bundled toy-face domain: its attribute classifier (also the offline feature
network for perceptual losses and Fréchet distances)."""

from ..hookspecs import hookimpl


@hookimpl
def register_networks(register):
    from ..models.classifier import AttributeClassifier

    register(AttributeClassifier, kind="classifier")
