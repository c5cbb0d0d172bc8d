"""The plugin hooks of idinvert-plugins: this module is the plugin author's reference.

Every capability of the library (generator backends, encoders and other networks, latent spaces, latent
parts, embedders and refiners (the two stages of inversion) and the named methods composed of them, editors,
checkpoint converters, image domains, face aligners, benchmark metrics, loss networks, commands) is registered
through one of the hooks below, by the built-in plugins exactly as by third-party ones. A plugin is any module or
object with functions decorated by ``idinvert_plugins.hookimpl`` whose names match the hooks here.

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
from typing import Any

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
    def register_latent_parts(self, register: Register) -> None:
        """Register kinds of latent parts: what an inversion keeps of an image besides its W+ code.

        Call ``register(part)`` with an instance of :class:`idinvert_plugins.latent.LatentPart`. Its ``name``
        is the key in ``Latent.parts`` and in code files; :meth:`~idinvert_plugins.latent.LatentPart.apply`
        expresses the part with the three render primitives of
        :class:`~idinvert_plugins.latent.RenderPlan` (noise inputs, additions to a module's output, parameter
        offsets), so every generator renders it. Built in: ``noise``, ``styles``, ``features``, ``weights``.
        A part that tints each image by a colour offset, for example::

            from idinvert_plugins.latent import LatentPart

            class Tint(LatentPart):
                name = "tint"
                description = "a per-image RGB offset added to the rendered image"

                def apply(self, generator, tensors, plan):
                    plan.add_output("synthesis_network", tensors["rgb"])  # [N, 3, 1, 1]

            @idinvert_plugins.hookimpl
            def register_latent_parts(register):
                register(Tint())
        """

    @hookspec
    def register_embedders(self, register: Register) -> None:
        """Register embedders: the first stage of inversion, image -> :class:`~idinvert_plugins.latent.Latent`.

        Call ``register(embedder)`` with an instance of :class:`idinvert_plugins.inverters.Embedder`
        (``name``, ``description``, ``params``; ``requires_encoder`` / ``uses_feature_net`` if it needs them)
        implementing ``embed(ctx, **params) -> Latent``; ``ctx`` is an
        :class:`~idinvert_plugins.inverters.InversionContext` (generator, images, encoder, feature network,
        mask, progress, callback). Built in: ``encoder`` (E(x)), ``mean`` (the average code), ``w`` (W-space
        optimisation, PTI's pivot). Any embedder composes with any chain of refiners:
        ``idinvert invert GEN IMAGES --embed NAME --refine A,B``. Example::

            class Zero(Embedder):
                name = "zero"
                description = "all-zero W+ codes"

                def embed(self, ctx):
                    G = ctx.generator
                    return Latent(torch.zeros(len(ctx.images), G.num_layers, G.w_dim))
        """

    @hookspec
    def register_refiners(self, register: Register) -> None:
        """Register refiners: later stages of inversion, image + latent -> a better latent.

        Call ``register(refiner)`` with an instance of :class:`idinvert_plugins.inverters.Refiner`
        implementing ``refine(ctx, latent, **params) -> RefineResult`` (the new latent and its per-step losses,
        ``{"total": [N floats], ...}`` per step). A refiner may change ``wp`` (domain-regularised or W+
        optimisation), add parts (noise maps, feature residuals, weight offsets of a tuned generator) or
        both; render candidates with :func:`idinvert_plugins.latent.render`, which applies every part. Built
        in: ``domain-regularized`` (IDInvert's optimisation, with the encoder as regulariser) and ``wplus``
        (W+ optimisation, Image2StyleGAN). Example (the loop elided)::

            class NoiseToo(Refiner):
                name = "noise-opt"
                description = "optimise W+ and the noise maps"
                params = (Param("steps", "int", default=100, min=0, max=10_000),)

                def refine(self, ctx, latent, steps):
                    ...  # Adam on latent.wp and latent.parts["noise"], loss on render(G, latent)
                    return RefineResult(latent.with_part("noise", maps), losses)
        """

    @hookspec
    def register_inverters(self, register: Register) -> None:
        """Register inversion methods (image -> latent code) under one name.

        Usually a named composition of an embedder and refiners:
        ``register(Composition("my-method", embed="encoder", refine=("domain-regularized",),
        defaults={"steps": 50}, description="..."))`` (``idinvert``, ``image2stylegan`` and ``encoder`` are
        such compositions; ``idinvert invert --method NAME`` runs one). A hand-written
        :class:`idinvert_plugins.inverters.Inverter` subclass (``name``, ``description``, ``params``,
        ``run(...)`` returning an :class:`~idinvert_plugins.inverters.InversionResult`) registers the same way.
        Inverters must accept a batch and return one latent per image.
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


    @hookspec
    def register_domains(self, register: Register) -> None:
        """Register image domains: what the core asks of a kind of image instead of naming one.

        Call ``register(domain)`` with an instance of a :class:`idinvert_plugins.domain_spec.Domain` subclass.
        It declares the attribute schema (:class:`~idinvert_plugins.domain_spec.AttributeSpec` per factor: the
        classifier's heads, the editing targets, the 0/1 labels of directions), labelled images by index and
        the train/test split (test images of ``idinvert evaluate``, training data without ``--data``), the
        app's example images, its attribute classifier and perceptual network, the naming rule of its models
        (``model_prefix`` at ``resolution``), training presets, and how photos of its models are aligned
        (``alignment``: an aligner registered by ``register_aligners`` and a template; ``templates``: named
        templates of its framing). Generators say which domain they belong to
        by ``"domain"`` in their ``pipeline.json``, else by the naming rule; without either the first
        registered domain (the built-in one) is the default. Built in: ``toyfaces``. Example::

            import numpy as np
            from idinvert_plugins.domain_spec import AttributeSpec, Domain

            class Stripes(Domain):
                name = "stripes"
                title = "striped squares"
                attributes = (AttributeSpec("width", "continuous", (0.0, 1.0), "stripe width", threshold=0.5),)
                classifier = "stripes-classifier-32"          # a named model or folder (optional)
                feature_net = "classifier:stripes-classifier-32"
                resolution = 32
                model_prefix = "stripes-"                     # stripes-* generators at 32 px belong here

                def images(self, seed, indices, resolution):
                    widths = np.array([np.random.default_rng([seed, i]).uniform() for i in indices])
                    x = np.arange(resolution)[None, None, :]
                    period = (2 + widths * 6)[:, None, None]
                    grey = ((x % period) < period / 2).repeat(resolution, 1) * 255
                    return np.repeat(grey[..., None], 3, -1).astype(np.uint8), {"width": widths}

            @idinvert_plugins.hookimpl
            def register_domains(register):
                register(Stripes())
        """

    @hookspec
    def register_aligners(self, register: Register) -> None:
        """Register face aligners: what finds the faces of a real photo and their landmarks.

        Call ``register(aligner)`` with an instance of an :class:`idinvert_plugins.align.Aligner` subclass
        (``name``, ``description``) implementing ``detect(photo, *, source=None) -> list[Face]``: ``photo`` is
        uint8 ``HxWx3`` RGB (EXIF orientation applied), each :class:`~idinvert_plugins.align.Face` holds the four
        points FFHQ alignment uses (eye centres and mouth corners, the image's left first; 5- or 68-point arrays
        are reduced to them) in pixels, ``(0, 0)`` the centre of the top-left pixel. The library does the rest:
        the oriented crop for the generator's template, the transform (JSON) and the paste-back into the full
        photo. Override ``unavailable()`` to return what to install when an optional package is missing; the
        aligner is still listed. Built in: ``dlib`` (68 points, the ``[align]`` extra), ``toyfaces`` (the bundled
        domain, offline), ``json`` (landmarks beside each photo). Used by ``idinvert align``, ``idinvert
        invert|edit --align --aligner NAME`` and ``pipeline.json``'s ``"alignment": {"aligner": NAME}``. Example::

            from idinvert_plugins.align import Aligner, Face

            class Centre(Aligner):
                name = "centre"
                description = "assumes one upright face in the middle of the photo"

                def detect(self, photo, *, source=None):
                    h, w = photo.shape[:2]
                    s = min(h, w)
                    cx, cy = w / 2, h / 2
                    return [Face([[cx - 0.15 * s, cy - 0.05 * s], [cx + 0.15 * s, cy - 0.05 * s],
                                  [cx - 0.1 * s, cy + 0.2 * s], [cx + 0.1 * s, cy + 0.2 * s]])]

            @idinvert_plugins.hookimpl
            def register_aligners(register):
                register(Centre())
        """

    @hookspec
    def register_metrics(self, register: Register) -> None:
        """Register metrics of ``idinvert bench`` (the leaderboard of every inversion method).

        Call ``register(metric)`` with an instance of a :class:`idinvert_plugins.metrics.registry.Metric` subclass:
        ``name`` (the JSON key), ``group`` (``"fidelity"``, ``"realism"``, ``"attributes"``, ``"editability"`` or
        ``"cost"``), ``description``, ``higher_is_better`` (None: neither), ``needs`` (the
        :class:`~idinvert_plugins.metrics.registry.MetricData` fields it reads beyond ``inputs`` and
        ``reconstructions``: ``feature_net``, ``fd_features``, ``classifier``, ``edited``, ``crosstalk``,
        ``interpolated``, ``curve``, ``mse_target``), optionally ``table = False`` (JSON only), and
        ``compute(data)`` returning a float, or a dict of floats whose ``"value"`` is the table's number. Every
        method of the benchmark is measured with every registered metric; one whose needs are missing is listed as
        not measured. ``idinvert evaluate`` measures its methods with the same metrics (its tables read theirs).
        Built in: ``mse``, ``psnr``, ``ssim``, ``perceptual``, ``fd``, ``swd``, ``attributes``, ``edit_success``,
        ``crosstalk``, ``fd_edited``, ``swd_edited``, ``fd_interpolated``, ``swd_interpolated``,
        ``seconds_per_image``, ``time_to_quality``. Example (the mean absolute error)::

            from idinvert_plugins.metrics.registry import Metric

            class MAE(Metric):
                name = "mae"
                group = "fidelity"
                description = "mean absolute error per pixel (images in [-1, 1])"

                def compute(self, data):
                    return float((data.reconstructions - data.inputs).abs().mean())

            @idinvert_plugins.hookimpl
            def register_metrics(register):
                register(MAE())
        """

    @hookspec
    def register_loss_networks(self, register: Register) -> None:
        """Register loss networks: the perceptual (feature) and identity networks that training and inversion
        losses compare images with, loadable by name from a local file or a Hugging Face Hub id.

        Call ``register(network)`` with an instance of a :class:`idinvert_plugins.losses.networks.LossNetwork`
        subclass: ``name`` (no ``:``), ``kind`` (``"perceptual"`` or ``"identity"``), ``description``,
        ``weights`` (the weights it needs, in words, for the error when they are missing; None: it needs no
        file), ``files`` (the names of its weights file in a folder or Hub repo, tried in order) and
        ``build(path, **options)``, which returns the network from the resolved local file (``path`` None for a
        network without weights; perceptual ones may receive ``layer=``). Users name it with a spec
        ``NAME:PATH_OR_HUB_ID`` (or ``NAME`` when it needs no file): a local file, a folder holding one of
        ``files``, or ``org/repo[@revision]``, whose file is taken from the Hugging Face cache or downloaded
        (``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` apply); when the weights are missing the error names the file
        and the option to pass. Override ``load(ref, *, option, alternative=None, **options)`` to read ``REF``
        otherwise (the built-in ``classifier`` takes a model name).

        * a **perceptual** network's ``build`` returns a :class:`idinvert_plugins.features.FeatureNetwork`
          (images in [-1, 1] -> features per image, compared by ``mean((F(x) - F(y))^2)`` with its
          ``loss_weight``): every ``feature_net`` option takes it (``idinvert invert --feature-net NAME:PATH``,
          ``idinvert train-encoder --set feature_net=NAME:PATH``, ``pipeline.json``);
        * an **identity** network's ``build`` returns an ``nn.Module`` from images in [-1, 1] (``[N, 3, R, R]``,
          the generator's framing: crop the face region yourself) to embeddings ``[N, D]``; the loss is
          ``1 - cos``: ``idinvert train-encoder --objective psp|e4e|restyle --set l_id=0.1 --set
          id_net=NAME:PATH``.

        Built in: ``vgg16-conv43`` and ``classifier`` (perceptual), ``arcface-ir-se50`` (identity). ``idinvert
        plugins`` lists them all. Example (an identity network from a small embedding net's safetensors)::

            import torch
            from torch import nn
            from safetensors.torch import load_file
            from idinvert_plugins.losses.networks import LossNetwork

            class TinyID(LossNetwork):
                name = "tiny-id"
                kind = "identity"
                description = "a 4x4-pooled colour embedding (an example)"
                weights = "tiny_id.safetensors (a Linear(48, 16))"
                files = ("tiny_id.safetensors",)

                def build(self, path):
                    head = nn.Linear(48, 16)
                    head.load_state_dict(load_file(str(path)))
                    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), head)

            @idinvert_plugins.hookimpl
            def register_loss_networks(register):
                register(TinyID())
        """

    @hookspec
    def register_commands(self, cli: Any) -> None:
        """Add subcommands to the ``idinvert`` command line (llm's ``register_commands``).

        ``cli`` is the argparse sub-parsers object of ``idinvert``: add a parser and set its ``func`` (called
        with the parsed ``argparse.Namespace``; it returns the exit code)::

            @idinvert_plugins.hookimpl
            def register_commands(cli):
                p = cli.add_parser("hello", help="say hello")
                p.add_argument("name")
                p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

        A command whose name is taken (by ``idinvert`` itself or an earlier plugin) is reported as a problem
        and skipped; ``idinvert plugins`` lists the commands each plugin added.
        """


def hook_names() -> list[str]:
    """Names of all hooks defined here."""
    return [n for n in vars(IdinvertHookSpecs) if n.startswith("register_")]


__all__ = ["hookimpl", "hookspec", "IdinvertHookSpecs", "hook_names", "PROJECT_NAME"]
