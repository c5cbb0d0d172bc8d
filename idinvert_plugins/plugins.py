"""Plugin discovery and the registry of everything plugins provide.

Load order: built-in plugins, then entry points of the group ``idinvert_plugins``, then ``*.py`` files
of the plugins directories. Every step is isolated: a plugin that fails to import, registers a name that
is already taken, or whose hook raises is recorded as a :class:`PluginProblem` (and reported as a
warning) while the others keep loading. ``IDINVERT_STRICT_PLUGINS=1`` turns problems into errors.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pluggy

from .hookspecs import PROJECT_NAME, IdinvertHookSpecs, hook_names

ENTRY_POINT_GROUP = "idinvert_plugins"
PLUGINS_DIR_ENV = "IDINVERT_PLUGINS_DIR"
LOAD_PLUGINS_ENV = "IDINVERT_LOAD_PLUGINS"
STRICT_ENV = "IDINVERT_STRICT_PLUGINS"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "idinvert_plugins.builtins.core",
    "idinvert_plugins.builtins.stylegan",
    "idinvert_plugins.builtins.stylegan2",
    "idinvert_plugins.builtins.toyfaces",
    "idinvert_plugins.builtins.inversion",
    "idinvert_plugins.builtins.align",
    "idinvert_plugins.builtins.encoders",
    "idinvert_plugins.builtins.metrics",
    "idinvert_plugins.builtins.losses",
)

#: hook name -> the kind of item it registers
HOOK_KINDS: dict[str, str] = {
    "register_generators": "generator",
    "register_networks": "network",
    "register_latent_spaces": "latent_space",
    "register_latent_parts": "latent_part",
    "register_embedders": "embedder",
    "register_refiners": "refiner",
    "register_inverters": "inverter",
    "register_editors": "editor",
    "register_converters": "converter",
    "register_domains": "domain",
    "register_aligners": "aligner",
    "register_metrics": "metric",
    "register_loss_networks": "loss_network",
}
#: hooks that receive something other than a ``register`` callback (see :meth:`Plugins.add_commands`)
SPECIAL_HOOKS: tuple[str, ...] = ("register_commands",)


class PluginError(RuntimeError):
    """A plugin could not be loaded or used (raised in strict mode, or when a broken item is requested)."""


class UnknownNameError(LookupError):
    """A name that no plugin registered; the message lists the known names."""

    def __str__(self) -> str:  # LookupError would repr() a single argument
        return str(self.args[0]) if self.args else ""


class PluginWarning(UserWarning):
    """Emitted once per problem found while loading plugins."""


@dataclass
class PluginProblem:
    """Something that went wrong with one plugin; the rest of the plugins are unaffected."""

    plugin: str
    source: str
    stage: str
    message: str
    hint: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} ({self.source}) failed at {self.stage}: {self.message}. {self.hint}"


@dataclass
class Registered:
    """One registered item and where it came from."""

    kind: str
    name: str
    obj: Any
    plugin: str
    source: str


def _default_plugins_dirs() -> list[Path]:
    env = os.environ.get(PLUGINS_DIR_ENV)
    if env is not None:
        return [Path(p) for p in env.split(os.pathsep) if p]
    repo_hooks = Path(__file__).resolve().parent.parent / "hooks"
    return [repo_hooks] if repo_hooks.is_dir() else []


def _describe_exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Plugins:
    """A plugin manager plus the registry built from it. Use :func:`get_plugins` for the shared one."""

    plugins_dirs: Sequence[Path] | None = None
    load_entry_points: bool = True
    builtins: Sequence[str] = BUILTIN_PLUGINS
    pm: pluggy.PluginManager = field(init=False)
    problems: list[PluginProblem] = field(init=False, default_factory=list)
    sources: dict[str, str] = field(init=False, default_factory=dict)
    items: dict[str, dict[str, Registered]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(IdinvertHookSpecs)
        dirs = _default_plugins_dirs() if self.plugins_dirs is None else [Path(d) for d in self.plugins_dirs]
        self.plugins_dirs = dirs
        for module_name in self.builtins:
            self._load_module(module_name, source="built-in")
        if self.load_entry_points:
            self._load_entry_points()
        for d in dirs:
            self._load_directory(d)
        self._check_unknown_hooks()
        self._build_registry()
        self._report()

    # -- loading -------------------------------------------------------------------------------------
    def _problem(self, plugin: str, source: str, stage: str, message: str, hint: str) -> None:
        self.problems.append(PluginProblem(plugin, source, stage, message, hint))

    def _register(self, plugin: Any, name: str, source: str) -> None:
        if self.pm.has_plugin(name):
            self._problem(
                name, source, "registration", f"a plugin named {name!r} is already loaded "
                f"({self.sources.get(name, '?')})", "Rename one of the two plugins or uninstall one.",
            )
            return
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            self._problem(name, source, "registration", str(exc),
                          "Fix the hook implementation's name or arguments to match idinvert_plugins.hookspecs.")
            return
        self.sources[name] = source

    def _load_module(self, module_name: str, source: str) -> None:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import failure must be isolated
            self._problem(module_name, source, "import", _describe_exception(exc),
                          "Fix or reinstall the plugin's package.")
            return
        self._register(module, module_name, source)

    def _load_entry_points(self) -> None:
        allowed = os.environ.get(LOAD_PLUGINS_ENV)
        allowed_names = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if allowed_names is not None and ep.name not in allowed_names:
                continue
            dist = getattr(ep, "dist", None)
            dist_desc = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "unknown distribution"
            source = f"entry point {ep.name} = {ep.value} ({dist_desc})"
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001
                self._problem(ep.name, source, "import", _describe_exception(exc),
                              f"Upgrade or uninstall {dist_desc.split(' ')[0]}, or set {LOAD_PLUGINS_ENV}='' to "
                              "skip entry-point plugins.")
                continue
            self._register(plugin, ep.name, source)

    def _load_directory(self, directory: Path) -> None:
        if not directory.is_dir():
            self._problem(str(directory), "plugins directory", "discovery", "directory does not exist",
                          f"Create it or correct --plugins-dir / {PLUGINS_DIR_ENV}.")
            return
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith("_"):
                continue
            name = f"{directory.name}/{path.name}"
            module_name = f"idinvert_hooks_{abs(hash(str(directory))):x}.{path.stem}"
            try:
                spec = importlib.util.spec_from_file_location(module_name, path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
            except Exception as exc:  # noqa: BLE001
                sys.modules.pop(module_name, None)
                self._problem(name, f"file {path}", "import", _describe_exception(exc),
                              f"Fix {path} or move it out of {directory}.")
                continue
            self._register(module, name, f"file {path}")

    def _check_unknown_hooks(self) -> None:
        known = set(hook_names())
        for name, plugin in list(self.pm.list_name_plugin()):
            for attr in dir(plugin):
                if attr.startswith("register_") and attr not in known:
                    fn = getattr(plugin, attr, None)
                    if getattr(fn, f"{PROJECT_NAME}_impl", None) is not None:
                        close = [k for k in known if k[:12] == attr[:12]]
                        hint = f"Did you mean {close[0]}?" if close else f"Known hooks: {', '.join(sorted(known))}."
                        self._problem(name, self.sources.get(name, "?"), "validation",
                                      f"implements unknown hook {attr!r}", hint)
                        self.pm.unregister(name=name)
                        break

    # -- registry ------------------------------------------------------------------------------------
    def _load_order(self, impls: Iterable[Any]) -> list[Any]:
        """Hook implementations in plugin load order (built-ins first), whatever their tryfirst/trylast marks:
        a name belongs to the plugin that loaded first, so a later plugin can never take over a built-in's."""
        order = {name: i for i, (name, _) in enumerate(self.pm.list_name_plugin())}
        return sorted(impls, key=lambda impl: order.get(impl.plugin_name, len(order)))

    def _build_registry(self) -> None:
        self.items = {kind: {} for kind in HOOK_KINDS.values()}
        for hook_name, kind in HOOK_KINDS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in self._load_order(hook.get_hookimpls()):
                self._call_impl(hook_name, kind, impl)

    def _call_impl(self, hook_name: str, kind: str, impl: Any) -> None:
        plugin = impl.plugin_name
        source = self.sources.get(plugin, "?")
        default_kind = kind

        staged: list[Registered] = []

        def register(obj: Any, *, name: str | None = None, kind: str | None = None) -> None:
            item_kind, item_name = _describe_item(hook_name, default_kind, obj, name, kind)
            table = self.items.setdefault(item_kind, {})
            first = table.get(item_name) or next(
                (r for r in staged if r.kind == item_kind and r.name == item_name), None)
            if first is not None:
                self._problem(plugin, source, f"hook {hook_name}",
                              f"{item_kind} {item_name!r} is already registered by plugin {first.plugin!r}",
                              "The first registration is kept; rename yours (its `name`) to use both.")
                return
            staged.append(Registered(item_kind, item_name, obj, plugin, source))

        try:
            impl.function(**{arg: register for arg in impl.argnames if arg == "register"})
        except Exception as exc:  # noqa: BLE001
            dropped = f" (dropped what it registered first: {', '.join(r.name for r in staged)})" if staged else ""
            self._problem(plugin, source, f"hook {hook_name}", _describe_exception(exc) + dropped,
                          "None of its items are available; fix the plugin or remove it.")
            return
        for item in staged:
            self.items.setdefault(item.kind, {})[item.name] = item

    def add_commands(self, subparsers: Any) -> list[Registered]:
        """Call every ``register_commands`` implementation (in load order) with the CLI's sub-parsers; each
        command a plugin adds is recorded as an item of kind ``command``. A plugin that raises, or adds a name
        that is taken, is reported as a problem; the commands it added before raising are removed."""
        added: list[Registered] = []
        taken = set(subparsers.choices)
        for impl in self._load_order(self.pm.hook.register_commands.get_hookimpls()):
            plugin, source = impl.plugin_name, self.sources.get(impl.plugin_name, "?")
            before = dict(subparsers.choices)
            try:  # a name that is taken raises argparse.ArgumentError ("conflicting subparser")
                impl.function(**{arg: subparsers for arg in impl.argnames if arg == "cli"})
            except Exception as exc:  # noqa: BLE001
                _restore_choices(subparsers, before)
                self._problem(plugin, source, "hook register_commands", _describe_exception(exc),
                              "None of its commands are available; fix the plugin (or rename a command whose "
                              f"name is taken: {', '.join(sorted(taken))} are) or remove it.")
                continue
            new = [n for n in subparsers.choices if n not in before]
            for name in new:
                parser = subparsers.choices[name]
                if parser.get_default("func") is None:
                    self._problem(plugin, source, "hook register_commands",
                                  f"command {name!r} has no func", "Call parser.set_defaults(func=...).")
                    _restore_choices(subparsers, {**subparsers.choices, name: None}, drop=name)
                    continue
                item = Registered("command", name, parser, plugin, source)
                self.items.setdefault("command", {})[name] = item
                added.append(item)
            taken.update(new)
        return added

    def _report(self) -> None:
        if not self.problems:
            return
        if os.environ.get(STRICT_ENV, "") not in ("", "0"):
            raise PluginError("\n".join(str(p) for p in self.problems))
        for problem in self.problems:
            warnings.warn(str(problem), PluginWarning, stacklevel=4)

    # -- queries -------------------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Any:
        """The registered item ``name`` of ``kind``; an unknown name raises :class:`UnknownNameError`."""
        table = self.items.get(kind, {})
        if name in table:
            return table[name].obj
        known = ", ".join(sorted(table)) or "(none)"
        msg = f"unknown {kind.replace('_', ' ')} {name!r}. Known: {known}."
        broken = [p for p in self.problems if p.stage != "discovery"]
        if broken:
            msg += " Some plugins failed to load (see `idinvert plugins`): " + ", ".join(
                sorted({p.plugin for p in broken}))
        raise UnknownNameError(msg)

    def names(self, kind: str) -> list[str]:
        return sorted(self.items.get(kind, {}))

    def registered(self, kind: str | None = None) -> list[Registered]:
        kinds: Iterable[str] = [kind] if kind else sorted(self.items)
        return [r for k in kinds for _, r in sorted(self.items.get(k, {}).items())]

    def plugin_list(self) -> list[dict[str, Any]]:
        """One entry per loaded plugin: its name, where it came from and the hooks it implements."""
        out = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            out.append({"name": name, "source": self.sources.get(name, "?"), "hooks": hooks})
        return out


