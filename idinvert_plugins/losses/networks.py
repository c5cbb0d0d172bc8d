"""Loss networks as plugins: the perceptual (feature) and identity networks that losses compare images with.

A plugin registers a :class:`LossNetwork` under a name (hook ``register_loss_networks``,
:mod:`idinvert_plugins.hookspecs`). A spec string names one and where its weights are:

* ``NAME:REF`` - the loss network ``NAME``, its weights from ``REF``: a local file, a local folder holding one of
  the network's :attr:`LossNetwork.files`, or a Hugging Face Hub id ``org/repo[@revision]``, from which the first
  of those files the repo has is downloaded (or read from the cache: ``HF_HOME``, ``HF_HUB_CACHE`` and
  ``HF_HUB_OFFLINE`` apply; :func:`idinvert_plugins.hub.resolve_file`). A network may read ``REF`` otherwise
  (``classifier:REF`` takes a model name, folder or Hub id);
* ``NAME`` alone - a network that needs no weights file; for one that does, the error names the file and the
  option to pass (e.g. ``--set id_net=arcface-ir-se50:PATH``).

Two kinds: **perceptual** networks build a :class:`~idinvert_plugins.features.FeatureNetwork` (images in [-1, 1]
-> features, compared by ``mean((F(x) - F(y))^2)``; read by
:func:`~idinvert_plugins.losses.load_feature_network`, i.e. every ``feature_net`` option), **identity** networks an
``nn.Module`` from images in [-1, 1] (``[N, 3, R, R]``, the generator's framing) to identity embeddings ``[N, D]``
(the loss is ``1 - cos``; read by :func:`load_identity_network`, the style-encoder trainer's ``id_net``).

Built in (``idinvert_plugins.builtins.losses``): ``vgg16-conv43`` and ``classifier`` (perceptual,
:mod:`.perceptual`), ``arcface-ir-se50`` (identity, :mod:`.identity`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..hub import ModelNotFoundError, resolve_file

PERCEPTUAL = "perceptual"
IDENTITY = "identity"
#: the kinds of loss networks, and the option each is usually passed with (for error messages)
LOSS_NETWORK_KINDS: dict[str, str] = {PERCEPTUAL: "feature_net", IDENTITY: "id_net"}
#: the registry kind of :class:`LossNetwork` items
REGISTRY_KIND = "loss_network"
#: the identity network a bare ``id_net=PATH`` (no ``NAME:``) means
DEFAULT_IDENTITY_NETWORK = "arcface-ir-se50"


class MissingWeightsError(ModelNotFoundError):
    """A loss network's weights were not given or not found; the message names the file and the option."""


