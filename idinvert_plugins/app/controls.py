"""Gradio controls drawn from declared parameters (:class:`~idinvert_plugins.params.Param`).

Every editor's controls in the app come from its ``params`` alone, so an editor from ``hooks/`` or an entry
point appears with working controls. Kinds map to components:

============  ===============================================================================================
``float``     slider over ``[min, max]`` by ``step`` (a number box when the range is open or too fine)
``int``       the same, whole numbers; parameters named ``*layer*`` are bounded by the model's W+ length,
              ``center_x`` / ``center_y`` / ``crop_size`` by its resolution
``bool``      checkbox (a default / on / off choice when the default is None, i.e. "let the editor decide")
``choice``    dropdown of ``choices``
``layers``    two sliders, first and last+1 W+ layer (the full range means "all layers")
``code``      where the second code comes from: the second image, the average face or a random face (seed)
``image``     an upload, cropped and resized like the main image
``mask``      a drawing canvas; painted pixels are the region (its background follows the editor's image)
``direction`` dropdown of the model's saved directions
============  ===============================================================================================

A number parameter with no default and no natural value for the model (``None``) becomes a text box whose
empty value means "the editor's default".

The Edit tab's direction sliders are grouped here too (:func:`group_directions`): attributes (binary and
continuous), categorical attributes by family (``hair_color-*``, ``background-*``, ...) and unsupervised
components (``sefa_*``, ``ganspace_*``), each slider labelled clean / weak / not measured from the cross-talk
recorded in the directions folder's ``summary.json``. Gradio components are static, so the app draws a fixed
pool of group slots (:class:`SlotPlan`) and :func:`assign_slots` fills it for the model shown.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from ..editors.crosstalk import CLEAN_RATIO, CLEAN_SUCCESS
from ..editors.directions import read_summary
from ..images import MAX_PIXELS
from ..models.base import Generator
from ..params import Param
from .models import ModelBundle
from .session import AppError, Session, display, payload_path, read_image

log = logging.getLogger(__name__)

CODE_SOURCES = ("second image", "average face", "random face")
#: finest slider: more positions than this and a number box is drawn instead
MAX_SLIDER_POSITIONS = 100_000
#: values for ``None`` defaults that depend on the model, mirroring what the built-in editors do with None
CONTEXT_DEFAULTS: dict[tuple[str, str], Callable[[Generator], Any]] = {
    ("style-mix", "start_layer"): lambda G: G.num_layers // 2,
    ("diffuse", "center_x"): lambda G: G.resolution // 2,
    ("diffuse", "center_y"): lambda G: G.resolution // 2,
    ("diffuse", "crop_size"): lambda G: round(G.resolution * 110 / 256),
}


@dataclass
class DecodeContext:
    """What decoding needs besides the raw values: the model and the user's session."""

    bundle: ModelBundle
    session: Session


@dataclass
class Control:
    """The components drawn for one parameter and how to turn their values back into the parameter's value."""

    param: Param
    components: list[Any]
    decode: Callable[[list[Any], DecodeContext], Any]


def _bounds(param: Param, G: Generator) -> tuple[float | None, float | None]:
    lo, hi = param.min, param.max
    name = param.name.lower()
    if "layer" in name:
        lo, hi = max(lo or 0, 0), min(hi if hi is not None else G.num_layers, G.num_layers)
    elif name in ("center_x", "center_y"):
        lo, hi = max(lo or 0, 0), min(hi if hi is not None else G.resolution - 1, G.resolution - 1)
    elif name == "crop_size":
        lo, hi = max(lo or 1, 1), min(hi if hi is not None else G.resolution, G.resolution)
    return lo, hi


def _label(param: Param) -> str:
    return param.name.replace("_", " ")


