"""Feature networks for perceptual losses.

A perceptual loss compares two images by the mean squared difference of their features under a fixed
network F: ``mean((F(x) - F(y))^2)``. IDInvert uses VGG16 ``conv4_3`` (after ReLU) with weight 5e-5.

* :class:`~idinvert_plugins.features.FeatureNetwork` - the interface (one type for perceptual losses and
  Fréchet distances, :mod:`idinvert_plugins.features`): ``name``, a recommended ``loss_weight`` and
  ``forward(images)`` with images in [-1, 1]. It is an ``nn.Module``, so ``.to(device)`` and ``requires_grad_``
  work; inverters freeze it and switch it to eval mode while they run.
* :class:`VGG16Perceptual` - the IDInvert choice (:mod:`idinvert_plugins.models.vgg`). **VGG16 weights are
  not shipped** (ImageNet-trained, 59 MB, and nothing can be downloaded here): load your own file.
* :class:`~idinvert_plugins.features.ClassifierFeatures` - any classifier with ``features(x, layer)``; a
  domain's attribute classifier (layer ``stage2``; the bundled domain ships one) is the offline default for
  that domain's generators (its ``feature_net``, :mod:`idinvert_plugins.domains`).

:func:`load_feature_network` builds one from a short spec string (see there). ``vgg16-conv43`` and ``classifier``
are perceptual loss networks registered by name (:class:`VGG16Conv43`, :class:`ClassifierNetwork`;
:mod:`.networks`), so ``NAME:PATH_OR_HUB_ID`` of any registered perceptual network works too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..convert.vgg import load_vgg16
from ..features import DEFAULT_CLASSIFIER_LAYER, ClassifierFeatures, FeatureNetwork
from ..models.vgg import VGG16Features
from .networks import PERCEPTUAL, LossNetwork, MissingWeightsError, load_loss_network, parse_loss_spec

#: IDInvert's perceptual weight for VGG16 conv4_3 features of Caffe-scaled ([0, 255]) images.
VGG16_LOSS_WEIGHT = 5e-5
VGG_PREFIX = "vgg16-conv43:"
CLASSIFIER_PREFIX = "classifier:"


class VGG16Perceptual(FeatureNetwork):
    """VGG16 trunk features (``relu4_3`` by default) as in IDInvert, with IDInvert's weight 5e-5."""

    def __init__(self, vgg: VGG16Features, loss_weight: float = VGG16_LOSS_WEIGHT) -> None:
        super().__init__()
        self.vgg = vgg
        self.loss_weight = loss_weight
        self.name = "vgg16-conv43" if vgg.output_layer == "relu4_3" else f"vgg16-{vgg.output_layer}"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.vgg(images)


def default_feature_network(generator: str | Path, resolution: int) -> str | None:
    """The perceptual network to use with ``generator`` (a name, Hub id or folder) when none is named
    (``--feature-net auto`` in the CLI and the app, a folder without ``pipeline.json``): the ``feature_net`` of
    the domain whose naming rule claims the generator (:func:`~idinvert_plugins.domains.domain_for_model`), else
    None, i.e. pixel loss only (VGG16 weights do not ship with the library)."""
    from ..domains import domain_for_model

    domain = domain_for_model(str(generator), int(resolution))
    return domain.feature_net if domain is not None else None


def load_feature_network(spec: str | Path | nn.Module | None, *, device: str | torch.device | None = None,
                         layer: str | None = None, loss_weight: float | None = None,
                         option: str = "--feature-net") -> FeatureNetwork | None:
    """Build a perceptual feature network from a short description, in eval mode.

    ``spec`` is one of:

    * ``None``, ``""`` or ``"none"``: no feature network (returns None);
    * ``"vgg16-conv43:PATH"``: VGG16 up to ``relu4_3`` from ``PATH``, a ``.safetensors`` file in
      torchvision (``features.{idx}.weight``) or official IDInvert (``layer{idx}.weight``) layout, a
      ``.pth`` state dict (read with the restricted unpickler) or a saved model folder; or from a Hub id
      ``org/repo[@revision]`` holding one of :attr:`VGG16Conv43.files`. ``layer`` picks another VGG16 layer
      (e.g. ``"relu3_3"``). VGG16 weights do not ship with this library;
    * a path to such a VGG16 weights file (``.safetensors`` / ``.pth`` / ``.pt``) on its own;
    * ``"classifier:NAME_OR_PATH"`` (a name, folder or Hub id) or just ``NAME_OR_PATH`` of a classifier model
      (e.g. a domain's ``classifier``, :mod:`idinvert_plugins.domains`): its ``features(x, layer)``, ``layer``
      default ``"stage2"``; ``"classifier"`` alone: the default domain's classifier (bundled, offline);
    * ``"NAME:PATH_OR_HUB_ID"`` or ``"NAME"`` of any perceptual network a plugin registered
      (``register_loss_networks``, :mod:`.networks`);
    * a model folder / name of kind ``feature`` (a saved :class:`VGG16Features`);
    * an existing ``nn.Module``: a :class:`FeatureNetwork` is returned as is, a bare
      :class:`VGG16Features` is wrapped.

    ``loss_weight`` overrides the network's recommended weight. ``option`` is how the user passes the spec
    (``--feature-net`` on the command line, ``--set feature_net`` for the trainers): errors about missing
    weights name it.
    """
    net = _build(spec, layer, option)
    if net is None:
        return None
    if loss_weight is not None:
        net.loss_weight = float(loss_weight)
    if device is not None:
        net = net.to(device)
    return net.eval()


