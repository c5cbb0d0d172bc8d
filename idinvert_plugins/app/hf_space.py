"""``idinvert space export DIR``: a Hugging Face Space folder that serves the app on one model.

The folder holds ``app.py`` (builds the app on the copied model and launches it), ``requirements.txt``,
``README.md`` with the Spaces YAML header (``sdk: gradio``, ``sdk_version``, ``app_file``, ...), a
``.gitattributes`` that stores weights with Git LFS, the model folders it needs under ``models/`` (generator
with its ``directions/``, encoder, perceptual network), and by default a copy of this library (it is not
published on PyPI) plus the ``hooks/`` plugins. Push the folder to a Space repository to host it.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from .. import __version__
from ..hub import CONFIG_NAME, ModelNotFoundError, ResolvedModel, read_config, resolve_model
from ..pipeline import PIPELINE_NAME, Pipeline, _none, write_pipeline_config
from .models import AUTO, default_model

PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: used when the installed distribution's metadata cannot be read (e.g. a vendored copy)
CORE_REQUIREMENTS = ("numpy>=1.24", "pillow>=10", "safetensors>=0.4", "huggingface_hub>=0.23", "pluggy>=1.3",
                     "tqdm>=4.60", "PyYAML>=6")
FALLBACK_GRADIO_VERSION = "6.31.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

APP_TEMPLATE = '''"""Hugging Face Space entry point (written by `idinvert space export`): the app on {label}."""

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from idinvert_plugins.app import ModelSpec, build_app, launch_options  # noqa: E402

MODELS = Path(__file__).resolve().parent / "models"
MODEL = ModelSpec(
    str(MODELS / {generator!r}),
    encoder={encoder},
    feature_net={feature_net},
    label={label!r},
)

demo = build_app([MODEL], include_bundled=False)

if __name__ == "__main__":
    demo.launch(**launch_options())
'''


def _slug(name: str) -> str:
    text = Path(str(name).split("@")[0].rstrip("/")).name or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "model"


def _shown(resolved: ResolvedModel) -> str:
    """A model's name for the Space README (never a local path of the exporting machine)."""
    return _slug(resolved.name) if resolved.origin == "path" else resolved.name


def _copy_model(folder: Path, dest: Path) -> Path:
    if not (folder / CONFIG_NAME).is_file():
        raise ModelNotFoundError(f"{folder} is not a model folder (no {CONFIG_NAME})")
    shutil.copytree(folder, dest, ignore=shutil.ignore_patterns("__pycache__", ".*"), dirs_exist_ok=True)
    return dest


def _requirements(vendor: bool) -> str:
    import torch

    torch_version = torch.__version__.split("+")[0]
    lines = ["# Written by `idinvert space export`. Spaces installs gradio itself (sdk_version in README.md).",
             f"--extra-index-url {TORCH_CPU_INDEX}", f"torch=={torch_version}"]
    if not vendor:
        lines.append(f"idinvert-plugins=={__version__}")
        return "\n".join(lines) + "\n"
    try:
        requires = importlib.metadata.requires("idinvert-plugins") or []
        core = [r.split(";")[0].strip() for r in requires if "extra ==" not in r]
        core = [r for r in core if not r.lower().startswith("torch")] or list(CORE_REQUIREMENTS)
    except importlib.metadata.PackageNotFoundError:
        core = list(CORE_REQUIREMENTS)
    return "\n".join(lines + core) + "\n"


def _gradio_version() -> str:
    try:
        return importlib.metadata.version("gradio")
    except importlib.metadata.PackageNotFoundError:
        return FALLBACK_GRADIO_VERSION


