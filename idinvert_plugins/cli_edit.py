"""The editing commands of ``idinvert``: ``edit``, ``interpolate``, ``mix``, ``diffuse`` and ``directions``.

Inputs are images (inverted with ``--method``, through the same helper as ``idinvert invert``) or W+ codes
saved by ``idinvert invert`` (``*.safetensors`` with a tensor ``code``), which skip the inversion. Directions
are given by name (looked up in the generator's ``directions/`` folder, see
:mod:`idinvert_plugins.editors.directions`) or by path. :func:`add_parsers` adds the subcommands to the
``idinvert`` parser.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cli_common import FEATURE_NET_HELP, parse_seeds
from .codes import is_code_file, load_code
from .editors.interfacegan import STEERINGS

OUT_HELP = ("folder to write to (default: a folder model's own directions/; for bundled, installed and Hub "
            "models $IDINVERT_HOME/directions/MODEL/, default ~/.local/share/idinvert, found by name from there)")
EDIT_FORM = "NAME=STRENGTH, e.g. smile=+2 or eyeglasses=-1.5 (NAME: a direction of the model or a .safetensors path)"


# -- argument parsing -------------------------------------------------------------------------------------
def parse_edit(text: str) -> tuple[str, float]:
    """``"smile=+2"`` -> ``("smile", 2.0)`` (split at the last ``=``, so paths may contain one)."""
    name, sep, value = text.rpartition("=")
    try:
        if not sep or not name.strip():
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad edit {text!r}: expected {EDIT_FORM}") from None


def parse_layers(text: str) -> tuple[int, int | None]:
    """``"2:6"`` -> ``(2, 6)`` (W+ layers [2, 6)); ``"4"`` or ``"4:"`` -> ``(4, None)`` (to the last layer)."""
    start, sep, stop = text.partition(":")
    try:
        a = int(start) if start.strip() else 0
        b = int(stop) if sep and stop.strip() else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad layer range {text!r}: expected START:STOP (W+ layers [START, "
                                         "STOP), counted from 0) or START (to the last layer)") from None
    if a < 0 or (b is not None and b <= a):
        raise argparse.ArgumentTypeError(f"bad layer range {text!r}: need 0 <= START < STOP")
    return a, b


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``"cx,cy,w[,h]"`` in pixels of the generator's resolution -> ``(cx, cy, w, h)`` (``h`` defaults to ``w``)."""
    parts = [p.strip() for p in text.split(",")]
    form = "expected CX,CY,W[,H]: the box centre column and row and its width (and height) in pixels"
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError(f"bad box {text!r}: {form}, e.g. 32,36,28")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad box {text!r}: {form}; whole numbers only") from None
    if len(values) == 3:
        values.append(values[2])
    cx, cy, w, h = values
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"bad box {text!r}: width and height must be positive")
    return cx, cy, w, h


# -- inputs -----------------------------------------------------------------------------------------------
def codes_for(G: Any, sources: Sequence[str | Path], args: argparse.Namespace):
    """W+ codes ``[N, L, D]`` for ``sources`` and the input tile of each (see :func:`latents_for`, whose codes
    these are). ``G`` is the command's :class:`~idinvert_plugins.pipeline.Pipeline` or a generator loaded from
    ``args.model``."""
    latent, tiles = latents_for(G, sources, args, keep_parts=False)
    return latent.wp, tiles


def latents_for(G: Any, sources: Sequence[str | Path], args: argparse.Namespace, keep_parts: bool = True):
    """The latents (codes and parts such as noise maps or a tuned generator's weight offsets) of ``sources``:
    images are inverted together with ``--method``, code files loaded; and the input tile of each: the image
    itself, or for a code file its rendering. Prints each image's inversion error and warns when it is far above
    the model's typical error. ``G`` is the command's :class:`~idinvert_plugins.pipeline.Pipeline`, or a
    generator loaded from ``args.model`` (its pipeline is then made from the command's options when an image
    needs inverting). ``keep_parts=False`` keeps only the codes (sources whose latents have different parts can
    then be stacked). Returns ``(latent, tiles)``."""
    import torch

    from .cli_common import invert_images, pipeline_from_args
    from .codes import load_latent
    from .domain import warn_out_of_domain
    from .latent import Latent, render
    from .metrics import mse
    from .pipeline import Pipeline

    pipe = G if isinstance(G, Pipeline) else None
    G = pipe.generator if pipe is not None else G
    latents: list[Any] = [None] * len(sources)
    tiles: list[Any] = [None] * len(sources)
    images = [i for i, s in enumerate(sources) if not is_code_file(s)]
    for i, s in enumerate(sources):
        if is_code_file(s):
            latents[i] = load_latent(s, G)
    if images:
        pipe = pipe or pipeline_from_args(args.model, args, generator=G)
        x, result = invert_images(pipe, [sources[i] for i in images], method=args.method, steps=args.steps,
                                  crop=args.crop)
        errors = mse(result.images.to(x), x)
        method = result.info.get("inverter", args.method or pipe.default_method)
        for j, i in enumerate(images):
            latents[i], tiles[i] = result.latent[j].detach(), x[j]
            print(f"{Path(sources[i]).name}: inverted with {method}, mse {float(errors[j]):.5f}")
            warn_out_of_domain(pipe, method, Path(sources[i]).name, float(errors[j]))
    with torch.no_grad():
        for i in range(len(sources)):
            if tiles[i] is None:
                tiles[i] = render(G, latents[i])[0]
    if not keep_parts:
        latents = [lat.without(*lat.parts) for lat in latents]
    return Latent.cat(latents), tiles


