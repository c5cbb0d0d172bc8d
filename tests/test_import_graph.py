"""The package's import graph: no import cycles, and no module importing a layer above its own.

Every module of ``idinvert_plugins`` is parsed with :mod:`ast` (nothing is imported). An edge A -> B is any
``import``/``from ... import`` of B in A, at module level or inside a function or class (a function-level
import still ties A to B: it runs whenever the function does); imports under ``if TYPE_CHECKING:`` are left
out (they never run). ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to
``pkg``. Imports by string (``importlib.import_module``) are not seen.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "idinvert_plugins"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: The layers, lowest first. A module may import its own layer and the layers below, never one above.
#: Each entry is a module or a package prefix; the longest matching prefix decides. Every module must be
#: listed (a new top-level module or package fails the test until it is placed here).
#:
#: Why this order:
#: 0 foundation - declarations with no dependencies on the rest: the hook specs (the plugin author's manual),
#:   declared parameters, cards, image I/O, the version, the domain contract (domain_spec), and the data
#:   sources: image folders and the toy-face domain (attributes, painter, dataset tables, OOD set, the domain
#:   object and their commands; numpy/PIL only, but for the torch stream of faces rendered on the fly); the
#:   geometry of face alignment (align.transform: the FFHQ quad, its transform, warping and paste-back).
#: 1 models - networks only: no file reading, no registry.
#: 2 registry - the plugin registry and finding/loading registered models by name (hub), and finding the
#:   registered domains (domains). Low, so that any layer above can look a registered kind up or load a named
#:   model.
#: 3 contracts - what an image became (latent, its code files, latent spaces) and the editor/inverter/aligner
#:   contracts.
#: 4 building blocks - checkpoint converters, feature networks, losses, metrics.
#: 5 methods - inverters (embedders, refiners, compositions), editors (directions included) and aligners (the
#:   photo flow of align/, and the toy-face domain's aligner, which runs its landmark network).
#: 6 pipeline - a generator with everything that goes with it; calls the methods.
#: 7 jobs - evaluation and training, which drive pipelines, methods and building blocks (the toy-face domain's
#:   landmark trainer on the core's landmark loop too).
#: 8 front ends and registrations - the CLI, the app, the built-in plugins (they register everything
#:   below), and the package facade ``idinvert_plugins/__init__.py``.
LAYERS: list[list[str]] = [
    ["_version", "hookspecs", "params", "cards", "images", "domain_spec", "data", "toyfaces", "align.transform"],
    ["models"],
    ["plugins", "hub", "loading", "domains"],
    ["latent", "codes", "spaces", "contracts", "inverters.base", "editors.base", "align.base"],
    ["convert", "features", "losses", "metrics"],
    ["inverters", "editors", "directions", "align", "toyfaces.aligner"],
    ["pipeline", "domain"],
    ["evaluation", "training", "toyfaces.train_landmarks"],
    ["", "cli", "cli_common", "cli_edit", "app", "builtins", "align.commands", "cli_folders", "cli_restore"],
]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _owner(target: str, modules: dict[str, Path]) -> str | None:
    """The package module that ``target`` (a dotted name) lives in, or None outside the package."""
    if target != PACKAGE and not target.startswith(PACKAGE + "."):
        return None
    while target not in modules and "." in target:
        target = target.rsplit(".", 1)[0]
    return target if target in modules else None


def imports_of(name: str, path: Path, modules: dict[str, Path] = MODULES) -> set[str]:
    """The package modules ``name`` imports (module and function level, not TYPE_CHECKING-only)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit_node(sub)
                continue
            visit_node(child)

    def visit_node(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                owner = _owner(alias.name, modules)
                if owner:
                    found.add(owner)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                owner = _owner(f"{target}.{alias.name}", modules)
                if owner == f"{target}.{alias.name}":  # a submodule
                    found.add(owner)
                elif (owner := _owner(target, modules)) is not None:
                    found.add(owner)
        else:
            visit(node)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    return {name: imports_of(name, path) for name, path in MODULES.items()}


def layer_of(module: str) -> int:
    """The layer of a module: its longest matching entry in :data:`LAYERS`."""
    rel = module[len(PACKAGE) + 1 :] if module != PACKAGE else ""
    best, best_len = None, -1
    for level, entries in enumerate(LAYERS):
        for entry in entries:
            matches = rel == entry or (entry and rel.startswith(entry + "."))
            if matches and len(entry) > best_len:
                best, best_len = level, len(entry)
    if best is None:
        raise KeyError(f"{module} is in no layer: add it (or its package) to LAYERS in {Path(__file__).name}")
    return best


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def strongconnect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return out


def _short(module: str) -> str:
    return module[len(PACKAGE) + 1 :] or PACKAGE if module != PACKAGE else f"{PACKAGE} (__init__)"


# -- the checker itself --------------------------------------------------------------------------------------
def test_the_parser_sees_every_kind_of_import(tmp_path):
    """Module-level, function-level, relative, absolute and ``from pkg import module`` imports are edges;
    TYPE_CHECKING-only imports are not."""
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from . import b\nfrom .sub import c\n",
        "b.py": "def f():\n    import idinvert_plugins.sub.d\n",
        "sub/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import X\n",
        "sub/c.py": "from ..b import f\nfrom .. import a\n",
        "sub/d.py": "from idinvert_plugins.sub import c as _c\nimport os\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    modules = {module_name(p, pkg): p for p in pkg.rglob("*.py")}
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    p = PACKAGE
    assert graph == {
        p: set(),
        f"{p}.a": {f"{p}.b", f"{p}.sub.c"},
        f"{p}.b": {f"{p}.sub.d"},
        f"{p}.sub": set(),
        f"{p}.sub.c": {f"{p}.b", f"{p}.a"},
        f"{p}.sub.d": {f"{p}.sub.c"},
    }
    assert cycles(graph) == [[f"{p}.a", f"{p}.b", f"{p}.sub.c", f"{p}.sub.d"]]


def test_layer_table_places_modules_by_longest_prefix():
    assert layer_of(f"{PACKAGE}.inverters.base") == 3 < layer_of(f"{PACKAGE}.inverters.optimize") == 5
    assert layer_of(PACKAGE) == len(LAYERS) - 1
    with pytest.raises(KeyError, match="add it"):
        layer_of(f"{PACKAGE}.no_such_module")


# -- the package -------------------------------------------------------------------------------------------
def test_every_module_has_a_layer():
    missing = [m for m in MODULES if _try_layer(m) is None]
    assert not missing, f"modules in no layer of LAYERS ({Path(__file__).name}): {missing}"


def _try_layer(module: str) -> int | None:
    try:
        return layer_of(module)
    except KeyError:
        return None


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(_short(m) for m in c) for c in found)


def test_no_module_imports_a_layer_above_its_own():
    graph = import_graph()
    upward = []
    for module, targets in sorted(graph.items()):
        mine = _try_layer(module)
        for target in sorted(targets):
            theirs = _try_layer(target)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{_short(module)} (layer {mine}) imports {_short(target)} (layer {theirs})")
    assert not upward, "imports that run up a layer:\n" + "\n".join(upward)