def space_header(title: str, model_name: str, license_id: str, hub_models: list[str]) -> dict[str, Any]:
    """The Spaces YAML configuration (the README's front matter)."""
    header: dict[str, Any] = {
        "title": title[:60], "emoji": "🎭", "colorFrom": "indigo", "colorTo": "purple", "sdk": "gradio",
        "sdk_version": _gradio_version(), "python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
        "app_file": "app.py", "pinned": False, "license": license_id,
        "short_description": f"GAN inversion and editing: {model_name}"[:60],
        "tags": ["gan-inversion", "stylegan", "idinvert", "image-editing"],
    }
    if hub_models:
        header["models"] = hub_models
    return header


def _readme(header: dict[str, Any], model_name: str, parts: dict[str, str], vendor: bool) -> str:
    front = yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip()
    listing = "\n".join(f"- `{path}`: {what}" for path, what in parts.items())
    library = ("a copy of idinvert-plugins (`idinvert_plugins/`) and its `hooks/` plugins" if vendor
               else f"idinvert-plugins {__version__} from PyPI")
    return f"""---
{front}
---

# {header["title"]}

Upload a face, invert it into the latent space of **{model_name}** with In-Domain GAN Inversion (IDInvert),
then edit it: direction sliders, interpolation, semantic diffusion, style mixing and any editor plugin. Built
with [idinvert-plugins](https://github.com/idinvert-plugins/idinvert-plugins) {__version__}.

This folder was written by `idinvert space export`. It holds:

- `app.py`: builds the app on the model below and launches it;
- `requirements.txt`: CPU PyTorch and {"the library's dependencies" if vendor else "idinvert-plugins"};
{listing}

and {library}.

Run it locally with `pip install -r requirements.txt gradio=={header["sdk_version"]} && python app.py`.
"""


