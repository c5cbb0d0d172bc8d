"""Model cards: ``README.md`` files with YAML front matter, one per named model.

The cards in ``model_cards/`` are the registry of named models. Front matter fields:

``name`` (what ``load_generator(name)`` takes), ``kind`` (generator, encoder, discriminator, classifier,
...), ``architecture``, ``resolution``, ``files`` (the files of the model folder), ``local`` (folder under
``weights/`` holding the bundled copy), ``repo_id`` and ``revision`` (only where the model has really
been published on the Hugging Face Hub), ``license``, plus the usual Hub card fields (``library_name``,
``tags``, ``pipeline_tag``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CARDS_ENV = "IDINVERT_MODEL_CARDS"
WEIGHTS_ENV = "IDINVERT_WEIGHTS"
_ROOT = Path(__file__).resolve().parent.parent


def _bundled_dir(env: str, name: str) -> Path:
    """``$env``, else ``name/`` at the top of the checkout, else the copy a wheel carries in the package."""
    if os.environ.get(env):
        return Path(os.environ[env])
    repo = _ROOT / name
    return repo if repo.is_dir() else Path(__file__).resolve().parent / "_bundled" / name


def model_cards_dir() -> Path:
    """Where the named models' cards are (``$IDINVERT_MODEL_CARDS`` overrides)."""
    return _bundled_dir(CARDS_ENV, "model_cards")


def weights_dir() -> Path:
    """Where bundled model folders are (``$IDINVERT_WEIGHTS`` overrides)."""
    return _bundled_dir(WEIGHTS_ENV, "weights")


@dataclass
class ModelCard:
    """Parsed card: front matter ``data`` and the markdown ``body``."""

    data: dict[str, Any]
    body: str = ""
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.data.get("name", self.path.stem if self.path else ""))

    def render(self) -> str:
        front = yaml.safe_dump(self.data, sort_keys=False, allow_unicode=True).strip()
        return f"---\n{front}\n---\n\n{self.body.strip()}\n"


def parse_card(text: str, path: Path | None = None) -> ModelCard:
    """Split YAML front matter from the markdown body; a card without front matter is an error."""
    if not text.startswith("---"):
        raise ValueError(f"model card {path or ''} has no YAML front matter (it must start with '---')")
    parts = text.split("\n---", 1)
    if len(parts) != 2:
        raise ValueError(f"model card {path or ''}: front matter is not closed by a '---' line")
    try:
        data = yaml.safe_load(parts[0][3:]) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"model card {path or ''}: invalid YAML front matter: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"model card {path or ''}: front matter must be a mapping")
    return ModelCard(data=data, body=parts[1].lstrip("-\n"), path=path)


def read_card(path: Path) -> ModelCard:
    return parse_card(path.read_text(encoding="utf-8"), path)


def list_cards(directory: Path | None = None) -> dict[str, ModelCard]:
    """All named models: card name -> card. Broken cards are skipped with a warning."""
    import warnings

    directory = directory or model_cards_dir()
    cards: dict[str, ModelCard] = {}
    if not directory.is_dir():
        return cards
    for path in sorted(directory.glob("*.md")):
        if path.name.upper() == "README.MD":
            continue
        try:
            card = read_card(path)
        except ValueError as exc:
            warnings.warn(str(exc), stacklevel=2)
            continue
        cards[card.name] = card
    return cards


def card_stub(name: str, kind: str, architecture: str, config: dict[str, Any], *, source: str = "",
              license: str | None = None, notes: dict[str, Any] | None = None) -> ModelCard:
    """A minimal card for a converted or freshly trained model; the prose is for the author to fill in."""
    notes = dict(notes or {})
    data: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "architecture": architecture,
        "library_name": "idinvert-plugins",
        "tags": ["idinvert-plugins", architecture, kind],
    }
    if "resolution" in config:
        data["resolution"] = config["resolution"]
    if kind == "generator":
        data["pipeline_tag"] = "unconditional-image-generation"
    lic = license or notes.pop("license", None)
    if isinstance(lic, dict):
        data.update({"license": "other", **{k: v for k, v in lic.items() if k != "license"}})
    elif lic:
        data["license"] = lic
    data["files"] = ["config.json", "model.safetensors"]
    article = "An" if architecture[:1].lower() in "aeiou" else "A"
    body = [f"# {name}", "", f"{article} {architecture} {kind} in the idinvert-plugins layout."]
    if source:
        body += ["", f"Converted from `{source}` by `idinvert convert`."]
    for k, v in notes.items():
        body += ["", f"- {k}: {v}"]
    body += ["", "## Usage", "", "```python", "import idinvert_plugins", "",
             f'model = idinvert_plugins.load_model("PATH/TO/{name}")', "```",
             "", "## Training data, intended use, limitations", "", "(to be written by the model's author)"]
    return ModelCard(data=data, body="\n".join(body))
