"""Editors: the contract (:mod:`.base`) and the built-in editing plugins (one module each)."""

from .base import EditResult, Editor, Param, restrict_layers

__all__ = ["EditResult", "Editor", "Param", "restrict_layers"]
