"""``idinvert align`` (photos -> aligned crops + transforms) and ``idinvert paste`` (a crop back into its photo),
and the ``--align`` options shared with ``idinvert invert`` and ``idinvert edit``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import LANDMARKS_HELP

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def parse_face(text: str) -> int | str:
    """``--face``: a face index (0 = the largest) or ``all``."""
    if text == "all":
        return "all"
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad --face {text!r}: a face index (0 = the largest) or 'all'") from None
    if k < 0:
        raise argparse.ArgumentTypeError(f"bad --face {text!r}: indices start at 0 (the largest face)")
    return k


def add_align_options(p: argparse.ArgumentParser, *, flag: bool) -> None:
    """The options of alignment; ``flag``: add ``--align`` and ``--save-crops`` (``invert`` and ``edit``)."""
    if flag:
        p.add_argument("--align", action="store_true",
                       help="the inputs are photos: find the faces, align them for the generator (FFHQ-style, "
                            "its template), and paste the results back into the full-size photo")
        p.add_argument("--save-crops", action="store_true",
                       help="with --align: also write each face's aligned crop, the generator's crop and the "
                            "transform (STEM_K_crop.png, STEM_K_<result>.png, STEM_K.json)")
    p.add_argument("--face", type=parse_face, default=None, metavar="K|all",
                   help="which face of a photo: its index (0 = the largest, then left to right) or all "
                        "(default: 0)")
    p.add_argument("--aligner", default=None,
                   help="who finds the faces: dlib (real photos, the [align] extra), json (PHOTO_STEM.landmarks.json "
                        "beside each photo), or the aligner of a domain or plugin (`idinvert plugins` lists them; "
                        f"here: {', '.join(_registered('aligner'))}). Default: the generator's pipeline.json "
                        "alignment, else its domain's, else dlib")
    p.add_argument("--landmarks", metavar="FILE.json", help=LANDMARKS_HELP + "; instead of an aligner (one photo)")
    p.add_argument("--template", default=None,
                   help="where the face sits in the crop: ffhq or a domain's template (here: "
                        f"{', '.join(_template_names())}; default: the generator's)")


def _registered(kind: str) -> list[str]:
    """Names of the registered items of ``kind`` for a help text (none if the registry cannot load)."""
    try:
        from ..plugins import get_plugins

        return get_plugins().names(kind)
    except Exception:  # help text only: the command itself reports a broken registry
        return []


def _template_names() -> list[str]:
    try:
        from .photo import template_names

        return template_names()
    except Exception:  # help text only
        return ["ffhq"]


def photo_alignment(args: argparse.Namespace, model: str | Path | None, config: dict | None = None) -> dict[str, Any]:
    """The aligner name and template of a command: its options, else what goes with ``model``."""
    from .photo import alignment_for, get_template

    chosen = alignment_for(model, config)
    if getattr(args, "aligner", None):
        chosen["aligner"] = args.aligner
    if getattr(args, "template", None):
        chosen["template"] = get_template(args.template)
    return chosen


def expand_photos(paths: Sequence[str | Path]) -> list[Path]:
    """Photo files of the arguments: files as given, folders expanded to their images (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in PHOTO_SUFFIXES and f.is_file())
        else:
            out.append(p)
    return out


