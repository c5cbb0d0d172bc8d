"""One browser session's state and the actions the app runs on it (no Gradio in here, so it is unit-testable).

A :class:`Session` lives in the session's ``gr.State``: the inverted image and code, the second image for
interpolation and style mixing, the last result and its strip of frames. Models come from the shared
read-only :class:`~idinvert_plugins.app.models.ModelRegistry`; nothing a user uploads or computes is stored
anywhere else, so concurrent users cannot see each other's data.

Problems a user can fix (a bad upload, a missing second image) raise :class:`AppError` with a message saying
what to do; the UI shows it and keeps serving.
"""

from __future__ import annotations

import re
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..codes import save_latent
from ..domain import check_reconstruction
from ..editors.base import EditContext, Editor, EditResult
from ..editors.manipulate import Manipulate
from ..images import ImageError, load_image, open_image, to_uint8
from ..inverters.base import Inverter
from ..latent import Latent
from ..latent import render as render_latent
from ..metrics import mse
from ..plugins import get_plugins
from .models import ModelBundle

#: side of the images shown in the page (the model's own size is usually smaller: 64 px for the bundled models)
DISPLAY_SIZE = 256
#: labels of the built-in inverters in the menu (plugin inverters appear under their own names)
INVERTER_LABELS = {"encoder": "Encoder only", "idinvert": "IDInvert (encoder + optimisation)",
                   "image2stylegan": "Image2StyleGAN (optimisation from the average)"}
DOWNLOAD_MAX_AGE_S = 3600.0


class AppError(ValueError):
    """A problem the user can fix, with the way out in the message."""


#: ``progress(step, total, description)`` during long actions
Progress = Callable[[int, int, str], None]


@dataclass
class Session:
    """Everything one browser session has computed. Tensors are on the CPU, codes are W+ ``[L, D]``; ``parts``
    and ``result_parts`` hold what else the inversion kept (noise maps, a tuned generator's weight offsets,
    S-space offsets: :mod:`idinvert_plugins.latent`), which every edit keeps and every render applies."""

    model: str | None = None
    image: torch.Tensor | None = None  # [3, R, R] in [-1, 1], as the model sees it
    code: torch.Tensor | None = None
    parts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    recon: torch.Tensor | None = None
    method: str = ""
    second_image: torch.Tensor | None = None
    second_code: torch.Tensor | None = None
    frames: torch.Tensor | None = None  # [K, L, D] codes of the last strip
    frame_images: torch.Tensor | None = None  # [K, 3, R, R]
    result_code: torch.Tensor | None = None
    result_parts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    result_image: torch.Tensor | None = None
    downloads: dict[str, str] = field(default_factory=dict)
    #: raw values of the Invert tab's option controls, per method (decoded when it inverts; kept across models)
    inverter_options: dict[str, list[Any]] = field(default_factory=dict)

    def reset(self, model: str | None) -> None:
        """Forget everything computed with another model (the options chosen for the methods stay)."""
        fresh = Session(model=model, inverter_options=self.inverter_options)
        self.__dict__.update(fresh.__dict__)

    def require_code(self) -> torch.Tensor:
        if self.code is None:
            raise AppError("Invert an image first (Invert tab: upload or pick an example, then press Invert).")
        return self.code

    def latent(self) -> Latent:
        """The inverted image's latent (batch of 1): its code and parts."""
        return Latent(self.require_code()[None], self.parts)


# -- images -------------------------------------------------------------------------------------------------
def payload_path(payload: Any) -> Any:
    """The file behind a Gradio upload payload (a FileData dict or a path); other sources pass through."""
    if isinstance(payload, dict):
        return payload.get("path") or payload.get("url")
    return payload