def _number_control(param: Param, G: Generator, default: Any, elem_id: str) -> Control:
    lo, hi = _bounds(param, G)
    is_int = param.kind == "int"
    step = param.step or (1 if is_int else None)
    finite = lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi) and hi > lo
    positions = (hi - lo) / step if finite and step else math.inf
    info = param.help or None
    if default is not None and finite and positions <= MAX_SLIDER_POSITIONS:
        comp = gr.Slider(minimum=lo, maximum=hi, value=min(max(default, lo), hi), step=step, label=_label(param),
                         info=info, elem_id=elem_id)
    elif default is None:  # a text box, because a number box cannot be left empty (it shows 0)
        comp = gr.Textbox(value="", label=_label(param), placeholder="default",
                          info=f"empty: the editor's default. {param.help}".strip(), elem_id=elem_id)
    else:
        comp = gr.Number(value=default, label=_label(param), info=info, minimum=lo, maximum=hi,
                         precision=0 if is_int else None, step=step or 1, elem_id=elem_id)

    def decode(values: list[Any], ctx: DecodeContext) -> Any:
        value = values[0]
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise AppError(f"{param.name}: {value!r} is not a number (leave it empty for the default)") from None
        return int(round(number)) if is_int else number

    return Control(param, [comp], decode)


def _bool_control(param: Param, elem_id: str) -> Control:
    if param.default is None:
        comp = gr.Radio(["default", "on", "off"], value="default", label=_label(param), info=param.help or None,
                        elem_id=elem_id)
        return Control(param, [comp], lambda v, ctx: {"default": None, "on": True, "off": False}.get(v[0]))
    comp = gr.Checkbox(value=bool(param.default), label=_label(param), info=param.help or None, elem_id=elem_id)
    return Control(param, [comp], lambda v, ctx: bool(v[0]))


def _layers_control(param: Param, G: Generator, elem_id: str) -> Control:
    L = G.num_layers
    first, stop = (0, L) if param.default is None else (int(param.default[0]), int(param.default[1]))
    a = gr.Slider(0, L - 1, value=first, step=1, label=f"{_label(param)}: first", elem_id=f"{elem_id}-first",
                  info=param.help or "W+ layers to change")
    b = gr.Slider(1, L, value=stop, step=1, label=f"{_label(param)}: stop (exclusive)", elem_id=f"{elem_id}-stop")

    def decode(values: list[Any], ctx: DecodeContext) -> tuple[int, int] | None:
        start, end = int(values[0]), int(values[1])
        num_layers = ctx.bundle.generator.num_layers
        if (start, end) == (0, num_layers) or (start, end) == (0, L):
            return None
        if not 0 <= start < end <= num_layers:
            raise AppError(f"{param.name}: the layer range [{start}, {end}) is empty or outside [0, {num_layers}); "
                           "the first layer must come before the stop layer")
        return (start, end)

    return Control(param, [a, b], decode)


def decode_code(source: str, seed: Any, ctx: DecodeContext, name: str) -> torch.Tensor:
    """A second W+ code ``[1, L, D]`` from the chosen source."""
    G = ctx.bundle.generator
    if source == "second image":
        if ctx.session.second_code is None:
            raise AppError(f"{name}: invert a second image first (Interpolate tab, 'Second image'), or choose the "
                           "average face or a random face.")
        return ctx.session.second_code[None]
    if source == "average face":
        return G.w_avg.detach().expand(1, G.num_layers, -1).clone()
    if source == "random face":
        seed = int(seed or 0)
        with torch.no_grad():
            return G.to_wplus(G.mapping(G.sample_z(1, seed=seed)))
    raise AppError(f"{name}: unknown code source {source!r}; choose one of {list(CODE_SOURCES)}")


def _code_control(param: Param, elem_id: str, source: str) -> Control:
    radio = gr.Radio(list(CODE_SOURCES), value=source, label=_label(param), info=param.help or None,
                     elem_id=elem_id)
    seed = gr.Number(value=0, precision=0, label=f"{_label(param)}: seed (random face)", elem_id=f"{elem_id}-seed")
    return Control(param, [radio, seed], lambda v, ctx: decode_code(v[0], v[1], ctx, param.name))


def _image_control(param: Param, elem_id: str, examples: Sequence[str], labels: Sequence[str] | None) -> Control:
    comp = gr.Image(type="filepath", image_mode=None, label=_label(param), sources=["upload", "clipboard"],
                    height=256, elem_id=elem_id)
    if examples:
        gr.Examples([[e] for e in examples], inputs=comp, example_labels=list(labels) if labels else None,
                    label=f"Examples for {_label(param)}", examples_per_page=12)

    def decode(values: list[Any], ctx: DecodeContext) -> torch.Tensor | None:
        if values[0] is None and not param.required:
            return None
        return read_image(values[0], ctx.bundle.resolution, what=f"{param.name} image")[0]

    return Control(param, [comp], decode)


