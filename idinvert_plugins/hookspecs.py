"""The plugin hooks of idinvert-plugins: this module is the plugin author's reference.

Every capability of the library (generator backends, encoders, latent spaces, inverters, editors,
checkpoint converters) is registered through one of the hooks below, by the built-in plugins exactly as
by third-party ones. A plugin is any module or object with functions decorated by
``idinvert_plugins.hookimpl`` whose names match the hooks here.

Each hook receives a ``register`` callback (the `llm` style): call it once per item you provide. The
item's ``name`` must be unique across all plugins; a clash is reported naming both plugins and the
first registration is kept. A hook implementation may accept only the arguments it needs.

Where plugins come from, in load order:

1. the built-in plugins (``idinvert_plugins.builtins.*``);
2. installed distributions that declare an entry point in the group ``idinvert_plugins``::

       [project.entry-points.idinvert_plugins]
       my_editor = "my_package.my_module"

3. ``*.py`` files in the plugins directory: ``hooks/`` next to the package's checkout by default,
   or the directories in ``IDINVERT_PLUGINS_DIR`` (``os.pathsep``-separated), or ``idinvert
   --plugins-dir DIR``.

``IDINVERT_LOAD_PLUGINS`` (comma-separated entry-point names) restricts which entry points load; set it
to an empty string to load none, e.g. when a broken plugin gets in the way. A plugin that fails to import
or whose hook raises is reported (``idinvert plugins`` lists the problems) and the others still load.

A minimal editor plugin (``hooks/brightness.py``)::

    import idinvert_plugins
    from idinvert_plugins.editors import Editor, Param

    class Brightness(Editor):
        name = "brightness"
        ...

    @idinvert_plugins.hookimpl
    def register_editors(register):
        register(Brightness())
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT_NAME = "idinvert_plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Register = Callable[..., None]


class IdinvertHookSpecs:
    """Hook specifications (pluggy calls them with keyword arguments only)."""

    @hookspec
    def register_generators(self, register: Register) -> None:
        """Register generator backends (network architectures).

        Call ``register(cls)`` for each class. ``cls`` subclasses
        :class:`idinvert_plugins.models.base.Generator`, sets the class attribute ``architecture`` (the
        name written to and read from a model's ``config.json``) and accepts its ``config.json``
        ``args`` as keyword arguments. Loading a model folder whose ``architecture`` is that name
        builds ``cls(**args)`` and loads ``model.safetensors`` into it strictly.
        """

    @hookspec
    def register_networks(self, register: Register) -> None:
        """Register other network architectures that load from model folders: encoders,
        discriminators, attribute classifiers, perceptual feature networks.

        Call ``register(cls, kind=KIND)`` with ``kind`` one of ``"encoder"``, ``"discriminator"``,
        ``"classifier"``, ``"feature"`` (or a new kind of your own). ``cls`` is an ``nn.Module`` with a
        class attribute ``architecture`` and a ``config`` dict of its constructor arguments.
        """

    @hookspec
    def register_latent_spaces(self, register: Register) -> None:
        """Register latent spaces codes can live in (Z, W, W+, later S and others).

        Call ``register(space)`` with an instance of
        :class:`idinvert_plugins.spaces.LatentSpace`: it names the space, gives the code shape for a
        generator and turns codes of that space into W+ for synthesis.
        """

    @hookspec
    def register_inverters(self, register: Register) -> None:
        """Register inversion methods (image -> latent code).

        Call ``register(inverter)`` with an object that has ``name``, ``description`` and
        ``invert(generator, images, **options)``. Inverters must accept a batch and return one code
        per image.
        """

    @hookspec
    def register_editors(self, register: Register) -> None:
        """Register editors (code -> edited code and image).

        Call ``register(editor)`` with an instance of :class:`idinvert_plugins.editors.Editor`. Its
        ``params`` declare name, kind, range and default of each control, so the CLI and the Gradio
        app render controls for it without knowing the editor.
        """

    @hookspec
    def register_converters(self, register: Register) -> None:
        """Register checkpoint-format converters used by ``idinvert convert``.

        Call ``register(converter)`` with an instance of
        :class:`idinvert_plugins.convert.base.CheckpointFormat`. ``converter.sniff(ckpt)`` says whether
        a safely loaded checkpoint is in its format, ``converter.convert(ckpt)`` returns the networks in
        this library's layout. Converters never receive objects produced by running code from the
        file: ``.pkl`` files go through the restricted unpickler first.
        """


def hook_names() -> list[str]:
    """Names of all hooks defined here."""
    return [n for n in vars(IdinvertHookSpecs) if n.startswith("register_")]


__all__ = ["hookimpl", "hookspec", "IdinvertHookSpecs", "hook_names", "PROJECT_NAME"]