class LossNetwork:
    """A named loss network a plugin provides: how to build it from a weights file (or from nothing).

    Set ``name`` (unique), ``kind`` (``"perceptual"`` or ``"identity"``), ``description``, ``weights`` (the weights
    it needs, in words, e.g. ``"model_ir_se50.pth of TreB1eN/InsightFace_Pytorch"``; None: it needs no file) and
    ``files`` (the names its weights file has in a folder or a Hub repo, tried in order), and implement
    :meth:`build`. Override :meth:`load` to read ``REF`` other than as a weights file.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = PERCEPTUAL
    description: ClassVar[str] = ""
    weights: ClassVar[str | None] = None
    files: ClassVar[tuple[str, ...]] = ()

    def build(self, path: Path | None, **options: Any) -> nn.Module:
        """The network from its weights file ``path`` (None when it needs none and none was given); ``options``:
        ``layer`` for perceptual networks when the caller asks for one."""
        raise NotImplementedError

    def load(self, ref: str | None, *, option: str, alternative: str | None = None, **options: Any) -> nn.Module:
        """The network for the spec ``NAME:REF`` (``ref`` None for ``NAME`` alone): its weights file resolved
        by :meth:`weights_file`, then :meth:`build`. ``option`` (e.g. ``--set id_net``) and ``alternative``
        (e.g. ``--set l_id=0``) go into the messages when weights are missing."""
        if ref is None and self.weights is None:
            return self.build(None, **options)
        return self.build(self.weights_file(ref, option=option, alternative=alternative), **options)

    def weights_file(self, ref: str | None, *, option: str, alternative: str | None = None) -> Path:
        """The local weights file for ``ref`` (a file, a folder with one of :attr:`files`, or a Hub id); a
        :class:`MissingWeightsError` naming the file and the option when there is none."""
        what = self.weights or f"the weights of {self.name}"
        hub = (f" or {option}={self.name}:ORG/REPO[@REVISION] (a Hugging Face Hub repo holding "
               f"{' or '.join(self.files)})") if self.files else ""
        fix = f"pass {option}={self.name}:PATH{hub}" + (f", or {alternative}" if alternative else "")
        if not ref:
            raise MissingWeightsError(f"the {self.kind} network {self.name!r} needs {what}, and none were given: "
                                      f"download them and {fix}")
        try:
            return resolve_file(ref, self.files, what=f"{self.name} weights")
        except ModelNotFoundError as exc:
            raise MissingWeightsError(f"{exc}. The {self.kind} network {self.name!r} needs {what}: {fix}") from None

    def __repr__(self) -> str:
        return f"<{self.kind} loss network {self.name!r}>"


def check_loss_network(obj: Any) -> None:
    """The registration check of ``register_loss_networks``: a :class:`LossNetwork` with a name and a known
    kind."""
    if not isinstance(obj, LossNetwork):
        raise TypeError(f"register_loss_networks expects an instance of "
                        f"idinvert_plugins.losses.networks.LossNetwork, got {obj!r}")
    if obj.kind not in LOSS_NETWORK_KINDS:
        raise TypeError(f"loss network {obj.name!r} has kind {obj.kind!r}; known kinds: "
                        f"{', '.join(LOSS_NETWORK_KINDS)}")
    if ":" in obj.name:
        raise TypeError(f"loss network name {obj.name!r} must not contain ':' (it separates NAME:PATH)")


def loss_networks(kind: str | None = None) -> list[LossNetwork]:
    """The registered loss networks (of ``kind``), by name."""
    from ..plugins import get_plugins

    found = [r.obj for r in get_plugins().registered(REGISTRY_KIND)]
    return [n for n in found if kind is None or n.kind == kind]


def parse_loss_spec(spec: str) -> tuple[LossNetwork, str | None] | None:
    """``(network, ref)`` when ``spec`` is ``NAME`` or ``NAME:REF`` of a registered loss network, else None (the
    spec is something else: a path, a model name, a Hub id)."""
    from ..plugins import get_plugins

    table = get_plugins().items.get(REGISTRY_KIND, {})
    text = str(spec).strip()
    name, sep, ref = text.partition(":")
    if name not in table:
        return None
    return table[name].obj, (ref.strip() or None) if sep else None


def load_loss_network(spec: str, kind: str, *, option: str | None = None, alternative: str | None = None,
                      device: str | torch.device | None = None, freeze: bool = True, **options: Any) -> nn.Module:
    """Build the registered loss network named by ``spec`` (``NAME`` or ``NAME:REF``), which must be of ``kind``;
    in eval mode (``freeze``: also without parameter gradients), on ``device``. ``option`` names the option the
    user passes it with (default ``--set feature_net`` / ``--set id_net``), for the errors."""
    if kind not in LOSS_NETWORK_KINDS:
        raise ValueError(f"unknown loss-network kind {kind!r}; known: {', '.join(LOSS_NETWORK_KINDS)}")
    option = option or f"--set {LOSS_NETWORK_KINDS[kind]}"
    parsed = parse_loss_spec(spec)
    if parsed is None:
        known = ", ".join(n.name for n in loss_networks(kind)) or "(none)"
        raise ValueError(f"{spec!r} names no registered {kind} network; known: {known} (`idinvert plugins` lists "
                         f"them). Pass {option}=NAME:PATH_OR_HUB_ID")
    net, ref = parsed
    if net.kind != kind:
        def a(word: str) -> str:
            return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"

        raise ValueError(f"{net.name!r} is {a(net.kind)} network, not {a(kind)} one; {option} needs one of: "
                         f"{', '.join(n.name for n in loss_networks(kind))}")
    module = net.load(ref, option=option, alternative=alternative, **options)
    if not isinstance(module, nn.Module):
        raise TypeError(f"loss network {net.name!r} built a {type(module).__name__}, not an nn.Module")
    if device is not None:
        module = module.to(device)
    return module.eval().requires_grad_(False) if freeze else module.eval()


def load_identity_network(spec: str, *, device: str | torch.device | None = None, option: str = "--set id_net",
                          alternative: str | None = "--set l_id=0") -> nn.Module:
    """The identity network of an ``id_net`` spec: ``NAME:REF`` / ``NAME`` of a registered identity network, or
    a bare path or Hub id, which means ``arcface-ir-se50:REF`` (ArcFace IR-SE50 weights). Frozen, eval mode."""
    text = str(spec).strip()
    if parse_loss_spec(text) is None:
        text = f"{DEFAULT_IDENTITY_NETWORK}:{text}"
    return load_loss_network(text, IDENTITY, option=option, alternative=alternative, device=device)


__all__ = ["DEFAULT_IDENTITY_NETWORK", "IDENTITY", "LOSS_NETWORK_KINDS", "LossNetwork", "MissingWeightsError",
           "PERCEPTUAL", "REGISTRY_KIND", "check_loss_network", "load_identity_network", "load_loss_network",
           "loss_networks", "parse_loss_spec"]