def _build(spec: Any, layer: str | None, option: str) -> FeatureNetwork | None:
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none")):
        return None
    if isinstance(spec, FeatureNetwork):
        return spec
    if isinstance(spec, VGG16Features):
        return VGG16Perceptual(spec)
    if isinstance(spec, nn.Module):
        return ClassifierFeatures(spec, layer or DEFAULT_CLASSIFIER_LAYER)
    text = str(spec)
    path = Path(text).expanduser()
    # a registered loss network by NAME:REF or NAME (a bare NAME that exists here as a file or folder stays a path)
    if parse_loss_spec(text) is not None and not (":" not in text and path.exists()):
        net = load_loss_network(text, PERCEPTUAL, option=option, freeze=False,
                                **({"layer": layer} if layer is not None else {}))
        if isinstance(net, VGG16Features):
            return VGG16Perceptual(net)
        if not isinstance(net, FeatureNetwork):
            raise TypeError(f"the perceptual network {text!r} built a {type(net).__name__}, not a FeatureNetwork")
        return net
    if path.is_file():
        if path.suffix in (".safetensors", ".pth", ".pt"):
            return VGG16Perceptual(load_vgg16(path, output_layer=layer or "relu4_3"))
        raise ValueError(f"{path}: unsupported feature-network file type {path.suffix!r} "
                         "(expected a VGG16 .safetensors or .pth)")

    from ..hub import load_model, read_config, resolve_model

    kind = read_config(resolve_model(text).folder)["kind"]
    if kind == "classifier":
        return _classifier(text, layer)
    if kind == "feature":
        model = load_model(text, kind="feature")
        if isinstance(model, VGG16Features):
            if layer is not None and layer != model.output_layer:
                raise ValueError(f"{text} is a VGG16 trunk up to {model.output_layer}, not {layer}")
            return VGG16Perceptual(model)
        if isinstance(model, FeatureNetwork):
            return model
        raise TypeError(f"{text}: a feature model must be a FeatureNetwork or VGG16Features, got "
                        f"{type(model).__name__}")
    raise ValueError(f"{text!r} is a {kind} model; a feature network must be a classifier or a feature model "
                     f"(or use '{VGG_PREFIX}PATH' for VGG16 weights)")


def _classifier(name_or_path: str, layer: str | None) -> ClassifierFeatures:
    from ..hub import load_model

    classifier = load_model(name_or_path, kind="classifier")
    return ClassifierFeatures(classifier, layer or DEFAULT_CLASSIFIER_LAYER)


# -- the built-in perceptual loss networks (registered by idinvert_plugins.builtins.losses) ---------------------
class VGG16Conv43(LossNetwork):
    """``vgg16-conv43:PATH_OR_HUB_ID``: IDInvert's VGG16 ``conv4_3`` features (``layer`` picks another layer)."""

    name = "vgg16-conv43"
    kind = PERCEPTUAL
    description = "IDInvert's perceptual network: VGG16 features up to conv4_3 (after ReLU), weight 5e-5"
    weights = ("VGG16 ImageNet weights (torchvision's vgg16-397923af.pth or IDInvert's vgg16.pth, or a .safetensors "
               "of them; none ship with idinvert-plugins)")
    files = ("vgg16.safetensors", "model.safetensors", "vgg16.pth", "vgg16-397923af.pth")

    def load(self, ref: str | None, *, option: str, alternative: str | None = None, **options: Any) -> nn.Module:
        from ..hub import CONFIG_NAME

        folder = Path(ref).expanduser() if ref else None
        if folder is not None and (folder / CONFIG_NAME).is_file():  # a saved VGG16 model folder
            return self.build(folder, **options)
        return super().load(ref, option=option, alternative=alternative, **options)

    def build(self, path: Path | None, layer: str | None = None) -> nn.Module:
        assert path is not None
        return VGG16Perceptual(load_vgg16(path, output_layer=layer or "relu4_3"))


class ClassifierNetwork(LossNetwork):
    """``classifier:NAME_OR_PATH_OR_HUB_ID``: a classifier model's ``features(x, layer)`` (``stage2`` by
    default); ``classifier`` alone: the default domain's classifier, bundled, so it works offline."""

    name = "classifier"
    kind = PERCEPTUAL
    description = ("a classifier model's features (layer stage2): classifier:NAME_OR_PATH_OR_HUB_ID; 'classifier' "
                   "alone: the default domain's bundled classifier (offline)")

    def load(self, ref: str | None, *, option: str, alternative: str | None = None, **options: Any) -> nn.Module:
        if ref is None:
            from ..domains import get_domain

            domain = get_domain(None)
            if not domain.classifier:
                raise MissingWeightsError(f"the default domain {domain.name!r} has no classifier: pass "
                                          f"{option}=classifier:NAME_OR_PATH_OR_HUB_ID")
            ref = domain.classifier
        return _classifier(ref, options.get("layer"))
