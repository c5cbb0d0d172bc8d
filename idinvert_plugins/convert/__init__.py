"""Convert official checkpoints (genforce/IDInvert, rosinality, NVlabs) into model folders.

The file is read without running code from it (:mod:`.safe_pickle`); the converter is chosen by
``format`` or, with ``"auto"``, by asking each registered converter whether it recognises the content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import CheckpointFormat, Converted


class ConversionError(ValueError):
    """The checkpoint could not be converted; the message says why and what to try."""


def pick_converter(ckpt: Any, fmt: str = "auto") -> CheckpointFormat:
    from ..plugins import get_plugins

    plugins = get_plugins()
    if fmt != "auto":
        return plugins.get("converter", fmt)
    matches = [plugins.get("converter", n) for n in plugins.names("converter")
               if plugins.get("converter", n).sniff(ckpt)]
    if not matches:
        keys = list(ckpt)[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ConversionError(f"no converter recognises this checkpoint (top-level keys: {keys}). Known formats: "
                              f"{', '.join(plugins.names('converter'))}; pass --format to force one.")
    if len(matches) > 1:
        raise ConversionError(f"several formats match ({[m.name for m in matches]}); pass --format")
    return matches[0]


#: How a converted folder of each kind loads from Python (``{folder!r}`` is filled in) and is used from the CLI.
LOAD_HINTS = {
    "generator": ("idinvert_plugins.load_generator({folder!r})",
                  "idinvert generate {folder} --seeds 0-3 -o grid.png"),
    "encoder": ("idinvert_plugins.load_encoder({folder!r})",
                "idinvert invert GENERATOR IMAGE --encoder {folder} -o out/"),
}


def load_hint(folder: str | Path, kind: str) -> tuple[str, str | None]:
    """The Python expression that loads a converted model folder of ``kind`` (and a CLI use of it, if any):
    what ``idinvert convert`` prints after writing it."""
    python, cli = LOAD_HINTS.get(kind, ("idinvert_plugins.load_model({folder!r}, kind=" + repr(kind) + ")", None))
    folder = str(folder)
    return python.format(folder=folder), (cli.format(folder=folder) if cli else None)


def convert_checkpoint(src: str | Path, out_dir: str | Path, fmt: str = "auto", *, name: str | None = None,
                       overrides: dict[str, Any] | None = None, report: list[Converted] | None = None) -> list[Path]:
    """Convert ``src`` and write one model folder per network found.

    The first network (the generator, where there is one) goes to ``out_dir``; others (e.g. a
    discriminator in the same file) to ``out_dir-<kind>``, or to ``out_dir/<subfolder>`` when the converter says
    so (a pipeline's encoder; the converter then also gives the ``pipeline.json`` written into ``out_dir``).
    Returns the folders written; ``report``, if given, receives the converted networks (their ``notes`` say
    what was ignored or computed).
    """
    from ..cards import card_stub
    from ..hub import save_pretrained
    from .safe_pickle import safe_load

    src, out_dir = Path(src), Path(out_dir)
    if not src.is_file():
        raise ConversionError(f"{src}: no such checkpoint file")
    ckpt = safe_load(src)
    converter = pick_converter(ckpt, fmt)
    converted = converter.convert(ckpt, **(overrides or {})) if overrides else converter.convert(ckpt)
    written = []
    for i, net in enumerate(converted):
        folder = out_dir / net.subfolder if net.subfolder else (
            out_dir if i == 0 else out_dir.with_name(f"{out_dir.name}-{net.kind}"))
        card = card_stub(name or folder.name, net.kind, net.architecture, net.args,
                         source=f"{src.name} ({net.source_format} format)", notes=net.notes)
        save_pretrained(None, folder, kind=net.kind, card=card, architecture=net.architecture, args=net.args,
                        state_dict=net.state_dict)
        written.append(folder)
        if net.pipeline is not None:  # checked when the pipeline loads (pipeline.py sits above this layer)
            import json

            (folder / "pipeline.json").write_text(json.dumps(net.pipeline, indent=2) + "\n", encoding="utf-8")
    if report is not None:
        report.extend(converted)
    return written


__all__ = ["CheckpointFormat", "ConversionError", "Converted", "convert_checkpoint", "load_hint", "pick_converter"]