#: how ``--set KEY=VALUE`` text becomes an editor parameter, by the parameter's declared kind
def _editor_value(pipe: Any, kind: str, key: str, value: Any) -> Any:
    from .codes import load_latent
    from .images import load_image

    G = pipe.generator
    if value is None:
        return None
    if kind == "direction":
        return _pipeline_direction(pipe, str(value))
    if kind == "code":
        if not is_code_file(str(value)):
            raise ValueError(f"--set {key}={value}: {key} takes a code file (.safetensors from `idinvert invert`)")
        return load_latent(value, G).wp
    if kind == "image":
        return load_image(value, G.resolution, crop=True).to(G.w_avg.device)
    if kind == "mask":
        m = load_image(value, G.resolution, crop=True)
        return (m.mean(0) > 0).float()
    if kind == "layers":
        if isinstance(value, str):
            start, stop = parse_layers(value)
            return _layer_range(G, (start, stop))
        return tuple(int(v) for v in value)
    return value


def _write_result(images: Any, args: argparse.Namespace, photo: Any = None) -> Path:
    """Write the edited image(s) ``[N, 3, R, R]``: the first as ``--output``; with ``--align`` all of them pasted into
    the full-size photo (and with ``--save-crops`` the crops and transforms beside it)."""
    from .images import save_image

    if photo is None:
        return save_image(images[0], args.output)
    out = photo.write(images.detach().cpu(), args.output)
    if args.save_crops:
        from .align.commands import crops_of, save_face_files

        save_face_files(photo, out.parent, crops_of([photo]), images.detach().cpu(), "_edited")
    return out


def _editor_setup(pipe: Any, args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, Any], Any]:
    """``--editor NAME --set KEY=VALUE``: the registered editor, the ``--set`` values as given, as the editor's
    parameters, and the :class:`~idinvert_plugins.editors.base.EditContext` with what it needs or uses."""
    from .editors.base import EditContext
    from .params import parse_assignments
    from .plugins import get_plugins

    editor = get_plugins().get("editor", args.editor)
    kinds = {p.name: p.kind for p in editor.params}
    raw = parse_assignments(args.set)
    unknown = sorted(set(raw) - set(kinds))
    if unknown:
        listing = ", ".join(f"{p.name} ({p.kind})" for p in editor.params) or "none"
        raise ValueError(f"editor {editor.name!r} has no parameter(s) {unknown}; it takes: {listing}")
    values = {k: _editor_value(pipe, kinds[k], k, v) for k, v in raw.items()}
    wanted = set(editor.needs) | set(editor.uses)
    ctx = EditContext(pipe.generator,
                      encoder=pipe.encoder if "encoder" in wanted else None,
                      feature_net=pipe.feature_net if "feature_net" in wanted else None,
                      directions=dict(pipe.directions) if "directions" in wanted else {},
                      classifier=pipe.classifier if "classifier" in wanted else None)
    return editor, raw, values, ctx


def _folder_edit(pipe: Any, args: argparse.Namespace) -> tuple[str, Any]:
    """The edit of ``idinvert edit DIR``, prepared once for every batch: ``(spec, edit)``, ``spec`` the edit as
    text (``smile=+2;age=-1``, ``NAME(KEY=VALUE,...)`` for ``--editor``) and ``edit(latent)`` -> ``(images,
    edited latent)`` (the last variant's latent when the editor returns several)."""
    import torch

    from .editors.manipulate import Manipulate
    from .latent import render

    G = pipe.generator
    if args.editor:
        editor, raw, values, ctx = _editor_setup(pipe, args)
        spec = f"{editor.name}({','.join(f'{k}={v}' for k, v in raw.items())})"

        def run_editor(latent: Any) -> tuple[Any, Any]:
            result = editor(G, latent, context=ctx, **values)
            final = result.latent
            if result.images.ndim == 5:
                final = final.with_wp(final.wp[:, -1])
            return result.images, final

        return spec, run_editor
    layers = _layer_range(G, args.layers)
    conditions = {c: _pipeline_direction(pipe, c) for c in (args.condition_on or [])}
    moves = [(name, strength, _pipeline_direction(pipe, name)) for name, strength in args.edit]
    spec = ";".join(f"{name}={strength:+g}" for name, strength, _ in moves)
    if layers is not None:
        spec += f" layers {layers[0]}:{layers[1]}"
    if conditions:
        spec += f" condition-on {','.join(conditions)}"
    manipulate = Manipulate()

    def run_directions(latent: Any) -> tuple[Any, Any]:
        code = latent.wp
        edited = code.clone()
        for name, strength, n in moves:
            cond = [d for c, d in conditions.items() if c != name]
            new = manipulate(G, code, direction=n, strength=strength, condition_on=cond or None, layers=layers,
                             render=False).codes
            edited = edited + (new - code)
        with torch.no_grad():
            return render(G, latent.with_wp(edited)), latent.with_wp(edited)

    return spec, run_directions


def _run_editor(pipe: Any, latent: Any, tiles: list, args: argparse.Namespace, photo: Any = None) -> int:
    """``idinvert edit --editor NAME --set KEY=VALUE``: any registered editor with its declared parameters; a
    result with several variants (an interpolation) is written as a strip."""
    import torch

    from .codes import save_latent
    from .images import save_strip

    editor, raw, values, ctx = _editor_setup(pipe, args)
    result = editor(pipe.generator, latent, context=ctx, **values)
    images = result.images
    out = Path(args.output)
    if images.ndim == 5:  # variants: input | frames
        frames = images[0]
        save_strip(torch.cat([torch.stack(tiles), frames]) if tiles else frames, out)
        print(f"wrote {out} ({editor.name}: {frames.shape[0]} frames)")
        final = result.latent.with_wp(result.latent.wp[:, -1])
    else:
        _write_result(images, args, photo)
        print(f"wrote {out} ({editor.name} with {', '.join(f'{k}={v}' for k, v in raw.items()) or 'defaults'})")
        final = result.latent
    if args.save_code:
        save_latent(final[0], args.save_code, generator=pipe.name, editor=editor.name, params=json.dumps(raw))
        print(f"wrote {args.save_code} (the edited code{' and its parts' if final.parts else ''})")
    strip = _strip_path(out, args.strip)
    if strip is not None and images.ndim == 4:
        with torch.no_grad():
            from .latent import render

            before = render(pipe.generator, latent)
        save_strip(torch.cat([*([torch.stack(tiles)] if tiles else []), before, images]), strip)
        print(f"wrote {strip} ({'input, ' if tiles else ''}before, after)")
    return 0