def mask_from_editor(payload: Any, resolution: int) -> torch.Tensor | None:
    """The painted pixels of an image-editor value as a ``[R, R]`` 0/1 mask (None if nothing is painted)."""
    if not payload:
        return None
    layers = payload.get("layers") if isinstance(payload, dict) else None
    mask = np.zeros((resolution, resolution), bool)
    for layer in layers or []:
        path = payload_path(layer)
        if not path:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(path) as img:
                    if img.size[0] * img.size[1] > MAX_PIXELS:
                        raise AppError(f"the painted mask is {img.size[0]}x{img.size[1]}: too large")
                    alpha = img.convert("RGBA").getchannel("A").resize((resolution, resolution),
                                                                       Image.Resampling.BOX)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            if isinstance(exc, AppError):
                raise
            raise AppError("the painted mask could not be read; paint it again") from None
        mask |= np.asarray(alpha) > 0
    return torch.tensor(mask, dtype=torch.float32) if mask.any() else None


def _mask_control(param: Param, elem_id: str) -> Control:
    comp = gr.ImageEditor(type="filepath", label=f"{_label(param)}: paint the region", sources=["upload"],
                          brush=gr.Brush(colors=["#ff3030"], color_mode="fixed"), layers=False, transforms=(),
                          height=300, elem_id=elem_id)

    def decode(values: list[Any], ctx: DecodeContext) -> torch.Tensor | None:
        return mask_from_editor(values[0], ctx.bundle.resolution)

    return Control(param, [comp], decode)


def _direction_control(param: Param, names: Sequence[str], elem_id: str) -> Control:
    comp = gr.Dropdown(list(names), value=names[0] if names and param.required else None, label=_label(param),
                       info=param.help or None, elem_id=elem_id)

    def decode(values: list[Any], ctx: DecodeContext) -> Any:
        name = values[0]
        if not name:
            if param.required:
                have = ", ".join(ctx.bundle.directions) or "this model has none yet"
                raise AppError(f"{param.name}: choose a direction ({have}).")
            return None
        if name not in ctx.bundle.directions:
            raise AppError(f"{param.name}: {ctx.bundle.name!r} has no direction {name!r}; it has "
                           f"{sorted(ctx.bundle.directions)}")
        return ctx.bundle.directions[name]

    return Control(param, [comp], decode)


def build_controls(editor_name: str, params: Sequence[Param], generator: Generator, *,
                   direction_names: Sequence[str] = (), examples: Sequence[str] = (),
                   example_labels: Sequence[str] | None = None, code_source: str = "second image") -> list[Control]:
    """Draw the controls of ``params`` (inside the current Gradio layout) for a model like ``generator``."""
    controls = []
    for p in params:
        elem_id = f"{editor_name}-{p.name}".replace("_", "-")
        default = p.default
        if default is None and (editor_name, p.name) in CONTEXT_DEFAULTS:
            default = CONTEXT_DEFAULTS[(editor_name, p.name)](generator)
        if p.kind in ("float", "int"):
            controls.append(_number_control(p, generator, default, elem_id))
        elif p.kind == "bool":
            controls.append(_bool_control(p, elem_id))
        elif p.kind == "choice":
            controls.append(Control(p, [gr.Dropdown(list(p.choices), value=p.default, label=_label(p),
                                                    info=p.help or None, elem_id=elem_id)], lambda v, ctx: v[0]))
        elif p.kind == "layers":
            controls.append(_layers_control(p, generator, elem_id))
        elif p.kind == "code":
            controls.append(_code_control(p, elem_id, code_source))
        elif p.kind == "image":
            controls.append(_image_control(p, elem_id, examples, example_labels))
        elif p.kind == "mask":
            controls.append(_mask_control(p, elem_id))
        elif p.kind == "direction":
            controls.append(_direction_control(p, direction_names, elem_id))
        else:  # an unknown kind from a newer plugin: a text box, passed through as typed
            comp = gr.Textbox(value=None if p.default is None else str(p.default), label=_label(p),
                              info=f"({p.kind}) {p.help}", elem_id=elem_id)
            controls.append(Control(p, [comp], lambda v, ctx: v[0] or None))
    return controls


