"""Toy faces rendered on the fly as a PyTorch ``IterableDataset`` (:class:`ToyFacesStream`, the toy-face
:class:`~idinvert_plugins.data.folders.DomainStream`)."""

from __future__ import annotations

from typing import Any

from ..data.folders import DomainStream
from .attributes import DEFAULT_RESOLUTION
from .domain import ToyFacesDomain
from .painter import _check_resolution


class ToyFacesStream(DomainStream):
    """Toy faces ``start .. stop-1`` of the dataset with ``seed``, rendered on the fly; ``index`` is the face's
    index in the dataset (``sample_attributes(seed, index)`` gives its attributes). Sharding, shuffling and
    ``with_attributes`` as :class:`~idinvert_plugins.data.folders.DomainStream`."""

    def __init__(self, seed: int = 0, start: int = 0, stop: int | None = None,
                 resolution: int = DEFAULT_RESOLUTION, **kwargs: Any) -> None:
        _check_resolution(resolution)
        super().__init__(ToyFacesDomain(), seed, start, stop, resolution, **kwargs)

    @classmethod
    def from_split(cls, n: int, split: str = "train", seed: int = 0, **kwargs: Any) -> ToyFacesStream:
        """The ``"train"`` or ``"test"`` part of an ``n``-image dataset (:func:`split_of` rule)."""
        start, stop = cls.split_range(ToyFacesDomain(), n, split)
        return cls(seed, start, stop, **kwargs)


__all__ = ["ToyFacesStream"]