def _direction(spec: str, G: Any, extra_dirs: Sequence[str] | None):
    from .editors.directions import load_direction

    try:
        return load_direction(spec, G, extra_dirs=extra_dirs or ())
    except FileNotFoundError as exc:
        raise ValueError(f"{exc} (give a direction name of the model or the path of a .safetensors direction)"
                         ) from None


def _pipeline_direction(pipe: Any, spec: str):
    """A direction of the command's pipeline by name (its ``directions`` folders and ``--directions``), or a
    ``.safetensors`` path."""
    try:
        return pipe.direction(spec)
    except FileNotFoundError as exc:
        raise ValueError(f"{exc} (give a direction name of the model or the path of a .safetensors direction)"
                         ) from None


def _strip_path(output: Path, strip: str | None) -> Path | None:
    if strip is None:
        return None
    return Path(strip) if strip else output.with_name(f"{output.stem}_strip{output.suffix or '.png'}")


def _layer_range(G: Any, layers: tuple[int, int | None] | None) -> tuple[int, int] | None:
    if layers is None:
        return None
    start, stop = layers[0], G.num_layers if layers[1] is None else layers[1]
    if stop > G.num_layers or start >= stop:
        raise ValueError(f"layer range {start}:{stop} is not within this generator's {G.num_layers} W+ layers "
                         f"(use START:STOP with 0 <= START < STOP <= {G.num_layers})")
    return start, stop


# -- commands ---------------------------------------------------------------------------------------------
def cmd_edit(args: argparse.Namespace) -> int:
    import torch

    from .cli_common import pipeline_from_args
    from .codes import load_latent, save_latent
    from .editors.manipulate import Manipulate
    from .images import load_image, save_strip
    from .latent import Latent, render

    pipe = pipeline_from_args(args.model, args)
    G = pipe.generator
    photo = None  # with --align: the photo and its aligned faces
    if args.editor and args.edit:
        raise ValueError("give either --edit NAME=STRENGTH (directions) or --editor NAME [--set KEY=VALUE], not both")
    if not args.edit and not args.editor:
        names = ", ".join(pipe.directions) or "none yet"
        raise ValueError(f"no --edit given: pass --edit {EDIT_FORM}, or --editor NAME (see `idinvert plugins`). "
                         f"Directions of this model: {names}")
    if args.image and Path(args.image).is_dir():  # a folder: batched, resumable, results.csv; torchrun shards it
        from .cli_folders import edit_folder

        return edit_folder(pipe, args, *_folder_edit(pipe, args))
    if args.code:
        latent = load_latent(args.code, G)
        tiles = [load_image(args.image, G.resolution, crop=args.crop).to(args.device)] if args.image else []
    elif args.image and args.align:  # a photo: its faces aligned and inverted; the edits are pasted back
        from .align.commands import aligned_latents

        latent, tiles, photo = aligned_latents(pipe, args.image, args)
    elif args.image:
        latent, tiles = latents_for(pipe, [args.image], args)
    else:
        raise ValueError("give an IMAGE to invert, or --code CODE.safetensors (a code file from `idinvert invert`)")
    if args.align and not args.image:
        raise ValueError("--align needs the PHOTO to paste the edit into (with --code too)")
    if args.editor:
        return _run_editor(pipe, latent, tiles, args, photo)
    code = latent.wp
    layers = _layer_range(G, args.layers)
    conditions = {c: _pipeline_direction(pipe, c) for c in (args.condition_on or [])}
    editor = Manipulate()
    edited, singles = code.clone(), []
    for name, strength in args.edit:
        n = _pipeline_direction(pipe, name)
        cond = [d for spec, d in conditions.items() if spec != name]
        new = editor(G, code, direction=n, strength=strength, condition_on=cond or None, layers=layers,
                     render=False).codes
        delta = new - code
        edited, singles = edited + delta, [*singles, new]
        moved = [i for i in range(G.num_layers) if float(delta[0, i].abs().max()) > 0]
        acc = "" if n.accuracy is None else f", held-out accuracy {n.accuracy:.3f}"
        where = f"layers {moved[0]}..{moved[-1]}" if moved else "no layer"
        print(f"{name}: strength {strength:+g} along {n.source or 'a direction'}{acc}; moved {where} by "
              f"|dw| {float(delta[0].norm(dim=-1).max()):.3f}"
              + (f"; conditioned on {', '.join(s for s in conditions if s != name)}" if cond else ""))
    with torch.no_grad():
        images = render(G, latent.with_wp(edited))
    out = _write_result(images, args, photo)
    print(f"wrote {out} ({len(args.edit)} edit(s) summed"
          + (f"; {len(images)} face(s) pasted into the {photo.photo.shape[1]}x{photo.photo.shape[0]} photo)"
             if photo is not None else ")"))
    if args.save_code:
        save_latent(latent.with_wp(edited), args.save_code, generator=pipe.name, edits=json.dumps(args.edit))
        print(f"wrote {args.save_code} (the edited code{' and its parts' if latent.parts else ''})")
    strip = _strip_path(Path(args.output), args.strip)
    if strip is not None:
        with torch.no_grad():
            frames = [code, *singles] + ([edited] if len(singles) > 1 else [])
            rendered = render(G, Latent.cat([latent.with_wp(f) for f in frames]))
        save_strip(torch.cat([torch.stack(tiles), rendered]) if tiles else rendered, strip)
        print(f"wrote {strip} ({'input, ' if tiles else ''}reconstruction, each edit"
              f"{', all edits' if len(singles) > 1 else ''})")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    import torch

    from .editors.interpolate import Interpolate, single_w
    from .hub import load_generator
    from .images import save_strip

    G = load_generator(args.model, device=args.device)
    codes, tiles = codes_for(G, [args.a, args.b], args)
    if args.space == "w":  # W codes only: each is one w repeated over the layers
        labels = [str(s) if is_code_file(s) else f"{s} (inverted with {args.method})" for s in (args.a, args.b)]
        codes = G.to_wplus(single_w(codes, labels))
    frames = Interpolate()(G, codes[:1], target=codes[1:2], steps=args.frames).images[0]
    out = save_strip(torch.cat([tiles[0][None], frames.to(tiles[0]), tiles[1][None]]), args.output)
    print(f"wrote {out}: input A | {args.frames} frames in {'W' if args.space == 'w' else 'W+'} | input B")
    return 0


