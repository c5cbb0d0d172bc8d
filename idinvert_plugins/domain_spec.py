"""The domain contract: what an image domain declares so that the core never has to know it by name.

A *domain* is a kind of image the library works on (the bundled one is a procedural face domain; a plugin may
add street scenes, bedrooms, cats). The core asks the domain, never a module of its own, for

* the **attribute schema** (:class:`AttributeSpec` per recorded factor): what a classifier predicts, which
  attributes are editing targets (not ``nuisance``), how a value becomes the 0/1 label of a direction;
* **labelled images by index** (:meth:`Domain.images`) and the train/test split (:meth:`Domain.split_sizes`):
  the evaluation's test images, the trainers' data when no folder is given, the classifier trainer's labels;
* **example images** for the web app (:meth:`Domain.examples`);
* its **default networks**: the attribute classifier, the perceptual network of the optimisers, the generator
  served by default, and the naming rule that ties a model without ``pipeline.json`` to the domain
  (:meth:`Domain.matches`); training presets of the models it ships.

Domains register through the ``register_domains`` hook (see :mod:`idinvert_plugins.hookspecs`) and are looked
up with :mod:`idinvert_plugins.domains`. This module only declares the contract (numpy only, no registry), so
a domain package at the bottom of the import graph can implement it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class AttributeSpec:
    """One recorded factor of a domain's images, described generically enough for a classifier trainer.

    ``values`` is ``(low, high)`` for continuous attributes, ``(0, 1)`` for binary ones and the class names for
    categorical ones (arrays store the class index). ``threshold`` and ``positive`` define the binary label
    used for editing (see :meth:`label`). ``nuisance`` marks factors that vary only to make the data richer;
    the semantic ones are the editing targets.
    """

    name: str
    kind: str  # "binary" | "continuous" | "categorical"
    values: tuple
    description: str
    positive: str = ""
    threshold: float | None = None
    nuisance: bool = False

    @property
    def classes(self) -> tuple[str, ...]:
        if self.kind != "categorical":
            raise AttributeError(f"attribute {self.name!r} is {self.kind}, it has no classes")
        return self.values

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["values"] = list(self.values)
        return d

    def class_index(self, value: str | int) -> int:
        """The class index of a categorical value given as its name or its index."""
        classes = self.classes
        if isinstance(value, str):
            if value not in classes:
                raise ValueError(f"{value!r} is not a class of {self.name!r}; classes: {', '.join(classes)}")
            return classes.index(value)
        value = int(value)
        if not 0 <= value < len(classes):
            raise ValueError(f"class index {value} out of range for {self.name!r} ({len(classes)} classes)")
        return value

    def label(self, value: Any, positive: str | int | None = None) -> Any:
        """A value (scalar or array) as the 0/1 label of an editing direction: continuous values compare with
        ``threshold``, binary ones pass through, categorical ones need ``positive`` (the class counted as 1;
        values may be class names or indices). An int for a scalar, an int64 array for an array."""
        scalar = np.ndim(value) == 0
        if self.kind == "categorical":
            if positive is None:
                raise ValueError(f"{self.name!r} is categorical: pass positive= one of {', '.join(self.classes)}")
            target = self.class_index(positive)
            values = np.asarray(value).reshape(-1)
            codes = np.array([self.class_index(v.item() if hasattr(v, "item") else v) for v in values])
            labels = (codes == target).astype(np.int64).reshape(np.shape(value))
        else:
            if positive is not None:
                raise ValueError(f"positive= only applies to categorical attributes, not {self.name!r}")
            threshold = 0.5 if self.threshold is None else self.threshold
            labels = (np.asarray(value, dtype=np.float64) > threshold).astype(np.int64)
        return int(labels) if scalar else labels


class Domain:
    """An image domain (subclass it, set the class attributes, implement what your domain has).

    Class attributes:

    * ``name`` - registry name (``idinvert evaluate --domain NAME``, ``pipeline.json`` ``"domain"``);
    * ``title`` - what its images are, plural, for messages ("street scenes"); ``adjective`` - the same as a
      modifier ("street-scene"; default: ``title``);
    * ``description`` - one line for ``idinvert plugins``;
    * ``attributes`` - :class:`AttributeSpec` per recorded factor (the classifier's heads, in order);
    * ``visible_when`` - ``{attribute: (parent, parent class indices)}``: attributes only visible on some
      images (glasses' colour only with glasses), trained and scored only there;
    * ``classifier`` - model name of its attribute classifier (None: none);
    * ``feature_net`` - the optimisers' perceptual network, in the forms of
      :func:`~idinvert_plugins.losses.load_feature_network` (e.g. ``"classifier:NAME"``); None: pixel loss;
    * ``resolution`` - the resolution those two networks see (the naming rule below requires it);
    * ``model_prefix`` - a generator folder or model name starting with it belongs to the domain when it has
      no ``pipeline.json`` naming one (:meth:`matches`);
    * ``default_generator`` - the model ``idinvert app`` serves when none is named;
    * ``alignment`` - ``{"aligner": NAME, "template": NAME}`` for photos of its models when their
      ``pipeline.json`` names none (:mod:`idinvert_plugins.align`);
    * ``templates`` - ``{name: fields of idinvert_plugins.align.Template}``: named alignment templates for the
      framing of its images (``alignment``, ``pipeline.json`` and ``--template NAME`` may name them);
    * ``gan_presets`` / ``encoder_presets`` / ``style_encoder_presets`` - named training presets of its models
      (``idinvert train-gan --preset NAME``; ``train-encoder`` for IDInvert's encoders and for pSp / e4e /
      ReStyle), with ``default_gan_preset`` / ``default_encoder_preset`` / ``default_style_encoder_preset``.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    adjective: ClassVar[str] = ""
    description: ClassVar[str] = ""
    attributes: ClassVar[Sequence[AttributeSpec]] = ()
    visible_when: ClassVar[Mapping[str, tuple[str, tuple[int, ...]]]] = {}
    classifier: ClassVar[str | None] = None
    feature_net: ClassVar[str | None] = None
    resolution: ClassVar[int | None] = None
    model_prefix: ClassVar[str | None] = None
    default_generator: ClassVar[str | None] = None
    alignment: ClassVar[Mapping[str, str]] = {}
    templates: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    gan_presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    encoder_presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    style_encoder_presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    default_gan_preset: ClassVar[str | None] = None
    default_encoder_preset: ClassVar[str | None] = None
    default_style_encoder_preset: ClassVar[str | None] = None

    # -- data (override what the domain has) ---------------------------------------------------------------
    def images(self, seed: int, indices: Sequence[int], resolution: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Labelled images ``indices`` of the dataset with ``seed``: ``uint8 [N, R, R, 3]`` and one array per
        attribute (continuous float64, binary int64, categorical int64 class indices). The same
        ``(seed, index)`` must always give the same image. A domain without such a source raises
        :class:`NotImplementedError` (the default): then its trainers need a folder of images."""
        raise NotImplementedError(f"domain {self.name!r} has no labelled image source: give an image folder "
                                  "(--data DIR) instead")

    def split_sizes(self, n: int) -> dict[str, int]:
        """``{"train": ..., "test": ...}`` for a dataset of ``n`` images: the first images train, the last test
        (default: all train but one in 14, FFHQ's 5,000 of 70,000)."""
        if n < 1:
            raise ValueError(f"a dataset needs at least one image, got n={n}")
        test = min(n, max(1, round(n * 5000 / 70000)))
        return {"train": n - test, "test": test}

    def split_of(self, index: int, n: int) -> str:
        """``"train"`` or ``"test"`` for image ``index`` of ``n`` (see :meth:`split_sizes`)."""
        if not 0 <= index < n:
            raise IndexError(f"index {index} outside a dataset of {n} images")
        return "train" if index < self.split_sizes(n)["train"] else "test"

    def examples(self, resolution: int) -> list[tuple[str, str, np.ndarray]]:
        """``(key, label, uint8 [R, R, 3] image)`` of the example images the web app offers (``key`` names the
        cached file). Default: the first four test images of :meth:`images`, or none."""
        try:
            start = self.split_sizes(70000)["train"]
            images, _ = self.images(0, range(start, start + 4), resolution)
        except NotImplementedError:
            return []
        return [(f"test-{start + i}", f"test image {start + i}", image) for i, image in enumerate(images)]

    # -- derived (no need to override) -------------------------------------------------------------------
    @property
    def attribute_specs(self) -> dict[str, AttributeSpec]:
        """``{name: spec}`` of :attr:`attributes`."""
        return {s.name: s for s in self.attributes}

    @property
    def semantic_attributes(self) -> list[str]:
        """The editing targets: the attributes that are not nuisance factors."""
        return [s.name for s in self.attributes if not s.nuisance]

    @property
    def label(self) -> str:
        """:attr:`adjective`, else :attr:`title`, else :attr:`name` (for prose)."""
        return self.adjective or self.title or self.name

    def binary_label(self, name: str, value: Any, positive: str | int | None = None) -> Any:
        """:meth:`AttributeSpec.label` of attribute ``name``."""
        spec = self.attribute_specs.get(name)
        if spec is None:
            raise KeyError(f"unknown attribute {name!r} of domain {self.name!r}")
        return spec.label(value, positive)

    def class_names(self, name: str, num_classes: int) -> list[str]:
        """Names of a categorical attribute's classes when the schema has ``num_classes`` of them, else the
        indices as strings."""
        spec = self.attribute_specs.get(name)
        if spec is not None and spec.kind == "categorical" and len(spec.values) == num_classes:
            return [str(c) for c in spec.values]
        return [str(i) for i in range(num_classes)]

    def matches(self, model: str, resolution: int | None = None) -> bool:
        """Does generator ``model`` (a name, ``org/name@revision`` Hub id or folder) belong to this domain by
        its naming rule: its last path component starts with :attr:`model_prefix`, at :attr:`resolution`?"""
        if not self.model_prefix:
            return False
        base = PurePosixPath(str(model).replace("\\", "/").rstrip("/").split("@")[0]).name
        if not base.startswith(self.model_prefix):
            return False
        return resolution is None or self.resolution is None or int(resolution) == int(self.resolution)

    def presets(self, kind: str) -> Mapping[str, Mapping[str, Any]]:
        """The training presets of ``kind``: ``"gan"``, ``"encoder"`` (IDInvert's encoders) or ``"style_encoder"``
        (pSp, e4e, ReStyle)."""
        tables = {"gan": self.gan_presets, "encoder": self.encoder_presets,
                  "style_encoder": self.style_encoder_presets}
        if kind not in tables:
            raise ValueError(f"preset kind must be one of {', '.join(tables)}, got {kind!r}")
        return tables[kind]

    def __repr__(self) -> str:
        return f"<domain {self.name!r}: {len(self.attributes)} attributes, classifier {self.classifier!r}>"


def check_domain(domain: Domain) -> None:
    """Raise ``TypeError`` naming the problem when a registered domain breaks the contract."""
    if not domain.name or not isinstance(domain.name, str):
        raise TypeError(f"a domain needs a `name` (a non-empty string), got {domain.name!r}")
    for spec in domain.attributes:
        if not isinstance(spec, AttributeSpec):
            raise TypeError(f"domain {domain.name!r}: attributes must be AttributeSpec objects, got {spec!r}")
        if spec.kind not in ("binary", "continuous", "categorical"):
            raise TypeError(f"domain {domain.name!r}: attribute {spec.name!r} has kind {spec.kind!r}; the kinds are "
                            "binary, continuous, categorical")
    names = [s.name for s in domain.attributes]
    if len(set(names)) != len(names):
        raise TypeError(f"domain {domain.name!r}: attribute names must be unique, got {names}")
    for child, (parent, _) in domain.visible_when.items():
        if child not in names or parent not in names:
            raise TypeError(f"domain {domain.name!r}: visible_when {child!r} -> {parent!r} names an attribute it "
                            "does not declare")
    for name, fields in domain.templates.items():
        if not name or not isinstance(name, str) or not (isinstance(fields, Mapping) or hasattr(fields, "to_dict")):
            raise TypeError(f"domain {domain.name!r}: templates must map a name to a template's fields (a dict with "
                            f"scale, shift, mask_center, ...), got {name!r}: {fields!r}")


__all__ = ["AttributeSpec", "Domain", "check_domain"]