def _restore_choices(subparsers: Any, before: dict[str, Any], drop: str | None = None) -> None:
    """Undo sub-parsers added after ``before`` was taken (or just ``drop``)."""
    for name in list(subparsers.choices):
        if name not in before or name == drop:
            subparsers.choices.pop(name, None)
            subparsers._choices_actions[:] = [a for a in subparsers._choices_actions if a.dest != name]


#: hook -> (module, class) its items must be instances of, checked at registration. Named, not imported: the
#: registry sits below the contracts it checks (they may use the registry), so it binds them late.
_CONTRACTS: dict[str, tuple[str, str]] = {
    "register_editors": ("idinvert_plugins.editors.base", "Editor"),
    "register_embedders": ("idinvert_plugins.inverters.stages", "Embedder"),
    "register_refiners": ("idinvert_plugins.inverters.stages", "Refiner"),
    "register_latent_parts": ("idinvert_plugins.latent", "LatentPart"),
    "register_latent_spaces": ("idinvert_plugins.spaces", "LatentSpace"),
    "register_converters": ("idinvert_plugins.convert.base", "CheckpointFormat"),
    "register_domains": ("idinvert_plugins.domain_spec", "Domain"),
    "register_aligners": ("idinvert_plugins.align.base", "Aligner"),
    "register_metrics": ("idinvert_plugins.metrics.registry", "Metric"),
    "register_loss_networks": ("idinvert_plugins.losses.networks", "LossNetwork"),
}