def cmd_mix(args: argparse.Namespace) -> int:
    import torch

    from .cli_common import pipeline_from_args
    from .editors.base import restrict_layers
    from .images import save_image, save_strip

    pipe = pipeline_from_args(args.model, args)
    G = pipe.generator
    codes, tiles = codes_for(pipe, [args.a, args.b], args)
    start, stop = _layer_range(G, args.layers)
    mixed = restrict_layers(codes[:1], codes[1:2], (start, stop))
    with torch.no_grad():
        image = G.synthesis(mixed, noise_mode="const")
    out = save_image(image[0], args.output)
    print(f"wrote {out}: layers {start}..{stop - 1} from B, the others from A (of {G.num_layers})")
    strip = _strip_path(Path(args.output), args.strip)
    if strip is not None:
        save_strip(torch.cat([torch.stack(tiles), image.to(tiles[0])]), strip)
        print(f"wrote {strip} (A, B, mix)")
    return 0


def cmd_diffuse(args: argparse.Namespace) -> int:
    import torch

    from .cli_common import pipeline_from_args
    from .editors.diffusion import box_mask, diffuse
    from .images import load_image, save_image
    from .inverters.optimize import resolve_feature_weight

    pipe = pipeline_from_args(args.model, args)
    G = pipe.generator
    R = G.resolution
    target = (load_code(args.target, G) if is_code_file(args.target) else None)
    with torch.no_grad():
        target_img = (G.synthesis(target[None], noise_mode="const")[0] if target is not None
                      else load_image(args.target, R, crop=args.crop).to(args.device))
    if args.mask:
        mask = (load_image(args.mask, R, crop=args.crop).mean(0) > 0).float()[None, None].to(args.device)
        if mask.sum() == 0:
            raise ValueError(f"mask {args.mask} is empty: paint the target region white (above 50 % grey)")
    else:
        cx, cy, w, h = args.box or (R // 2, R // 2, round(R * 110 / 256), round(R * 110 / 256))
        if not (0 <= cx < R and 0 <= cy < R):
            raise ValueError(f"box centre ({cx}, {cy}) is outside the {R}x{R} image: --box takes pixels of the "
                             "generator's resolution")
        mask = box_mask(R, cx, cy, w, h).to(args.device)
    E = pipe.encoder
    if is_code_file(args.context):
        init = load_code(args.context, G)[None]
        with torch.no_grad():
            context = G.synthesis(init, noise_mode="const")
    elif E is None:
        raise ValueError("diffuse needs a domain-guided encoder to start from E(stitched image): pass --encoder "
                         "NAME_OR_FOLDER, or give CONTEXT as a saved W+ code (.safetensors from `idinvert invert`), "
                         "whose code is then the starting point")
    else:
        init, context = None, load_image(args.context, R, crop=args.crop)[None].to(args.device)
    F = pipe.feature_net
    l_feat = resolve_feature_weight(args.l_feat, F)
    codes = diffuse(G, target_img, context, mask, encoder=E, init_codes=init, feature_net=F, steps=args.steps,
                    lr=args.lr, l_feat=l_feat)
    with torch.no_grad():
        result = G.synthesis(codes, noise_mode="const")
    stitched = target_img[None] * mask + context * (1 - mask)
    inside = float((((result - stitched) * mask) ** 2).sum() / (mask.sum() * result.shape[1]))
    out = save_image(result[0], args.output)
    start = "E(stitched)" if E is not None else "the context code"
    print(f"wrote {out}: diffused from {start} in {args.steps} steps, mse inside the region {inside:.5f}")
    if args.stitched:
        print(f"wrote {save_image(stitched[0], args.stitched)} (the stitched input)")
    return 0


def _writable_directions(G: Any, out: str | None, names: Sequence[str] = (), force: bool = False) -> Path:
    """The folder new directions ``names`` go to: ``--out``, else the model's own ``directions/`` when the model
    folder is the user's, else the user folder (``$IDINVERT_HOME/directions/<model>/``; bundled, installed and
    Hub-cache folders are never written to). Existing files of the same names need ``force``: checked before any
    work is done."""
    from .editors.directions import learned_directions_folder

    folder = Path(out).expanduser() if out else learned_directions_folder(G)
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not os.access(probe, os.W_OK):
        raise ValueError(f"{folder} is not writable: pass --out DIR (and use it with `idinvert edit --directions "
                         "DIR`)")
    existing = [folder / f"{n}.safetensors" for n in names if (folder / f"{n}.safetensors").exists()]
    if existing and not force:
        more = f" and {len(existing) - 8} more" if len(existing) > 8 else ""
        shown = ", ".join(p.name for p in existing[:8]) + more
        raise ValueError(f"{folder} already holds {len(existing)} of these directions ({shown}): pass --force to "
                         "overwrite them, or --out DIR to write elsewhere")
    return folder


def _print_saved(paths: Sequence[Path], folder: Path, G: Any = None) -> None:
    from .editors.directions import SUMMARY_NAME, directions_folder, learned_directions_folder

    print(f"wrote {len(paths)} direction(s) to {folder} (+ {SUMMARY_NAME}, README.md)")
    if G is not None and folder.resolve() == learned_directions_folder(G).resolve() != directions_folder(G).resolve():
        shadowed = sorted(p.stem for p in paths if (directions_folder(G) / p.name).exists())
        print(f"(the model's own folder is not written to; these are found by name for {G.resolved.name}"
              + (f", and replace its shipped {', '.join(shadowed)}" if shadowed else "") + ")")


def cmd_directions_learn(args: argparse.Namespace) -> int:
    from .editors.directions import save_directions
    from .editors.interfacegan import ClassifierScorer, learn_generator_directions
    from .hub import load_generator, load_model

    G = load_generator(args.generator, device=args.device)
    if args.classifier is None:  # the classifier of the domain the generator's name belongs to (else the default)
        from .domains import default_domain, domain_for_model

        domain = domain_for_model(str(args.generator), G.resolution) or default_domain()
        if not domain.classifier:
            raise SystemExit(f"domain {domain.name!r} has no attribute classifier: pass --classifier")
        args.classifier = domain.classifier
    classifier = load_model(args.classifier, kind="classifier", device=args.device)
    attributes = None if not args.attributes else "all" if args.attributes == "all" else args.attributes.split(",")
    scorer = ClassifierScorer(classifier, attributes)
    folder = _writable_directions(G, args.out, scorer.names, args.force)
    directions, skipped = learn_generator_directions(G, scorer, n=args.n, seed=args.seed, batch=args.batch,
                                                     ratio=args.ratio, method=args.method, steer=args.steer)
    for d in directions:
        d.extra.update(generator=str(args.generator), classifier=str(args.classifier))
    info = {d.name: {"majority": d.extra.get("majority"), "note": d.extra.get("note") or d.extra.get("label")}
            for d in directions}
    run = {"command": "learn", "generator": str(args.generator), "classifier": str(args.classifier), "n": args.n,
           "seed": args.seed, "ratio": args.ratio, "method": args.method, "steer": args.steer, "skipped": skipped}
    paths = save_directions(directions, folder, info, run)
    print(f"{'direction':<24} {'held-out acc':>12} {'majority':>9}  label")
    for d in directions:
        maj = d.extra.get("majority")
        acc = "" if d.accuracy is None else f"{d.accuracy:.3f}"
        print(f"{d.name:<24} {acc:>12} {'' if maj is None else f'{maj:.3f}':>9}  "
              f"{d.extra.get('label', '')}")
    for name, why in skipped.items():
        print(f"{name:<24} skipped: {why}")
    _print_saved(paths, folder, G)
    return 0


def _save_unsupervised(args: argparse.Namespace, directions: list, prefix: str) -> int:
    from .editors.directions import save_directions

    for d in directions:  # named sefa_00, ganspace_00, ... by the library
        d.extra.update(generator=str(args.model))
    folder = _writable_directions(args.G, args.out, [d.name for d in directions], args.force)
    note = {d.name: {"note": (f"explained variance {d.extra['explained']:.3f}" if "explained" in d.extra
                              else f"eigenvalue {d.extra.get('eigenvalue', 0):.3g}")} for d in directions}
    paths = save_directions(directions, folder, note, {"command": prefix, "generator": str(args.model), "k": args.k})
    for d in directions:
        print(f"{d.name}: {note[d.name]['note']}")
    _print_saved(paths, folder, args.G)
    return 0


def cmd_directions_sefa(args: argparse.Namespace) -> int:
    from .editors.directions import sefa_directions
    from .hub import load_generator

    args.G = load_generator(args.model, device=args.device)
    _writable_directions(args.G, args.out, [f"sefa_{i:02d}" for i in range(args.k)], args.force)
    layers = _layer_range(args.G, args.layers)
    chosen = None if layers is None else list(range(*layers))
    return _save_unsupervised(args, sefa_directions(args.G, k=args.k, layers=chosen), "sefa")


def cmd_directions_ganspace(args: argparse.Namespace) -> int:
    from .editors.directions import ganspace_directions
    from .hub import load_generator

    args.G = load_generator(args.model, device=args.device)
    _writable_directions(args.G, args.out, [f"ganspace_{i:02d}" for i in range(args.k)], args.force)
    return _save_unsupervised(args, ganspace_directions(args.G, n_samples=args.n, k=args.k, seed=args.seed),
                              "ganspace")


def cmd_directions_optimize(args: argparse.Namespace) -> int:
    """Optimise a model's attribute directions through the generator, the classifier and the discriminator
    (:func:`~idinvert_plugins.evaluation.steering.optimize_directions`) and save them under the same names."""
    import torch

    from .editors.crosstalk import measure_crosstalk
    from .editors.directions import save_directions
    from .editors.interfacegan import sample_w
    from .editors.optimized_steering import SteeringOptions
    from .evaluation.editability import classifier_scorer, resolve_targets
    from .evaluation.steering import optimize_directions
    from .hub import load_model
    from .pipeline import Pipeline

    pipe = Pipeline.from_pretrained(args.model, device=args.device)
    G = pipe.generator
    classifier = load_model(args.classifier, kind="classifier", device=args.device) if args.classifier \
        else pipe.classifier
    if classifier is None:  # a folder without pipeline.json: the classifier of the domain its naming rule claims
        from .domains import default_domain, domain_for_model

        domain = domain_for_model(args.model, G.resolution) or default_domain()
        if domain.classifier is None:
            raise ValueError(f"{args.model} has no attribute classifier: pass --classifier NAME")
        classifier = load_model(domain.classifier, kind="classifier", device=args.device)
    if args.discriminator in ("none", ""):
        D = None
    elif args.discriminator:
        D = load_model(args.discriminator, kind="discriminator", device=args.device)
    else:
        D = pipe.discriminator()
    every = pipe.directions
    names = args.names.split(",") if args.names else None
    targets, skipped = resolve_targets(every, classifier.attributes)
    chosen = names or list(targets)
    folder = _writable_directions(G, args.out, chosen, args.force)
    if D is None:
        print("no discriminator (pipeline.json key 'discriminator' or --discriminator): optimising without the "
              "realism term; edits may leave the images the generator makes")
    w = sample_w(G, args.n + args.measure, seed=args.seed, progress=False)[0]
    fit, held_out = G.to_wplus(w[: args.n]), G.to_wplus(w[args.n :])
    opts = SteeringOptions(step=args.step, iterations=args.iterations, batch=args.batch, seed=args.seed)
    optimised, _ = optimize_directions(G, classifier, every, names=chosen, discriminator=D, codes=fit,
                                       seed=args.seed, options=opts)
    for d in optimised.values():
        d.extra.update(generator=str(args.model), classifier=str(getattr(getattr(classifier, "resolved", None),
                                                                             "name", args.classifier)))
    run = {"command": "optimize", "generator": str(args.model), "n": args.n, "iterations": args.iterations,
           "batch": args.batch, "step": args.step, "seed": args.seed, "realism": D is not None}
    info = {}
    if args.measure:
        score = classifier_scorer(classifier, {k: targets[k] for k in targets})
        families = {k: t.attribute for k, t in targets.items()}
        thresholds = {k: t.threshold for k, t in targets.items()}
        with torch.no_grad():
            readings = score(G.synthesis(held_out, noise_mode="const").clamp(-1, 1))
        scales = {k: float(v.double().std()) or 1.0 for k, v in readings.items()}

        def render(c: torch.Tensor) -> torch.Tensor:
            return G.synthesis(c, noise_mode="const").clamp(-1, 1)

        kw = dict(thresholds=thresholds, families=families, scales=scales, step=args.step, statistic="absolute")
        with torch.no_grad():
            before = measure_crosstalk(held_out, {k: every[k] for k in optimised}, render, score, **kw)
            after = measure_crosstalk(held_out, optimised, render, score, **kw)
        print(f"cross-talk on {args.measure} other samples (absolute, step {args.step:g}): before -> after")
        print(f"{'direction':<24} {'success':>15} {'worst (moved most)':>34}  clean")
        for k in optimised:
            (wb, ab), (wa, aa) = before.worst(k), after.worst(k)
            print(f"{k:<24} {before.success[k]:>6.0%} -> {after.success[k]:<6.0%} {wb:>6.2f} ({ab}) -> "
                  f"{wa:.2f} ({aa})  {'clean' if before.clean(k) else 'weak'} -> "
                  f"{'clean' if after.clean(k) else 'weak'}")
            info[k] = {"crosstalk": after.entry(k)}
        print(f"clean: {before.clean_count()} -> {after.clean_count()} of {len(optimised)}")
    paths = save_directions(list(optimised.values()), folder, info, run)
    _print_saved(paths, folder, G)
    return 0


def cmd_directions_list(args: argparse.Namespace) -> int:
    """Print a model's saved directions: steering, held-out accuracy against the majority share (flagged when it
    is no better), and the measured cross-talk (success, worst other attribute, clean or weak) where recorded."""
    from .editors.directions import LEARN_HINT, Direction, directions_folder, find_directions, read_summary

    found = find_directions(args.model, args.directions or ())
    summaries: dict[Path, dict] = {}
    rows = []
    for name, path in found.items():
        d = Direction.load(path)
        if path.parent not in summaries:
            summaries[path.parent] = read_summary(path.parent)["directions"]
        crosstalk = d.extra.get("crosstalk") or summaries[path.parent].get(name, {}).get("crosstalk")
        acc, majority = d.accuracy, d.extra.get("majority")
        rows.append({"name": name, "source": d.source, "attribute": d.attribute, "accuracy": acc,
                     "majority": majority, "below_majority": acc is not None and majority is not None
                     and acc <= majority, "crosstalk": crosstalk, "layers": d.layers, "per_layer": d.per_layer,
                     "n_samples": d.extra.get("n_samples"), "path": str(path)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no directions for {args.model} (looked in {directions_folder(args.model)}); {LEARN_HINT}")
        return 0
    print(f"{'name':<20} {'source':<46} {'held-out acc':>12} {'majority':>9} {'success':>8} "
          f"{'cross-talk (moved most)':<32} {'edit':<6} {'test faces':<17} layers")
    for r in rows:
        acc = "" if r["accuracy"] is None else f"{r['accuracy']:.3f}" + (" !" if r["below_majority"] else "  ")
        maj = "" if r["majority"] is None else f"{r['majority']:.3f}"
        layers = "all" if r["layers"] is None else f"{r['layers'][0]}..{r['layers'][-1]}"
        ct = r["crosstalk"] or {}
        success = "" if ct.get("success") is None else f"{ct['success']:.0%}"
        worst = ("" if not ct else "inf" if ct.get("worst") is None else f"{ct['worst']:.2f}")
        worst += f" ({ct['worst_attribute']})" if ct.get("worst_attribute") else ""
        edit = "" if not ct else ("clean" if ct.get("clean") else "weak")
        test = ct.get("test_faces") or {}
        test_s = "" if not test else (f"{test['success']:.0%} {'clean' if test.get('clean') else 'weak'}")
        print(f"{r['name']:<20} {r['source']:<46} {acc:>12} {maj:>9} {success:>8} {worst:<32} {edit:<6} "
              f"{test_s:<17} {layers}")
    if any(r["below_majority"] for r in rows):
        print("! held-out accuracy at or below the majority share: the boundary does no better than always "
              "guessing the larger class; its edit may still work, the cross-talk columns say")
    measured = [r["crosstalk"] for r in rows if r["crosstalk"]]
    if measured:
        step, samples = measured[0].get("step"), measured[0].get("samples")
        print(f"cross-talk at step {step:g} on {samples} samples (test faces: inverted held-out faces): success = "
              "share of faces whose target moves the intended way; cross-talk = the most another attribute family "
              "moves, relative to the target; clean = success >= 90 % and cross-talk <= 0.5 "
              f"({sum(bool(c.get('clean')) for c in measured)} of {len(measured)} clean)")
    return 0

def cmd_directions_import(args: argparse.Namespace) -> int:
    """Import direction files of other projects (InterFaceGAN .npy, GANSpace .npz, e4e .pt) for a generator
    (:func:`~idinvert_plugins.editors.imported.import_directions`)."""
    from .editors.imported import import_directions
    from .hub import load_generator

    G = load_generator(args.model)
    folder, paths = import_directions(args.file, G, out=args.out, force=args.force, name=args.name,
                                      space=args.space, components=args.components)
    for path in paths:
        from .editors.directions import Direction

        d = Direction.load(path)
        how = ("sets the coordinate (strength: target in standard deviations)" if d.extra.get("edit") ==
               "set-coordinate" else "shifts codes (w + strength * n)")
        print(f"{d.name}: {'per-layer ' if d.per_layer else ''}direction from {Path(args.file).name}; {how}")
    _print_saved(paths, folder, G)
    return 0



# -- parsers ----------------------------------------------------------------------------------------------
def _inversion_args(p: argparse.ArgumentParser, steps_flag: str = "--steps") -> None:
    p.add_argument("--model", required=True, help="generator: a named model, Hub id or folder")
    p.add_argument("--method", default=None, help="how images are inverted: idinvert, encoder, image2stylegan or a "
                                                   "plugin's inverter (default: the model's pipeline.json "
                                                   "default_method, else idinvert)")
    p.add_argument("--encoder", help="domain-guided encoder (name or folder); default: the model's pipeline.json "
                                     "encoder, else MODEL-encoder if it exists; 'none': without")
    p.add_argument("--feature-net", default="auto", help=FEATURE_NET_HELP)
    p.add_argument(steps_flag, dest="steps", type=int, default=None, help="inversion steps (default: the method's)")
    p.add_argument("--crop", action="store_true", help="take the centred square of non-square images")
    p.add_argument("--device", default="cpu")


def add_parsers(sub: Any) -> None:
    """Add ``edit``, ``interpolate``, ``mix``, ``diffuse`` and ``directions`` to the ``idinvert`` subparsers."""
    p = sub.add_parser("edit", help="invert an image (or load a code) and edit it: along named directions "
                                    "(--edit) or with any editor (--editor NAME --set KEY=VALUE)")
    p.add_argument("image", nargs="?", help="the image to edit (optional with --code: then the strip's input), or a "
                                            "folder: every image in it, in batches, resumable, OUT/results.csv")
    _inversion_args(p)
    p.add_argument("--code", help="a W+ code (.safetensors from `idinvert invert`): skip the inversion")
    p.add_argument("--edit", action="append", type=parse_edit, metavar="NAME=STRENGTH",
                   help="a direction and how far to move (repeatable; the offsets add up)")
    p.add_argument("--editor", metavar="NAME", help="run any registered editor instead (built-in or a plugin's; "
                                                    "`idinvert plugins` lists them with their parameters)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a parameter of --editor (repeatable): numbers, true/false, a direction name, a code "
                        "file, an image or mask path, or layers START:STOP, by the parameter's kind")
    p.add_argument("--directions", action="append", metavar="DIR",
                   help="also look up direction names in DIR (repeatable; wins over the model's own)")
    p.add_argument("--condition-on", type=lambda s: [x for x in s.split(",") if x], default=None,
                   metavar="NAME,...", help="keep these attributes fixed (directions made orthogonal to them)")
    p.add_argument("--layers", type=parse_layers, default=None, metavar="START:STOP",
                   help="edit only W+ layers [START, STOP)")
    p.add_argument("--strip", nargs="?", const="", default=None, metavar="PATH",
                   help="also write a strip input | reconstruction | each edit | all edits (default path: "
                        "OUTPUT_strip.png)")
    p.add_argument("--save-code", metavar="PATH", help="also write the edited W+ code")
    from .align.commands import add_align_options

    add_align_options(p, flag=True)
    p.add_argument("--batch", type=int, default=8, help="folders: images inverted and edited together (default 8)")
    p.add_argument("--progress", action="store_true", help="folders: show the progress bar even when not a terminal")
    p.add_argument("-o", "--output", required=True, help="the edited image (with --align: the full-size photo); for "
                                                         "a folder, the output folder (STEM.png, STEM.safetensors, "
                                                         "results.csv)")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("interpolate", help="a strip from one image (or code) to another")
    p.add_argument("a", help="image or W+ code (.safetensors)")
    p.add_argument("b", help="image or W+ code (.safetensors)")
    _inversion_args(p, steps_flag="--inversion-steps")
    p.add_argument("--steps", dest="frames", type=int, default=7, help="frames from A to B, both included")
    p.add_argument("--space", choices=("wplus", "w"), default="wplus",
                   help="wplus: interpolate every W+ layer (images, codes from `idinvert invert`); w: codes that "
                        "are one w repeated over the layers (W+ codes whose layers differ are refused)")
    p.add_argument("-o", "--output", required=True, help="strip: input A | frames | input B")
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("mix", help="style mixing: W+ layers START:STOP from B, the rest from A")
    p.add_argument("a", help="image or W+ code (.safetensors)")
    p.add_argument("b", help="image or W+ code (.safetensors)")
    _inversion_args(p)
    p.add_argument("--layers", type=parse_layers, required=True, metavar="START[:STOP]",
                   help="layers taken from B (fine layers, e.g. 6:, change colours; coarse, e.g. 0:4, pose)")
    p.add_argument("--strip", nargs="?", const="", default=None, metavar="PATH", help="also write A | B | mix")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_mix)

    p = sub.add_parser("diffuse", help="semantic diffusion: blend TARGET's region into CONTEXT")
    p.add_argument("target", help="image (or W+ code) whose region is pasted")
    p.add_argument("context", help="image (needs an encoder) or W+ code (.safetensors) to paste into")
    p.add_argument("--model", required=True, help="generator: a named model, Hub id or folder")
    p.add_argument("--encoder", help="domain-guided encoder; default: the model's pipeline.json encoder, else "
                                     "MODEL-encoder if it exists")
    p.add_argument("--feature-net", default="auto", help=FEATURE_NET_HELP)
    p.add_argument("--box", type=parse_box, default=None, metavar="CX,CY,W[,H]",
                   help="the target region in pixels (default: centred, 43%% of the side)")
    p.add_argument("--mask", help="a mask image instead of the box (white = target region)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--l-feat", type=float, default=None, help="perceptual weight (default: the network's)")
    p.add_argument("--crop", action="store_true", help="take the centred square of non-square images")
    p.add_argument("--stitched", metavar="PATH", help="also write the stitched input")
    p.add_argument("--device", default="cpu")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_diffuse)

    p = sub.add_parser("directions", help="editing directions of a generator: learn, optimize, list, sefa, ganspace")
    dsub = p.add_subparsers(dest="directions_command", required=True)
    d = dsub.add_parser("learn", help="InterFaceGAN: score sampled images with an attribute classifier and fit "
                                      "one linear boundary per attribute in W")
    d.add_argument("generator")
    d.add_argument("--classifier", default=None,
                   help="attribute classifier (default: that of the generator's domain, by its name, else of the "
                        "default domain)")
    d.add_argument("--n", type=int, default=20_000, help="number of sampled codes")
    d.add_argument("--attributes", default=None,
                   help="comma-separated classifier heads, or 'all' (default: the semantic attributes)")
    d.add_argument("--ratio", type=float, default=0.5,
                   help="continuous scores: the top and bottom RATIO of the samples are the two classes "
                        "(0.5: split at the median)")
    d.add_argument("--method", choices=("logistic", "svm"), default="logistic")
    d.add_argument("--steer", choices=STEERINGS, default="normal",
                   help="edit along the boundary's normal (InterFaceGAN), along the covariance of W times it "
                        "(the normal in whitened W; edits more strongly in an anisotropic W), or along the "
                        "difference of the two classes' mean codes (the boundary is kept for scoring); "
                        "conditional / conditional-class-means: the normal / class-mean vector with the "
                        "boundaries of the other attribute families projected out (InterFaceGAN's conditional "
                        "manipulation: less cross-talk, see docs/directions.md); compensated: the class-mean "
                        "vector minus the other attributes' class-mean vectors that cancel their boundary scores")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--batch", type=int, default=256)
    d.add_argument("--device", default="cpu")
    d.add_argument("--out", help=OUT_HELP)
    d.add_argument("--force", action="store_true", help="overwrite direction files of the same names")
    d.set_defaults(func=cmd_directions_learn)

    d = dsub.add_parser("optimize", help="optimise attribute directions through the generator, the classifier "
                                         "and the discriminator so each moves its attribute and leaves the others "
                                         "(docs/directions.md); saved under the same names")
    d.add_argument("model", help="a generator or pipeline (its classifier, discriminator and directions are used)")
    d.add_argument("--names", help="comma-separated directions (default: every one the classifier can read)")
    d.add_argument("--classifier", help="attribute classifier (default: the pipeline's)")
    d.add_argument("--discriminator", help="realism term (default: the pipeline's; 'none' for none)")
    d.add_argument("--iterations", type=int, default=40, help="optimisation steps per direction")
    d.add_argument("--batch", type=int, default=16, help="faces per step")
    d.add_argument("--n", type=int, default=1024, help="generator samples to fit on")
    d.add_argument("--step", type=float, default=3.0, help="the edit step the directions are optimised for")
    d.add_argument("--measure", type=int, default=96,
                   help="other samples on which cross-talk is measured before and after (0: skip)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default="cpu")
    d.add_argument("--out", help=OUT_HELP)
    d.add_argument("--force", action="store_true", help="overwrite direction files of the same names")
    d.set_defaults(func=cmd_directions_optimize)

    d = dsub.add_parser("list", help="the saved directions of a model, with their accuracies")
    d.add_argument("model")
    d.add_argument("--directions", action="append", metavar="DIR", help="also list the directions in DIR")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_directions_list)

    for name, helptext in (("sefa", "SeFa: closed-form directions from the style-modulation weights"),
                           ("ganspace", "GANSpace: principal components of sampled w")):
        d = dsub.add_parser(name, help=helptext)
        d.add_argument("model")
        d.add_argument("-k", type=int, default=5, help="number of directions")
        if name == "sefa":
            d.add_argument("--layers", type=parse_layers, default=None, metavar="START:STOP",
                           help="only these W+ layers' weights (and edits)")
            d.set_defaults(func=cmd_directions_sefa)
        else:
            d.add_argument("--n", type=int, default=10_000, help="number of sampled codes")
            d.add_argument("--seed", type=int, default=0)
            d.set_defaults(func=cmd_directions_ganspace)
        d.add_argument("--device", default="cpu")
        d.add_argument("--out", help=OUT_HELP)
        d.add_argument("--force", action="store_true", help="overwrite direction files of the same names")

    d = dsub.add_parser("import", help="import editing directions people have: InterFaceGAN boundaries (.npy), "
                                       "GANSpace components (.npz), e4e's interfacegan_directions / ganspace_pca "
                                       "files (.pt); official edit semantics kept (docs/encoders.md)")
    d.add_argument("file", help="the direction file")
    d.add_argument("--model", required=True, help="the generator the directions are for (name, Hub id or folder)")
    d.add_argument("--name", help="name of the direction (a single one) or prefix of numbered components")
    d.add_argument("--components", type=parse_seeds, default=None, metavar="LIST",
                   help="principal components to import from GANSpace / e4e PCA files, e.g. 0-19 or 46,54 "
                        "(default: all)")
    d.add_argument("--space", choices=("w",), default=None,
                   help="w: read an InterFaceGAN boundary whose name does not say _w_ as a W-space direction")
    d.add_argument("--out", help=OUT_HELP)
    d.add_argument("--force", action="store_true", help="overwrite direction files of the same names")
    d.set_defaults(func=cmd_directions_import)
