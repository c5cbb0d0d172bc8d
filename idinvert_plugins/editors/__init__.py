"""Editors: the contract (:mod:`.base`) and the built-in editing plugins (one module each)."""

from .base import Editor, EditResult, Param, restrict_layers

__all__ = ["EditResult", "Editor", "Param", "restrict_layers"]