def export_space(out_dir: str | Path, model: str | None = None, *, encoder: str | None = AUTO,
                 directions: tuple[str, ...] | list[str] = (), feature_net: str | None = AUTO,
                 title: str | None = None, vendor: bool = True, force: bool = False) -> Path:
    """Write a Space folder serving the app on ``model`` (a name, Hub id or folder; None: the default model) and
    return it.

    ``encoder`` / ``feature_net`` follow :class:`~idinvert_plugins.app.models.ModelSpec` (``"auto"``: the
    generator's :class:`~idinvert_plugins.pipeline.Pipeline`; a name or folder; or None); ``directions`` are
    extra folders of direction files, copied into the generator's ``directions/`` (as are the pipeline's other
    direction folders). The generator's copy gets a ``pipeline.json`` naming what the Space ships, by relative
    folder. ``vendor=False`` makes ``requirements.txt`` install idinvert-plugins from PyPI instead of
    copying the library. An existing non-empty ``out_dir`` is refused unless ``force``.
    """
    model = model or default_model()
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise FileExistsError(f"{out} exists and is not empty: choose a new folder or pass --force")
    generator = resolve_model(model)
    config = read_config(generator.folder)
    if config["kind"] != "generator":
        raise ValueError(f"{model!r} is a {config['kind']}, not a generator: pass the generator as --model")
    slug = _slug(generator.name)
    models_dir = out / "models"
    # what goes with the generator: its pipeline.json (or the naming rules), with the arguments on top
    pipe = Pipeline.from_pretrained(model, encoder="none" if _none(encoder) else encoder,
                                    feature_net="none" if _none(feature_net) else feature_net, classifier=AUTO)
    refs = pipe.references()
    _copy_model(generator.folder, models_dir / slug)
    parts = {f"models/{slug}/": f"the generator {_shown(generator)}"}
    hub_models = [generator.repo_id] if generator.repo_id else []
    own = (Path(generator.folder) / "directions").resolve()
    pipeline_dirs = [d for d in pipe.direction_folders if d.is_dir() and d.resolve() != own
                     and any(d.glob("*.safetensors"))]
    for extra in [*pipeline_dirs, *directions]:
        files = sorted(Path(extra).glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no direction files (*.safetensors) in {extra}")
        (models_dir / slug / "directions").mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy2(f, models_dir / slug / "directions" / f.name)
    if (models_dir / slug / "directions").is_dir():
        parts[f"models/{slug}/directions/"] = "its editing directions"

    encoder_expr, shipped = "None", {"generator": ".", "encoder": None, "encoders": {}, "feature_net": None,
                                      "classifier": None, "directions": "directions/",
                                      "default_method": pipe.default_method}
    if refs["encoder"] is not None:
        resolved = resolve_model(refs["encoder"])
        if resolved is not None:
            enc_slug = _slug(resolved.name)
            _copy_model(resolved.folder, models_dir / enc_slug)
            encoder_expr = f"str(MODELS / {enc_slug!r})"
            shipped["encoder"] = f"../{enc_slug}"
            parts[f"models/{enc_slug}/"] = f"the encoder {_shown(resolved)}"
            hub_models += [resolved.repo_id] if resolved.repo_id else []
    for key, ref in sorted(refs["encoders"].items()):  # named extra encoders: --method conventional, psp, e4e...
        resolved = resolve_model(ref) if isinstance(ref, str) else None
        if resolved is None:
            continue
        enc_slug = _slug(resolved.name)
        if not (models_dir / enc_slug).is_dir():
            _copy_model(resolved.folder, models_dir / enc_slug)
            parts[f"models/{enc_slug}/"] = f"the {key} encoder {_shown(resolved)}"
            hub_models += [resolved.repo_id] if resolved.repo_id else []
        shipped["encoders"][key] = f"../{enc_slug}"

    feature_expr = "None"
    if refs["feature_net"] is not None:
        spec = refs["feature_net"]
        if spec is not None:
            name = str(spec).removeprefix("classifier:")
            if ":" in name:
                raise ValueError(f"feature network {spec!r} cannot be exported: only classifier models (names or "
                                 "folders) travel with a Space; pass --feature-net none")
            resolved = resolve_model(name)
            feat_slug = _slug(resolved.name)
            _copy_model(resolved.folder, models_dir / feat_slug)
            feature_expr = f"'classifier:' + str(MODELS / {feat_slug!r})"
            shipped["feature_net"] = f"classifier:../{feat_slug}"
            if refs["classifier"] is not None and resolve_model(refs["classifier"]).folder == resolved.folder:
                shipped["classifier"] = f"../{feat_slug}"  # the same model: it travels anyway
            parts[f"models/{feat_slug}/"] = f"the perceptual network {_shown(resolved)}"

    # the copied pipeline.json may name models that do not travel: the Space gets one naming what it ships
    write_pipeline_config(models_dir / slug, shipped)
    parts[f"models/{slug}/{PIPELINE_NAME}"] = "what goes with the generator (encoder, perceptual network, directions)"
    label = _shown(generator)
    (out / "app.py").write_text(APP_TEMPLATE.format(label=label, generator=slug, encoder=encoder_expr,
                                                    feature_net=feature_expr), encoding="utf-8")
    (out / "requirements.txt").write_text(_requirements(vendor), encoding="utf-8")
    license_id = "mit"
    if generator.card is not None and generator.card.data.get("license"):
        license_id = str(generator.card.data["license"])
    header = space_header(title or f"IDInvert: {label}", label, license_id, hub_models)
    (out / "README.md").write_text(_readme(header, label, parts, vendor), encoding="utf-8")
    (out / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
                                        "*.png filter=lfs diff=lfs merge=lfs -text\n", encoding="utf-8")
    if vendor:
        shutil.copytree(PACKAGE_DIR, out / "idinvert_plugins", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_bundled"))
        hooks = PACKAGE_DIR.parent / "hooks"
        if hooks.is_dir():
            shutil.copytree(hooks, out / "hooks", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return out


def read_space_header(readme: str | Path) -> dict[str, Any]:
    """The YAML front matter of a Space README (for checks)."""
    text = Path(readme).read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, flags=re.S)
    if not match:
        raise ValueError(f"{readme} has no YAML front matter")
    return yaml.safe_load(match.group(1))


__all__ = ["export_space", "read_space_header", "space_header"]
