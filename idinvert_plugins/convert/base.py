"""What a checkpoint-format converter is.

A converter turns an official checkpoint (already loaded *safely*, i.e. a dict of tensors and plain
containers, never an arbitrary unpickled object) into one or more :class:`Converted` networks in this
library's own layout. Converters register through the ``register_converters`` hook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Converted:
    """One network extracted from a checkpoint, ready to be written as a model folder."""

    kind: str  # "generator", "encoder", "discriminator"
    architecture: str  # registered architecture name, e.g. "stylegan2"
    args: dict[str, Any]  # constructor arguments: ``cls(**args)`` rebuilds the network
    state_dict: dict[str, torch.Tensor]  # in this library's key layout; loads strictly into ``cls(**args)``
    source_format: str  # e.g. "rosinality"
    notes: dict[str, Any] = field(default_factory=dict)  # free-form facts for the model card (license, ...)
    #: write this network into ``out_dir/subfolder`` (a pipeline's component) instead of a sibling folder
    subfolder: str | None = None
    #: the ``pipeline.json`` to write beside this network (the first one, a generator), e.g. naming its encoder
    pipeline: dict[str, Any] | None = None


class CheckpointFormat:
    """Base class of converters. ``name`` is what ``idinvert convert --format NAME`` selects."""

    name: str = ""
    description: str = ""

    def sniff(self, ckpt: Any) -> bool:
        """True if ``ckpt`` (the safely loaded file content) is in this format."""
        raise NotImplementedError

    def convert(self, ckpt: Any) -> list[Converted]:
        """Convert ``ckpt``; the first entry is the network a plain ``load_generator`` should load."""
        raise NotImplementedError