def components_of(controls: Sequence[Control]) -> list[Any]:
    return [c for control in controls for c in control.components]


def decode_controls(controls: Sequence[Control], values: Sequence[Any], ctx: DecodeContext) -> dict[str, Any]:
    """The flat component values of ``controls`` (in :func:`components_of` order) -> ``{param: value}``;
    ``None`` values are left out so the editor applies its own default."""
    out: dict[str, Any] = {}
    i = 0
    for control in controls:
        n = len(control.components)
        value = control.decode(list(values[i : i + n]), ctx)
        i += n
        if value is not None:
            out[control.param.name] = value
    if i != len(values):
        raise ValueError(f"expected {i} control values, got {len(values)}")
    return out


def mask_background(payload: Any, resolution: int) -> dict[str, Any] | None:
    """An image-editor value whose background is the uploaded image as the model sees it (display size)."""
    if payload_path(payload) is None:
        return None
    image = display(read_image(payload, resolution)[0])
    return {"background": image, "layers": [], "composite": image}


# -- the Edit tab's direction sliders: groups, labels and slots ---------------------------------------------
ATTRIBUTES = "attributes"
UNSUPERVISED = "unsupervised"
UNSUPERVISED_SOURCES = {"sefa": "SeFa", "ganspace": "GANSpace"}
CLEAN = "clean"
WEAK = "weak: drags other attributes"
NOT_MEASURED = "not measured"
CLEAN_RULE = ("*clean*: the target attribute moves the intended way for at least 90 % of faces at the documented "
              "step and no attribute of another family moves more than half as much; *weak*: not clean, mostly "
              "because other attributes move along (a weak direction that moves too few faces says so); *not "
              "measured*: no cross-talk figures in the directions' `summary.json`")
_UNSUPERVISED_NAME = re.compile(r"(sefa|ganspace)_\d+")


@dataclass(frozen=True)
class DirectionSlider:
    """How one direction appears in the Edit tab: its group, whether it is clean, and a line of detail."""

    name: str
    group: str
    status: str  # CLEAN, WEAK or NOT_MEASURED
    info: str
    tag: str = ""  # what the label says after the name (default: the status)

    @property
    def label(self) -> str:
        return f"{self.name} · {self.tag or self.status}"


@dataclass(frozen=True)
class DirectionGroup:
    """A collapsible group of sliders: the attributes, one categorical family, or the unsupervised components."""

    key: str  # ATTRIBUTES, UNSUPERVISED or the family's name (``hair_color``)
    title: str
    sliders: tuple[DirectionSlider, ...]

    def counts(self) -> str:
        """``"2 clean, 3 weak"``: how many sliders have each status (statuses with none left out)."""
        order = (CLEAN, WEAK, NOT_MEASURED)
        short = {CLEAN: "clean", WEAK: "weak", NOT_MEASURED: "not measured"}
        found = [(short[s], sum(d.status == s for d in self.sliders)) for s in order]
        return ", ".join(f"{n} {word}" for word, n in found if n)

    def header(self, part: int = 1, parts: int = 1) -> str:
        n = len(self.sliders)
        where = f", part {part} of {parts}" if parts > 1 else ""
        return f"{self.title}: {n} direction{'s' if n != 1 else ''} ({self.counts()}){where}"