@dataclass
class PhotoFaces:
    """A photo of a command and its aligned faces (crops at the generator's resolution)."""

    path: Path
    photo: np.ndarray
    faces: list[Any]

    def paste(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        """The photo with ``images`` (``[n_faces, 3, R, R]`` in [-1, 1], one per face) pasted back."""
        from .photo import paste_faces

        return paste_faces(self.photo, list(images), [f.transform for f in self.faces])

    def write(self, images: Any, output: str | Path) -> Path:
        """Paste ``images`` back and write the full-size photo to ``output``."""
        from PIL import Image

        result, _ = self.paste(images)
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(result).save(output)
        return output


def align_photos_for(pipe: Any, sources: Sequence[str | Path], args: argparse.Namespace) -> list[PhotoFaces]:
    """Align the faces of photos ``sources`` for ``pipe``'s generator (its alignment, or the command's
    ``--aligner`` / ``--template`` / ``--landmarks`` / ``--face``)."""
    from .photo import align_photo, load_photo

    photos = expand_photos(sources)
    if getattr(args, "landmarks", None) and len(photos) > 1:
        raise ValueError("--landmarks FILE gives the faces of one photo; for several, use --aligner json "
                         "(PHOTO_STEM.landmarks.json beside each photo)")
    chosen = photo_alignment(args, pipe.name, getattr(pipe, "config", None))
    groups = []
    for path in photos:
        photo = load_photo(path)
        faces = align_photo(photo, aligner=chosen["aligner"], template=chosen["template"], size=pipe.resolution,
                            face=args.face, landmarks=getattr(args, "landmarks", None), source=path, name=path.name)
        groups.append(PhotoFaces(path, photo, faces))
    return groups


def crops_of(groups: Sequence[PhotoFaces]) -> Any:
    """The aligned crops of all faces of ``groups``, ``[N, 3, R, R]`` in [-1, 1]."""
    import torch

    from ..images import from_uint8

    return torch.stack([from_uint8(f.crop) for g in groups for f in g.faces])


def save_face_files(group: PhotoFaces, folder: Path, crops: Any = None, results: Any = None, suffix: str = "") -> None:
    """``STEM_K.json`` (the transform) per face, and with ``crops`` / ``results`` the aligned input and the
    generator's output crops (``STEM_K_crop.png``, ``STEM_K{suffix}.png``)."""
    from ..images import save_image

    for j, f in enumerate(group.faces):
        stem = f"{group.path.stem}_{f.face}"
        f.transform.save(folder / f"{stem}.json")
        if crops is not None:
            save_image(crops[j], folder / f"{stem}_crop.png")
        if results is not None:
            save_image(results[j], folder / f"{stem}{suffix}.png")


def invert_photos(pipe: Any, args: argparse.Namespace) -> int:
    """``idinvert invert GEN PHOTO... --align``: align, invert the crops, paste the reconstructions back; writes
    ``STEM.png`` (full size), ``STEM_K.safetensors`` and ``STEM_K.json`` per face (and the crops with
    ``--save-crops``)."""
    from ..cli_common import composed_method
    from ..codes import save_latent
    from ..domain import warn_out_of_domain
    from ..metrics import mse
    from ..params import parse_assignments

    t0 = time.perf_counter()
    groups = align_photos_for(pipe, args.images, args)
    t_align = time.perf_counter() - t0
    x = crops_of(groups)
    method, inverter = composed_method(pipe, args.method, args.embed, args.refine)
    options = parse_assignments(args.set)
    if args.steps is not None and "steps" in {p.name for p in inverter.params}:
        options.setdefault("steps", args.steps)
    if args.bf16:
        options["autocast"] = True
    result = pipe.invert(x, inverter, progress=True, **options)
    method = result.info.get("inverter", method)
    errors = mse(result.images.to(x), x)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    i = 0
    for g in groups:
        n = len(g.faces)
        images = result.images[i:i + n].detach().cpu()
        path = g.write(images, out / f"{g.path.stem}.png")
        for j, f in enumerate(g.faces):
            save_latent(result.latent[i + j], out / f"{g.path.stem}_{f.face}.safetensors", generator=pipe.name,
                        method=method)
            print(f"{g.path.name}: face {f.face} mse {float(errors[i + j]):.5f} (aligned crop)")
            warn_out_of_domain(pipe, method, f"{g.path.name} face {f.face}", float(errors[i + j]))
        save_face_files(g, out, x[i:i + n] if args.save_crops else None, images if args.save_crops else None,
                        "_inverted")
        print(f"  -> {path} ({g.photo.shape[1]}x{g.photo.shape[0]}, {n} face(s) pasted back), "
              f"{g.path.stem}_K.safetensors, {g.path.stem}_K.json")
        i += n
    print(f"{len(x)} face(s) of {len(groups)} photo(s) aligned in {t_align:.2f} s and inverted with {method} in "
          f"{result.seconds:.2f} s")
    return 0


def aligned_latents(pipe: Any, source: str | Path, args: argparse.Namespace) -> tuple[Any, list, PhotoFaces]:
    """``idinvert edit PHOTO --align``: the latents of the photo's chosen faces (inverted together), their crops
    (the strip's input tiles) and the photo, to paste the edits into."""
    from ..domain import warn_out_of_domain
    from ..metrics import mse

    [group] = align_photos_for(pipe, [source], args)
    x = crops_of([group])
    from ..cli_common import composed_method

    method, inverter = composed_method(pipe, args.method, None, None)
    options = {"steps": args.steps} if args.steps is not None and "steps" in {p.name for p in inverter.params} \
        else {}
    result = pipe.invert(x, inverter, progress=True, **options)
    errors = mse(result.images.to(x), x)
    for j, f in enumerate(group.faces):
        print(f"{group.path.name}: face {f.face} inverted with {method}, mse {float(errors[j]):.5f}")
        warn_out_of_domain(pipe, method, f"{group.path.name} face {f.face}", float(errors[j]))
    return result.latent.detach(), list(x), group


def cmd_align(args: argparse.Namespace) -> int:
    from .photo import align_photo, load_photo

    photos = expand_photos(args.photos)
    if args.landmarks and len(photos) > 1:
        raise ValueError("--landmarks FILE gives the faces of one photo; for several, use --aligner json "
                         "(PHOTO_STEM.landmarks.json beside each photo)")
    config = None
    if args.model:
        from ..hub import resolve_model
        from ..pipeline import read_pipeline_config

        config = read_pipeline_config(resolve_model(args.model).folder)
    chosen = photo_alignment(args, args.model, config)
    size = args.size or (_model_resolution(args.model) if args.model else 256)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    total, t0 = 0, time.perf_counter()
    for path in photos:
        photo = load_photo(path)
        faces = align_photo(photo, aligner=chosen["aligner"], template=chosen["template"], size=size, face=args.face,
                            landmarks=args.landmarks, source=path, name=path.name)
        for f in faces:
            stem = f"{path.stem}_{f.face}"
            crop_path, tf_path = out / f"{stem}.png", out / f"{stem}.json"
            for existing in (crop_path, tf_path):
                if existing.exists() and not args.force:
                    raise ValueError(f"{existing} exists: pass --force to overwrite, or -o another folder")
            from PIL import Image

            Image.fromarray(f.crop).save(crop_path)
            f.transform.save(tf_path)
            eyes = f.transform.to_crop(f.found.landmarks[:2])
            print(f"{path.name}: face {f.face} ({f.transform.aligner}, score {f.found.score:.2f}) -> {crop_path.name}, "
                  f"{tf_path.name}  [{size}px, {f.transform.scale:.2f} photo px per crop px, rotated "
                  f"{f.transform.angle:+.1f} deg, eyes at ({eyes[0, 0]:.1f}, {eyes[0, 1]:.1f}) "
                  f"({eyes[1, 0]:.1f}, {eyes[1, 1]:.1f})]")
            total += 1
    dt = time.perf_counter() - t0
    print(f"{total} face(s) from {len(photos)} photo(s) aligned with {chosen['aligner']} (template "
          f"{chosen['template'].name}) in {dt:.2f} s ({1000 * dt / max(len(photos), 1):.0f} ms per photo)")
    return 0


def _model_resolution(model: str | Path) -> int:
    from ..hub import read_config, resolve_model

    args = read_config(resolve_model(model).folder).get("args", {})
    if "resolution" not in args:
        raise ValueError(f"{model}: cannot tell its resolution; pass --size N")
    return int(args["resolution"])


def cmd_paste(args: argparse.Namespace) -> int:
    from PIL import Image

    from .photo import load_photo
    from .transform import AlignTransform, paste_back

    out = Path(args.output)
    if out.exists() and not args.force:
        raise ValueError(f"{out} exists: pass --force to overwrite it")
    photo = load_photo(args.photo)
    crop = load_photo(args.crop)
    tf = AlignTransform.load(args.transform)
    result, mask = paste_back(photo, crop, tf, return_mask=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(result).save(out)
    print(f"wrote {out} ({result.shape[1]}x{result.shape[0]}; {int((mask > 0).sum())} pixels inside the blend "
          "mask changed at most, the rest are the photo's)")
    if args.mask:
        Image.fromarray((mask * 255 + 0.5).astype("uint8")).save(args.mask)
        print(f"wrote {args.mask} (the blend mask)")
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``align`` and ``paste`` to the ``idinvert`` subparsers."""
    p = sub.add_parser("align", help="find the faces of photos and write aligned crops with their transforms",
                       description="Find the faces of photos, cut FFHQ-style aligned crops and write each with "
                                   "the transform that undoes it (PHOTO_K.png + PHOTO_K.json, K the face index).")
    p.add_argument("photos", nargs="+", help="photo files or folders of photos")
    p.add_argument("--model", help="the generator the crops are for: its alignment (aligner, template) and "
                                   "resolution are the defaults")
    add_align_options(p, flag=False)
    p.add_argument("--size", type=int, default=None, help="crop side in pixels (default: the model's resolution, "
                                                          "else 256)")
    p.add_argument("--force", action="store_true", help="overwrite existing crops and transforms")
    p.add_argument("-o", "--output", required=True, help="folder for PHOTO_K.png and PHOTO_K.json")
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("paste", help="paste an aligned (edited) crop back into its photo with its transform",
                       description="Warp a crop back into the full-size photo with the transform `idinvert align` "
                                   "wrote, blended with a feathered face mask (pixels outside it are unchanged).")
    p.add_argument("photo")
    p.add_argument("crop", help="the crop (any size: the transform's quad decides where it goes)")
    p.add_argument("transform", help="PHOTO_K.json from `idinvert align` (or --save-transforms)")
    p.add_argument("--mask", metavar="PATH", help="also write the blend mask")
    p.add_argument("--force", action="store_true", help="overwrite OUTPUT")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_paste)


__all__ = ["PhotoFaces", "add_align_options", "add_parsers", "align_photos_for", "aligned_latents", "cmd_align",
           "cmd_paste", "crops_of", "expand_photos", "invert_photos", "parse_face", "photo_alignment",
           "save_face_files"]