def describe_source(img: Image.Image) -> str:
    """How an opened (not yet converted) image differs from plain 8-bit RGB, for the page's notes."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        return "16-bit greyscale, rescaled to 8-bit"
    if mode == "F":
        return "floating-point greyscale, rescaled to 8-bit"
    if mode == "CMYK":
        return "CMYK, converted to RGB"
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        return "transparent, composited on white"
    if mode in ("L", "1"):
        return "greyscale, converted to RGB"
    return ""


def read_image(source: Any, resolution: int, what: str = "image") -> tuple[torch.Tensor, list[str]]:
    """An uploaded image as ``[3, R, R]`` in [-1, 1] at the model's resolution, plus notes on what was done.

    Non-square images are cropped to their centred square. Unusable files raise :class:`AppError`.
    """
    path = payload_path(source)
    if path is None or (isinstance(path, str) and not path):
        raise AppError(f"No {what}: upload one (PNG or JPEG) or pick an example.")
    notes: list[str] = []
    converted = ""
    if isinstance(path, (str, Path)):
        try:  # the header only, for the notes; open_image below does the checking
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(path) as probe:
                    converted = describe_source(probe)
        except Exception:  # noqa: BLE001 - whatever is wrong, open_image reports it properly
            pass
    try:
        img = open_image(Path(path) if isinstance(path, str) else path)
    except ImageError as exc:
        message = re.sub(r" \(cannot identify image file [^)]*\)", "", str(exc).replace(str(path), "the upload"))
        raise AppError(f"That {what} cannot be used: {message}") from None
    if converted:
        notes.append(f"The {what} is {converted}.")
    w, h = img.size
    side = min(w, h)
    if w != h:
        notes.append(f"The {what} is {w}x{h}: the centred {side}x{side} square is used.")
    if side != resolution:
        notes.append(f"The {what} was resized from {side} to the model's {resolution} px.")
    return load_image(img, resolution, crop=True), notes


def display(image: torch.Tensor | None, size: int = DISPLAY_SIZE) -> np.ndarray | None:
    """``[3, R, R]`` in [-1, 1] -> uint8 ``size x size`` for the page: nearest-neighbour upscaling by an integer
    factor, so every model pixel is shown as a sharp block (the bundled models are 64 px)."""
    if image is None:
        return None
    arr = to_uint8(image)
    factor = max(1, size // arr.shape[0])
    return np.repeat(np.repeat(arr, factor, axis=0), factor, axis=1) if factor > 1 else arr


def strip(images: torch.Tensor, size: int = 128) -> np.ndarray:
    """Frames ``[K, 3, R, R]`` side by side, each upscaled to about ``size`` px, 4 px white gaps."""
    tiles = [display(img, size) for img in images]
    gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for i, tile in enumerate(tiles):
        parts += [gap, tile] if i else [tile]
    return np.concatenate(parts, axis=1)


# -- inversion ----------------------------------------------------------------------------------------------
def inverter_choices() -> list[tuple[str, str]]:
    """(label, name) of every registered inverter, the built-ins first."""
    names = get_plugins().names("inverter")
    ordered = [n for n in INVERTER_LABELS if n in names] + [n for n in names if n not in INVERTER_LABELS]
    return [(INVERTER_LABELS.get(n, n), n) for n in ordered]


def default_steps(method: str) -> int | None:
    """The declared default of an inverter's ``steps`` parameter (None if it has none)."""
    for p in _inverter(method).params:
        if p.name == "steps":
            return int(p.default)
    return None


def _inverter(method: str) -> Inverter:
    try:
        return get_plugins().get("inverter", method)
    except LookupError as exc:
        raise AppError(str(exc)) from None


@dataclass
class Inversion:
    """What one inversion produced, for the page."""

    code: torch.Tensor  # [L, D]
    image: torch.Tensor  # [3, R, R] reconstruction
    target: torch.Tensor  # [3, R, R] the input as the model saw it
    mse: float
    seconds: float
    method: str
    steps: int
    notes: list[str]
    parts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    def summary(self) -> str:
        label = INVERTER_LABELS.get(self.method, self.method)
        steps = f", {self.steps} iterations" if self.method != "encoder" else ""
        text = f"**MSE {self.mse:.4f}** (pixels in [-1, 1]) in **{self.seconds:.2f} s** with {label}{steps}."
        return "\n\n".join([text, *self.notes])