def direction_rows(paths: Mapping[str, str | Path]) -> dict[str, dict[str, Any]]:
    """Each direction's row of the ``summary.json`` next to its file (``{}`` where there is none)."""
    cache: dict[Path, dict[str, Any]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for name, path in paths.items():
        folder = Path(path).parent
        if folder not in cache:
            try:
                cache[folder] = read_summary(folder).get("directions") or {}
            except (OSError, ValueError) as exc:
                log.warning("direction labels: %s", exc)
                cache[folder] = {}
        row = cache[folder].get(name)
        rows[name] = dict(row) if isinstance(row, dict) else {}
    return rows


def _crosstalk(direction: Any, row: Mapping[str, Any]) -> dict[str, Any] | None:
    found = row.get("crosstalk")
    if not isinstance(found, dict):
        found = (getattr(direction, "extra", None) or {}).get("crosstalk")
    return found if isinstance(found, dict) else None


def _group_key(name: str, direction: Any, row: Mapping[str, Any], names: Sequence[str]) -> str:
    source = str(row.get("source") or getattr(direction, "source", "") or "")
    if source.split("-")[0] in UNSUPERVISED_SOURCES or _UNSUPERVISED_NAME.fullmatch(name):
        return UNSUPERVISED
    attribute = row.get("attribute") or getattr(direction, "attribute", None)
    if "-" in name:
        family = name.split("-", 1)[0]
        siblings = sum(n.startswith(f"{family}-") for n in names)
        if family and (attribute == family or (not attribute and siblings > 1)):
            return family
    return ATTRIBUTES


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _detail(name: str, key: str, direction: Any, row: Mapping[str, Any], crosstalk: dict[str, Any] | None) -> str:
    """One line under a slider: what kind of direction it is and its measured cross-talk (or accuracy)."""
    source = str(row.get("source") or getattr(direction, "source", "") or "")
    if key == UNSUPERVISED:
        method = UNSUPERVISED_SOURCES.get(source.split("-")[0]) or UNSUPERVISED_SOURCES.get(name.split("_")[0], "")
        parts = [f"{method} component, no target attribute".strip()]
        if row.get("note"):
            parts.append(str(row["note"]))
    elif key == ATTRIBUTES:
        if _number(row.get("majority")) is not None:
            parts = ["binary attribute"]
        elif "median" in str(row.get("note") or ""):
            parts = ["continuous attribute"]
        else:
            parts = ["attribute"]
    else:
        parts = [f"{name.split('-', 1)[1]} vs the other {key} classes"]
    if crosstalk is not None and isinstance(crosstalk.get("clean"), bool):
        success, step = _number(crosstalk.get("success")), _number(crosstalk.get("step"))
        worst = _number(crosstalk.get("worst"))
        if success is not None:
            parts.append(f"moves the intended way for {success:.0%} of faces" +
                         (f" at step {step:g}" if step is not None else ""))
        if worst is not None:
            other = crosstalk.get("worst_attribute")
            parts.append(f"worst cross-talk {worst:.2f}x the target's change" + (f" ({other})" if other else ""))
        elif "worst" in crosstalk:  # recorded as None: the target does not move the intended way on average
            parts.append("the target does not move the intended way on average")
    else:
        accuracy = _number(row.get("accuracy"))
        if accuracy is None:
            accuracy = _number(getattr(direction, "accuracy", None))
        if accuracy is not None and key != UNSUPERVISED:
            majority = _number(row.get("majority"))
            parts.append(f"held-out accuracy {accuracy:.2f}" + (f" (majority {majority:.2f})" if majority else ""))
    return "; ".join(parts)


def _weak_tag(crosstalk: Mapping[str, Any]) -> str:
    """Why a weak direction is weak: it drags other attributes along (the usual case), or its cross-talk is
    small but it moves too few faces the intended way."""
    worst, success = _number(crosstalk.get("worst")), _number(crosstalk.get("success"))
    if worst is not None and worst <= CLEAN_RATIO and success is not None and success < CLEAN_SUCCESS:
        return f"weak: works on {success:.0%} of faces"
    return WEAK


def _group_title(key: str) -> str:
    if key == ATTRIBUTES:
        return "Attributes (binary and continuous)"
    if key == UNSUPERVISED:
        return "Unsupervised components (SeFa, GANSpace)"
    return f"{key} (categorical: one direction per class)"


def group_directions(directions: Mapping[str, Any], rows: Mapping[str, Mapping[str, Any]] | None = None
                     ) -> list[DirectionGroup]:
    """Sort a model's directions (``{name: Direction}``) into the Edit tab's groups, each slider labelled.

    ``rows`` are the directions' ``summary.json`` rows (:func:`direction_rows`); a row's ``crosstalk.clean``
    (or the same key in the direction file's ``extra``) makes a slider *clean* or *weak*, none *not
    measured*. Groups: the attributes first, then each categorical family by name, then the unsupervised
    components; sliders sorted by name inside a group.
    """
    rows = rows or {}
    names = sorted(directions)
    grouped: dict[str, list[DirectionSlider]] = {}
    for name in names:
        direction, row = directions[name], rows.get(name) or {}
        key = _group_key(name, direction, row, names)
        crosstalk = _crosstalk(direction, row)
        clean = crosstalk.get("clean") if crosstalk is not None else None
        status = NOT_MEASURED if not isinstance(clean, bool) else CLEAN if clean else WEAK
        grouped.setdefault(key, []).append(DirectionSlider(
            name, key, status, _detail(name, key, direction, row, crosstalk),
            _weak_tag(crosstalk) if status == WEAK else ""))
    families = sorted(k for k in grouped if k not in (ATTRIBUTES, UNSUPERVISED))
    order = [k for k in (ATTRIBUTES, *families, UNSUPERVISED) if k in grouped]
    return [DirectionGroup(k, _group_title(k), tuple(grouped[k])) for k in order]


@dataclass(frozen=True)
class SlotPlan:
    """The fixed pool of sliders the Edit tab draws: ``groups`` collapsible groups of ``per_group`` sliders.

    Slider ``k`` of group slot ``g`` is number ``g * per_group + k`` of the flat list (the ``/edit`` API's
    argument order)."""

    groups: int
    per_group: int

    @property
    def size(self) -> int:
        return self.groups * self.per_group

    @classmethod
    def fitting(cls, catalogs: Sequence[Sequence[DirectionGroup]], *, min_per_group: int = 8,
                spare_groups: int = 1) -> SlotPlan:
        """A pool that holds every catalog without splitting a group, plus ``spare_groups`` group slots for
        models first seen later (a larger group is split over several slots then)."""
        per_group = max([min_per_group, *(len(g.sliders) for c in catalogs for g in c)])
        groups = max([1, *(len(c) for c in catalogs)]) + spare_groups
        return cls(groups, per_group)


@dataclass
class SlotAssignment:
    """What each slot of a :class:`SlotPlan` shows for one model."""

    headers: list[str | None]  # per group slot; None: hidden
    opened: list[bool]
    sliders: list[DirectionSlider | None]  # per slider slot (flat); None: hidden
    left_out: list[str]  # directions that did not fit the pool

    @property
    def names(self) -> list[str | None]:
        """The direction name behind each slider slot (None for a hidden slot)."""
        return [s.name if s is not None else None for s in self.sliders]

    def slot(self, name: str) -> int:
        """The flat index of ``name``'s slider."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no slider for direction {name!r}") from None


def assign_slots(groups: Sequence[DirectionGroup], plan: SlotPlan) -> SlotAssignment:
    """Fill the pool group by group; a group larger than a slot continues in the next one ("part 2 of 2").
    Only the attributes group starts open, so the page stays compact."""
    headers: list[str | None] = [None] * plan.groups
    opened = [False] * plan.groups
    sliders: list[DirectionSlider | None] = [None] * plan.size
    left_out: list[str] = []
    g = 0
    for group in groups:
        chunks = [group.sliders[i : i + plan.per_group] for i in range(0, len(group.sliders), plan.per_group)]
        for part, chunk in enumerate(chunks, 1):
            if g >= plan.groups:
                left_out += [s.name for s in chunk]
                continue
            headers[g] = group.header(part, len(chunks))
            opened[g] = group.key == ATTRIBUTES and part == 1
            for k, slider in enumerate(chunk):
                sliders[g * plan.per_group + k] = slider
            g += 1
    return SlotAssignment(headers, opened, sliders, left_out)


__all__ = ["ATTRIBUTES", "CLEAN", "CLEAN_RULE", "CODE_SOURCES", "CONTEXT_DEFAULTS", "NOT_MEASURED", "UNSUPERVISED",
           "WEAK", "Control", "DecodeContext", "DirectionGroup", "DirectionSlider", "SlotAssignment", "SlotPlan",
           "assign_slots", "build_controls", "components_of", "decode_code", "decode_controls", "direction_rows",
           "group_directions", "mask_background", "mask_from_editor"]
