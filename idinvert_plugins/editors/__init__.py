"""Editors: the contract (:mod:`.base`) and the built-in editing plugins (one module each)."""

from .base import CONTEXT_COMPONENTS, EditContext, Editor, EditResult, Param, restrict_layers

__all__ = ["CONTEXT_COMPONENTS", "EditContext", "EditResult", "Editor", "Param", "restrict_layers"]
