"""The Invert tab's *Options of the method*: every inverter's declared parameters as controls.

The iterations slider covers ``steps``; every other parameter an inverter declares (its stages' options: PTI's
``tune`` and ``shared``, Image2StyleGAN++'s ``switch_every`` and noise regularisation, inpainting's ``hole``,
crossover's ``other`` image and ``region``, super-resolution's ``factor``, ...) gets a control drawn from its
declaration (:func:`~idinvert_plugins.app.controls.build_controls`), in a group shown while that method is chosen.
A mask parameter is painted over the image being inverted. Run options that do not change the result
(:data:`HIDDEN`) are left out.

Changing a control stores the group's raw values in the session (:attr:`Session.inverter_options`, one endpoint
per method, ``/options_<method>``); pressing *Invert* decodes the chosen method's values and passes them to the
inverter, so ``/invert`` keeps its four inputs and a method whose options were never touched runs with its
declared defaults.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..models.base import Generator
from ..params import Param
from ..plugins import get_plugins
from .controls import Control, DecodeContext, build_controls, components_of, decode_controls, mask_background
from .session import AppError, Session

#: parameters without a control here: the iterations slider (steps) and run options that leave the result alone
HIDDEN = frozenset({"steps", "chunk_size", "autocast", "feature_autocast"})


def option_params(inverter: Any) -> list[Param]:
    """The declared parameters of ``inverter`` that get a control (all but :data:`HIDDEN`)."""
    return [p for p in getattr(inverter, "params", ()) if p.name not in HIDDEN]


def slug(method: str) -> str:
    """A method name as an endpoint/element-id fragment (``image2stylegan++`` -> ``image2stylegan_pp``)."""
    return re.sub(r"[^0-9a-zA-Z_]+", "_", method.replace("+", "_p")).strip("_")


@dataclass
class OptionPanels:
    """The option groups of the Invert tab: per method, its group and its controls."""

    groups: dict[str, Any] = field(default_factory=dict)
    controls: dict[str, list[Control]] = field(default_factory=dict)

    def visibility(self, method: str) -> list[Any]:
        """Updates showing the group of ``method`` and hiding the others (in :attr:`groups` order)."""
        return [gr.update(visible=name == method) for name in self.groups]

    def decode(self, session: Session, method: str, ctx: DecodeContext) -> dict[str, Any]:
        """The options of ``method`` the user set (decoded from the stored raw values; none stored: {})."""
        raw = session.inverter_options.get(method)
        if raw is None or method not in self.controls:
            return {}
        try:
            return decode_controls(self.controls[method], raw, ctx)
        except ValueError as exc:  # stored for another page (a changed plugin set): start from the defaults
            if isinstance(exc, AppError):
                raise
            session.inverter_options.pop(method, None)
            return {}

    def masks(self) -> list[Any]:
        """Every mask component of every group (painted over the image being inverted)."""
        return [c.components[0] for controls in self.controls.values() for c in controls if c.param.kind == "mask"]


def build_option_panels(methods: Sequence[str], default: str, G0: Generator, examples: Sequence[str] = ()
                        ) -> OptionPanels:
    """Draw, inside the current layout, an accordion with one group of controls per method that declares options
    beyond the iterations (visible: ``default``'s)."""
    panels = OptionPanels()
    plugins = get_plugins()
    with gr.Accordion("Options of the method", open=False, elem_id="inverter-options"):
        gr.Markdown("Declared by the chosen method; untouched options keep their defaults. A mask is painted over "
                    "the image to invert (inpainting: paint the hole; crossover: the region kept from this image).")
        for name in methods:
            params = option_params(plugins.get("inverter", name))
            if not params:
                continue
            with gr.Group(visible=name == default, elem_id=f"options-{slug(name)}") as group:
                controls = build_controls(f"invert-{slug(name)}", params, G0, examples=examples)
            panels.groups[name] = group
            panels.controls[name] = controls
    return panels


def wire_option_panels(panels: OptionPanels, state: Any, image_in: Any, method: Any,
                       guard: Callable[[Callable[..., Any]], Callable[..., Any]],
                       resolution_of: Callable[[Session], int]) -> None:
    """Events: choosing a method shows its group; changing a control stores the group's raw values in the session;
    a new image to invert becomes the background of every mask."""
    if panels.groups:
        method.change(lambda name: panels.visibility(name), [method], list(panels.groups.values()),
                      api_visibility="private", queue=False)
    for name, controls in panels.controls.items():
        components = components_of(controls)

        def store(session: Session, *values: Any, name: str = name) -> Session:
            session.inverter_options[name] = list(values)
            return session

        gr.on([c.change for c in components], guard(store), [state, *components], [state],
              api_name=f"options_{slug(name)}", preprocess=False, queue=False)
    masks = panels.masks()
    if masks:
        def backgrounds(session: Session, payload: Any) -> list[Any]:
            shown = mask_background(payload, resolution_of(session))
            return [shown for _ in masks]

        image_in.change(guard(backgrounds), [state, image_in], masks, preprocess=False, api_visibility="private")


__all__ = ["HIDDEN", "OptionPanels", "build_option_panels", "option_params", "slug", "wire_option_panels"]
