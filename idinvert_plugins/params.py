"""Declared parameters: what an editor or inverter takes, with kinds and ranges a UI can render.

Editors and inverters both declare a tuple of :class:`Param`; :func:`resolve_params` fills defaults and
validates a call's values against it, so the CLI, the Gradio app and Python callers get the same checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

ParamKind = Literal["float", "int", "bool", "choice", "layers", "code", "image", "mask", "direction"]
PARAM_KINDS: tuple[str, ...] = get_args(ParamKind)


@dataclass(frozen=True)
class Param:
    """One declared editor parameter.

    ``kind`` tells a UI which control to draw: ``float``/``int`` (slider from ``min`` to ``max`` by
    ``step``), ``bool`` (checkbox), ``choice`` (dropdown of ``choices``), ``layers`` (a ``(start, stop)``
    layer range; ``None`` = all layers), ``code`` (a second latent code, e.g. another inverted image),
    ``image``/``mask`` (pictures), ``direction`` (a named direction file).
    """

    name: str
    kind: ParamKind
    default: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()
    help: str = ""
    required: bool = False

    def __post_init__(self) -> None:
        if self.kind not in PARAM_KINDS:
            import difflib

            close = difflib.get_close_matches(str(self.kind), PARAM_KINDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"parameter {self.name!r} has unknown kind {self.kind!r}{hint}; valid kinds: "
                             f"{', '.join(PARAM_KINDS)}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"parameter {self.name!r} is a choice but declares no choices: pass choices=(...)")

    def validate(self, value: Any) -> Any:
        """Check ``value`` against the declaration and return it normalised."""
        if value is None:
            if self.required:
                raise ValueError(f"parameter {self.name!r} is required ({self.help or self.kind})")
            return None
        if self.kind in ("float", "int"):
            try:
                value = float(value) if self.kind == "float" else int(value)
            except (TypeError, ValueError):
                raise ValueError(f"parameter {self.name!r} must be a number, got {value!r}") from None
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                raise ValueError(f"parameter {self.name!r}={value} is outside [{self.min}, {self.max}]")
        elif self.kind == "bool":
            value = bool(value)
        elif self.kind == "choice" and value not in self.choices:
            raise ValueError(f"parameter {self.name!r}={value!r} is not one of {list(self.choices)}")
        return value

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, (), "")}


def parse_assignments(items: Sequence[str] | None, flag: str = "--set") -> dict[str, Any]:
    """``["steps=50", "l_dom=0", "autocast=true", "layers=[0, 4]"]`` -> ``{"steps": 50, ...}``: each value is
    read as JSON when it parses (numbers, true/false, null, lists), else kept as text; ``none`` means None.
    The command line's ``--set KEY=VALUE`` options."""
    import json

    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} steps=50")
        text = text.strip()
        if text.lower() in ("none", "null"):
            value: Any = None
        else:
            try:
                value = json.loads(text.lower() if text.lower() in ("true", "false") else text)
            except json.JSONDecodeError:
                value = text
        out[key.strip()] = value
    return out


def resolve_params(declared: Sequence[Param], values: dict[str, Any], owner: str) -> dict[str, Any]:
    """Fill defaults and validate ``values``; unknown names are an error naming ``owner`` (e.g.
    ``"editor 'interpolate'"``) and listing the declared parameters."""
    by_name = {p.name: p for p in declared}
    unknown = set(values) - set(by_name)
    if unknown:
        raise ValueError(f"{owner} has no parameter(s) {sorted(unknown)}; it takes {sorted(by_name)}")
    return {name: p.validate(values.get(name, p.default)) for name, p in by_name.items()}