def invert_image(bundle: ModelBundle, source: Any, method: str, steps: int | None = None,
                 progress: Progress | None = None, what: str = "image", options: dict[str, Any] | None = None
                 ) -> Inversion:
    """Invert one uploaded image with the named inverter; ``progress(step, total, text)`` follows the steps;
    ``options``: other declared parameters of the inverter (the Invert tab's *Options of the method*)."""
    G = bundle.generator
    target, notes = read_image(source, bundle.resolution, what)
    inverter = _inverter(method)
    declared = {p.name for p in inverter.params}
    options = {k: v for k, v in (options or {}).items() if k in declared}
    if "steps" in declared and steps is not None:
        options["steps"] = int(steps)
    init = None
    encoder = bundle.pipeline.encoder_for(inverter)  # a method's own encoder ("encoders": {"e4e": ...}) or the main one
    if inverter.requires_encoder and encoder is None:
        role = getattr(inverter, "encoder_role", None)
        if role:
            from ..inverters.psp_family import encoder_key_hint

            raise AppError(f"{INVERTER_LABELS.get(method, method)} needs its {role} encoder, and {bundle.name!r} has "
                           f"none: {encoder_key_hint(role, None)}; or choose "
                           "IDInvert or Image2StyleGAN instead.")
        if method == "encoder" or "steps" not in declared:
            raise AppError(f"{INVERTER_LABELS.get(method, method)} needs this model's encoder, and "
                           f"{bundle.name!r} has none: choose IDInvert or Image2StyleGAN instead.")
        # IDInvert without an encoder: start from w_avg, and the domain regulariser (which needs E) is off
        init = G.w_avg.detach().expand(1, G.num_layers, -1).clone()
        if "l_dom" in declared:
            options["l_dom"] = 0.0
        notes.append("No encoder for this model: IDInvert started from the average code without the domain "
                     "regulariser.")
    total = int(options.get("steps", default_steps(method) or 0)) if "steps" in declared else 0

    def on_step(step: int, codes: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        if progress is not None:
            progress(step, total, f"{INVERTER_LABELS.get(method, method)}: loss {terms['total'].mean():.4f}")

    if progress is not None:
        progress(0, max(total, 1), f"{INVERTER_LABELS.get(method, method)}: starting")
    try:
        result = inverter.invert(G, target[None], encoder=encoder, feature_net=bundle.feature_net,
                                 init_codes=init, callback=on_step, **options)
    except (ValueError, TypeError) as exc:  # a missing or bad option (no hole painted, ...): say what to do
        raise AppError(f"{INVERTER_LABELS.get(method, method)}: {exc}") from None
    recon = result.images[0].detach().cpu()
    error = float(mse(recon.clamp(-1, 1)[None], target[None])[0])  # of the picture shown, i.e. clipped
    warning = check_reconstruction(bundle.pipeline, method, error) if init is None else None
    if warning is not None:  # shown next to the reconstruction, first
        notes.insert(0, f"⚠️ **Far from the model's domain.** {warning[0].upper()}{warning[1:]}")
    parts = result.latent.detach().to("cpu").parts
    return Inversion(result.codes[0].detach().cpu(), recon, target, error, result.seconds, method, total, notes,
                     parts)


def apply_inversion(session: Session, inversion: Inversion, model: str) -> None:
    """Make ``inversion`` the session's image to edit (the earlier strip and result are forgotten)."""
    session.model = model
    session.image, session.code, session.recon = inversion.target, inversion.code, inversion.image
    session.parts = inversion.parts
    session.method = inversion.method
    session.frames = session.frame_images = None
    session.result_code, session.result_image = inversion.code, inversion.image
    session.result_parts = inversion.parts


# -- editing ------------------------------------------------------------------------------------------------
def render(bundle: ModelBundle, codes: torch.Tensor, parts: dict | None = None) -> torch.Tensor:
    """W+ codes ``[..., L, D]`` -> images ``[..., 3, R, R]`` (const noise, no gradients), with the latent
    ``parts`` of their image (``codes`` then ``[1, L, D]`` or ``[1, K, L, D]``)."""
    G = bundle.generator
    with torch.no_grad():
        if parts:
            return render_latent(G, Latent(codes, parts)).cpu()
        flat = codes.reshape(-1, *codes.shape[-2:])
        images = G.synthesis(flat, noise_mode="const").cpu()
    return images.reshape(*codes.shape[:-2], *images.shape[1:])


def edit_directions(bundle: ModelBundle, session: Session, strengths: dict[str, float]) -> torch.Tensor:
    """Move the inverted code along the model's directions by ``strengths`` (name -> distance), render it and
    make it the session's result. Each move is the ``manipulate`` editor's ``w + a n``."""
    code = session.require_code()[None]
    unknown = sorted(set(strengths) - set(bundle.directions))
    if unknown:
        raise AppError(f"{bundle.name!r} has no direction(s) {unknown}; it has {sorted(bundle.directions)}")
    manipulate = Manipulate()
    G = bundle.generator
    with torch.no_grad():
        for name, strength in strengths.items():
            if strength:
                code = manipulate(G, code, render=False, direction=bundle.directions[name],
                                  strength=float(strength)).codes
    image = render(bundle, code, session.parts)[0]
    session.result_code, session.result_image, session.result_parts = code[0], image, session.parts
    return image


def edit_context(bundle: ModelBundle) -> EditContext:
    """What editors of this model may use: its encoder, perceptual network and directions (semantic diffusion,
    for one, follows the paper with the encoder: init ``E(stitched)``)."""
    return EditContext(bundle.generator, encoder=bundle.encoder, feature_net=bundle.feature_net,
                       directions=dict(bundle.directions))


def run_editor(bundle: ModelBundle, session: Session, editor: Editor, values: dict[str, Any]) -> EditResult:
    """Run any editor on the session's inverted code with decoded parameter values. A result with several
    frames (``[1, K, L, D]``) becomes the session's strip; the last frame is the downloadable result."""
    latent = session.latent()
    try:
        result = editor(bundle.generator, latent, context=edit_context(bundle), **values)
    except AppError:
        raise
    except (ValueError, TypeError, LookupError) as exc:
        raise AppError(f"{editor.name}: {exc}") from None
    codes = result.codes.detach().cpu()
    parts = result.latent.detach().to("cpu").parts if result.latent is not None else session.parts
    images = result.images.detach().cpu() if result.images is not None else render(bundle, codes, parts)
    session.result_parts = parts
    if codes.ndim == 4:
        session.frames, session.frame_images = codes[0], images[0]
        session.result_code, session.result_image = codes[0, -1], images[0, -1]
    else:
        session.frames = session.frame_images = None
        session.result_code, session.result_image = codes[0], images[0]
    return EditResult(codes=codes, images=images, info=result.info, latent=result.latent)


def select_frame(session: Session, index: int) -> torch.Tensor:
    """Make frame ``index`` of the last strip the session's result and return its image."""
    if session.frames is None or session.frame_images is None:
        raise AppError("Make a strip first (Interpolate tab: press Interpolate).")
    index = int(np.clip(int(index), 0, len(session.frames) - 1))
    session.result_code, session.result_image = session.frames[index], session.frame_images[index]
    return session.result_image


# -- downloads ----------------------------------------------------------------------------------------------
def downloads_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / "idinvert-app" / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _prune(folder: Path, max_age_s: float) -> None:
    cutoff = time.time() - max_age_s
    for path in folder.glob("*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


def write_downloads(session: Session, model: str, what: str) -> tuple[str | None, str | None]:
    """Write the session's current result as a PNG (the model's resolution) and its W+ code as safetensors
    (:func:`idinvert_plugins.codes.save_code`, as ``idinvert invert`` writes them); return both paths."""
    if session.result_code is None or session.result_image is None:
        return None, None
    folder = downloads_dir()
    _prune(folder, DOWNLOAD_MAX_AGE_S)
    stem = f"{what}-{uuid.uuid4().hex[:10]}"
    png = folder / f"{stem}.png"
    Image.fromarray(to_uint8(session.result_image)).save(png)
    code = folder / f"{stem}.safetensors"
    save_latent(Latent(session.result_code[None], session.result_parts), code, generator=model, made_with=what)
    session.downloads = {"image": str(png), "code": str(code)}
    return str(png), str(code)


__all__ = ["AppError", "DISPLAY_SIZE", "Inversion", "Session", "apply_inversion", "default_steps", "display",
           "edit_directions", "invert_image", "inverter_choices", "payload_path", "edit_context", "read_image",
           "render", "run_editor", "select_frame", "strip", "write_downloads"]