def _describe_item(hook_name: str, default_kind: str, obj: Any, name: str | None, kind: str | None
                   ) -> tuple[str, str]:
    """Validate a registered object and work out its (kind, name)."""
    if hook_name == "register_generators":
        from .models.base import Generator

        if not (isinstance(obj, type) and issubclass(obj, Generator) and obj.architecture):
            raise TypeError(f"register_generators expects a Generator subclass with `architecture`, got {obj!r}")
        return "generator", name or obj.architecture
    if hook_name == "register_networks":
        if kind is None:
            raise TypeError("register_networks needs register(cls, kind=...) with kind e.g. 'encoder'")
        arch = getattr(obj, "architecture", None)
        if not (isinstance(obj, type) and arch):
            raise TypeError(f"register_networks expects a class with `architecture`, got {obj!r}")
        return kind, name or arch
    item_name = name or getattr(obj, "name", None)
    if not item_name:
        raise TypeError(f"{hook_name}: {obj!r} has no `name`")
    if hook_name in _CONTRACTS:
        module, cls_name = _CONTRACTS[hook_name]
        contract = getattr(importlib.import_module(module), cls_name)
        if not isinstance(obj, contract):
            raise TypeError(f"{hook_name} expects an instance of {module}.{cls_name}, got {obj!r}")
    if hook_name == "register_metrics":  # group and needs too (bound by name, as the contracts are)
        importlib.import_module("idinvert_plugins.metrics.registry").check_metric(obj)
    if hook_name == "register_loss_networks":  # a known kind, no ':' in the name (bound by name, as above)
        importlib.import_module("idinvert_plugins.losses.networks").check_loss_network(obj)
    if hook_name == "register_domains":
        from .domain_spec import check_domain

        check_domain(obj)
    if hook_name == "register_inverters":
        missing = [a for a in ("invert", "description") if not hasattr(obj, a)]
        if missing or not callable(obj.invert):
            raise TypeError(f"register_inverters expects an object with name, description and invert(generator, "
                            f"images, **options) (an Inverter or a Composition), got {obj!r} (missing {missing})")
    if hook_name in ("register_editors", "register_embedders", "register_refiners"):
        for p in getattr(obj, "params", ()):
            if not hasattr(p, "kind") or not hasattr(p, "name"):
                raise TypeError(f"{item_name!r}: params must be idinvert_plugins.params.Param objects, got {p!r}")
    return default_kind, item_name


_SHARED: Plugins | None = None
_SHARED_DIRS: list[Path] | None = None


def configure(plugins_dirs: Sequence[str | Path] | None = None) -> None:
    """Choose the plugins directories for the shared manager (the CLI's ``--plugins-dir``)."""
    global _SHARED, _SHARED_DIRS
    _SHARED_DIRS = None if plugins_dirs is None else [Path(d) for d in plugins_dirs]
    _SHARED = None


def get_plugins(reload: bool = False) -> Plugins:
    """The shared, lazily built plugin manager and registry."""
    global _SHARED
    if _SHARED is None or reload:
        _SHARED = Plugins(plugins_dirs=_SHARED_DIRS)
    return _SHARED


def reset_plugins() -> None:
    """Forget the shared manager (it is rebuilt on next use), e.g. after installing a plugin."""
    global _SHARED
    _SHARED = None
