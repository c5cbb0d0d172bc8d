"""Release a trained toy-face GAN: export G_ema + D into ``weights/`` and write their model cards.

The release of a bundled generator is three steps, run from the repository root once training is done::

    python scripts/release_generator.py export --run runs/toyfaces-stylegan2-64 --name toyfaces-stylegan2-64
    python benchmarks/generator_quality.py --model toyfaces-stylegan2-64      # docs/quality/<name>/
    idinvert directions learn toyfaces-stylegan2-64                           # weights/<name>/directions/
    python scripts/release_generator.py cards --run runs/toyfaces-stylegan2-64 --name toyfaces-stylegan2-64

``export`` writes ``weights/<name>`` and ``weights/<name>-d`` (fp16 safetensors + config) and first cards.
``cards`` writes ``model_cards/<name>.md`` and ``model_cards/<name>-d.md`` (and the same text as each folder's
README.md) from the run's checkpoint, the quality report and the learned directions, so every figure in a card
comes from a file the release produced. (``directions learn`` takes the steering the model's card states:
``--steer covariance`` for the StyleGAN2, ``--steer class-means`` for the v1 twin; add ``directions sefa`` and
``directions ganspace -k 5``.)

A new generator invalidates its encoders (they are checked against a hash of G's weights), so a release goes on:

    idinvert train-encoder --generator NAME --objective domain-guided --preset toyfaces-64 --out runs/NAME-encoder \
        --set init_encoder=NAME-encoder --minutes 30           # warm start from the encoder shipped so far
    idinvert train-encoder --generator NAME --objective conventional --preset toyfaces-64 \
        --out runs/NAME-encoder-conventional --set init_encoder=NAME-encoder-conventional --minutes 12
    python -c "from idinvert_plugins.training.encoder import export_encoder as e; e('RUN', 'weights', license='mit')"
    idinvert evaluate --generator NAME --n 200 --steps 100 --ldom-n 50 --out docs/results --report docs/results.md

and ends with copying each encoder's README.md to ``model_cards/``. Compare the candidate with the shipped model
(quality *and* editability: ``benchmarks/direction_ceiling.py``) before committing weights: a later GAN checkpoint
is not always the better one (``training_state/README.md``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from idinvert_plugins.cards import ModelCard
from idinvert_plugins.training.gan import TrainConfig, export, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
BACKEND_TEXT = {
    "stylegan2": "StyleGAN2 (Karras et al., CVPR 2020: modulated convolutions, skip toRGB; non-saturating "
                 "logistic loss, lazy R1, EMA generator)",
    "stylegan": "StyleGAN (Karras et al., CVPR 2019, in the layout IDInvert released: AdaIN, per-layer W+; "
                "non-saturating logistic loss, R1, EMA generator)",
}


def _run_facts(run: Path) -> dict[str, Any]:
    ckpt = load_checkpoint(run)
    cfg = TrainConfig.from_dict(json.loads(ckpt["config"]))
    return {"cfg": cfg, "nimg": int(ckpt["nimg"]), "step": int(ckpt["step"]), "wall_s": float(ckpt["wall_s"]),
            "hardware": ckpt["hardware"]}


def _quality_section(name: str, up: str) -> list[str]:
    """The quality table from ``docs/quality/<name>/metrics.json``; ``up`` leads from the card to the repo root."""
    path = ROOT / "docs" / "quality" / name / "metrics.json"
    if not path.is_file():
        return ["Not measured yet (run `benchmarks/generator_quality.py`)."]
    r = json.loads(path.read_text())
    fake, floor = r["swd"]["generated_vs_test"], r["swd"]["floor_train_vs_test"]
    lines = [f"{r['n_fake']} samples (psi 1) against the {r['n_real']} test renders; the floor is {r['n_real']} "
             "train renders against the same test renders (what a perfect generator would score). Lower is "
             f"better. Full report: [docs/quality/{name}/quality.md]({up}docs/quality/{name}/quality.md).", "",
             "| metric | this model | floor |", "|---|---|---|"]
    for res, value in fake["levels"].items():
        lines.append(f"| SWD {res}x{res} (x1e3) | {value:.2f} | {floor['levels'][res]:.2f} |")
    lines.append(f"| SWD mean (x1e3) | {fake['mean']:.2f} ({fake['mean'] / floor['mean']:.1f}x floor) | "
                 f"{floor['mean']:.2f} |")
    fd = r["fd"]
    lines.append(f"| {fd['name']} (not FID) | {fd['generated_vs_test']:.3f} | {fd['floor_train_vs_test']:.3f} |")
    a = r["attributes"]
    lines += ["", "Attribute marginals read by the bundled classifier: largest gap to the test renders in "
              "percentage points (floor: train renders vs test renders).", "",
              "| attribute | gap (pp) | floor gap (pp) |", "|---|---|---|"]
    for attr in a["names"]:
        gap, fgap = a["generated_vs_test"][attr]["max_abs_diff_pp"], a["floor_vs_test"][attr]["max_abs_diff_pp"]
        lines.append(f"| {attr} | {'–' if gap is None else f'{gap:.1f}'} | "
                     f"{'–' if fgap is None else f'{fgap:.1f}'} |")
    if (path.parent / "samples.png").is_file():
        lines += ["", f"![samples]({up}docs/quality/{name}/samples.png)"]
    return lines


def _directions_section(name: str, backend: str, up: str = "../") -> list[str]:
    """The card's "Editing directions" section from the directions' summary.json (``up``: the path from the
    card to the repository root, for the cross-talk heatmap)."""
    summary = ROOT / "weights" / name / "directions" / "summary.json"
    if not summary.is_file():
        return ["None shipped yet (`idinvert directions learn " + name + "`)."]
    data = json.loads(summary.read_text())
    rows = data["directions"]
    learned = {k: r for k, r in rows.items() if str(r.get("source") or "").startswith("interfacegan")}
    space = ("W" if backend == "stylegan2" else
             "W+ (one boundary over all layers' codes: this StyleGAN has no single W space)")
    lines = [f"InterFaceGAN boundaries in {space}, learned from G's samples scored by the classifier named below "
             "(`idinvert directions learn`): held-out accuracy of each linear boundary next to the majority "
             "share (always guessing the larger class; continuous attributes are split at the median).", "",
             "| direction | held-out accuracy | majority share | edit vector | success | cross-talk (moved most) | "
             "edit | test faces |", "|---|---|---|---|---|---|---|---|"]
    measured = {k: r["crosstalk"] for k, r in learned.items() if r.get("crosstalk")}
    for dname, row in sorted(learned.items()):
        acc, maj = row.get("accuracy"), row.get("majority")
        flag = " !" if acc is not None and maj is not None and acc <= maj else ""
        ct = row.get("crosstalk") or {}
        test = ct.get("test_faces") or {}
        worst = "–" if not ct else ("inf" if ct.get("worst") is None else f"{ct['worst']:.2f}")
        worst += f" ({ct['worst_attribute']})" if ct.get("worst_attribute") else ""
        tested = "–" if not test else f"{test['success']:.0%}, {'clean' if test.get('clean') else 'weak'}"
        lines.append(f"| {dname} | {'–' if acc is None else f'{acc:.3f}'}{flag} | "
                     f"{'–' if maj is None else f'{maj:.3f}'} | {row.get('steer') or '–'} | "
                     f"{'–' if not ct else format(ct['success'], '.0%')} | {worst} | "
                     f"{'–' if not ct else ('clean' if ct.get('clean') else 'weak')} | "
                     f"{tested} |")
    if measured:
        clean = sum(bool(c.get("clean")) for c in measured.values())
        clean_test = sum(bool((c.get("test_faces") or {}).get("clean")) for c in measured.values())
        step = next(iter(measured.values())).get("step", 3)
        lines += ["", f"`!`: held-out accuracy at or below the majority share. Each direction's edit vector was chosen "
                      "by its measured cross-talk (`python benchmarks/crosstalk.py`, `docs/directions.md`): at step "
                      f"{step:g}, *success* is the share of G's samples whose attribute moves the intended way, "
                      "*cross-talk* the most an attribute of another family moves relative to the target's own change"
                      + (" (mean of its absolute change per face: what one sees on single faces)"
                         if next(iter(measured.values())).get("statistic") == "absolute" else "") + "; "
                      "*clean*: success >= 90 % and cross-talk <= 0.5, else *weak* (shipped, but other attributes "
                      f"move too). Clean: {clean} of {len(measured)} on G's samples, {clean_test} of "
                      f"{len(measured)} on inverted held-out test faces."
                      + (" Edit vector `optimized`: optimised through the generator, the classifier and the "
                         "discriminator (`idinvert directions optimize`, `editors/optimized_steering.py`)."
                         if any(r.get("steer") == "optimized" for r in learned.values()) else ""), "",
                  f"![cross-talk on G's samples, before and after the choice]({up}docs/crosstalk/{name}-generator.png)"]
    for suffix, text in (("-covariance", "the boundary's normal steered by the covariance of the codes "
                                         "(`--steer covariance`)"),
                         ("-class-means", "the difference of the two classes' mean codes (`--steer class-means`)")):
        if not measured and any(str(r.get("source") or "").endswith(suffix) for r in learned.values()):
            lines += ["", f"Edit vectors: {text}; each file keeps the boundary's normal for scoring codes "
                          "(`docs/directions.md` compares the choices)."]
    classifiers = sorted({str(r.get("classifier")) for r in data.get("runs", []) if r.get("command") == "learn"})
    if classifiers:
        lines += ["", f"Classifier: {', '.join(f'`{c}`' for c in classifiers)}."]
    others = sorted(set(rows) - set(learned))
    if others:
        lines += ["", f"Unsupervised directions (no attribute label): {', '.join(f'`{o}`' for o in others)}."]
    if data.get("skipped"):
        lines += ["", "Not learned: " + "; ".join(f"{k} ({v})" for k, v in sorted(data["skipped"].items())) + "."]
    return lines


def _architecture(card_name: str, kind: str, backend: str) -> str:
    """The architecture the exported folder's config.json names (what ``idinvert models`` should show)."""
    config = ROOT / "weights" / card_name / "config.json"
    if config.is_file():
        return str(json.loads(config.read_text())["architecture"])
    return backend if kind == "generator" else f"{backend}-discriminator"


def _data_text(cfg: TrainConfig) -> str:
    if cfg.data_dir:
        return f"- Data: the images in `{cfg.data_dir}` (resized to {cfg.resolution} px)."
    from idinvert_plugins.data.toyfaces import split_sizes

    train = split_sizes(cfg.n_total)["train"]
    n = min(cfg.n_train, train)
    return (f"- Data: the train split of the procedural toy faces (`idinvert_plugins.data.toyfaces`, renders "
            f"0..{n - 1:,} of the {cfg.n_total:,}-image dataset with seed {cfg.data_seed}, rendered on the fly; "
            f"the test split {train:,}.. is never seen); no real photographs.")


ROLE = {
    "toyfaces-stylegan2-64": "It is the default model of the README, the app and the tests of inversion and editing.",
    "toyfaces-stylegan-64": "It is the StyleGAN v1 twin of the default `toyfaces-stylegan2-64`, in the architecture "
                            "the IDInvert paper used, for measuring both backends side by side.",
}
ROLE_OTHER = "A bundled model."


def write_cards(run: Path, name: str, command: str) -> list[Path]:
    facts = _run_facts(run)
    cfg: TrainConfig = facts["cfg"]
    hours = facts["wall_s"] / 3600
    common = {"library_name": "idinvert-plugins", "license": "mit", "resolution": cfg.resolution,
              "files": ["config.json", "model.safetensors"]}
    training = [
        "## Training", "",
        _data_text(cfg),
        f"- Images seen: {facts['nimg']:,} ({facts['nimg'] / 1000:.0f} kimg, {facts['step']:,} steps of batch "
        f"{cfg.batch}).",
        f"- Wall time: {hours:.2f} h in total over resumed CPU sessions.",
        f"- Hardware: {facts['hardware']}.",
        f"- Command, repeated (each call resumes from the run's checkpoint) until the budget ran out: `{command}`",
        f"- Configuration: `{json.dumps(cfg.to_dict())}`",
    ]
    res = cfg.resolution

    def g_body(up: str) -> list[str]:
        return [
            f"# {name}", "",
            f"A {cfg.resolution}x{cfg.resolution} {BACKEND_TEXT[cfg.backend]} trained on the toy-face domain bundled "
            "with idinvert-plugins. " + ROLE.get(name, ROLE_OTHER) + " Users of real photos load an FFHQ-class "
            "checkpoint through the same code path.", "",
            "## Usage", "", "```python", "import idinvert_plugins as ip", "",
            f'G = ip.load_generator("{name}")  # offline: bundled in weights/', "z = G.sample_z(8)",
            f"images = G(z, truncation_psi=0.7)  # [8, 3, {res}, {res}] in [-1, 1]", "```", "",
            *training, "", "## Quality", "", *_quality_section(name, up), "",
            "## Editing directions", "", *_directions_section(name, cfg.backend, up), "",
            "## Limitations", "",
            f"A toy domain: flat procedural faces at {res} px. Numbers measured here say how the methods compare, "
            "not how they do on photographs. The generator is under-trained by GAN standards (CPU budget); see the "
            "quality table for what that costs.",
        ]

    def d_body(up: str) -> list[str]:
        return [
            f"# {name}-d", "",
            f"The discriminator trained together with [{name}]({up}model_cards/{name}.md). IDInvert's domain-guided "
            "encoder training uses it as the adversarial critic (`idinvert train-encoder --generator " + name + "`).",
            "", *training,
        ]

    written = []
    for card_name, kind, body in ((name, "generator", g_body), (f"{name}-d", "discriminator", d_body)):
        data = {"name": card_name, "kind": kind, "architecture": _architecture(card_name, kind, cfg.backend),
                "local": card_name, **common, "tags": ["idinvert-plugins", cfg.backend, kind, "toyfaces"]}
        if kind == "generator":
            data["pipeline_tag"] = "unconditional-image-generation"
            data["files"] = common["files"] + ["directions/*.safetensors"]
        # the same card twice; its relative links lead to the repository root from either place
        for path, up in ((ROOT / "model_cards" / f"{card_name}.md", "../"),
                         (ROOT / "weights" / card_name / "README.md", "../../")):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(ModelCard(data=data, body="\n".join(body(up))).render(), encoding="utf-8")
            written.append(path)
    return written


def update_direction_sections(name: str) -> list[Path]:
    """Rewrite only the "Editing directions" section of ``name``'s two card copies (``model_cards/<name>.md`` and
    ``weights/<name>/README.md``) from its directions' summary.json: what re-shipping the directions changes
    (``benchmarks/crosstalk.py --ship``), without the training run the rest of the card comes from."""
    backend = "stylegan2" if "stylegan2" in json.loads((ROOT / "weights" / name / "config.json").read_text()).get(
        "architecture", "") else "stylegan"
    written = []
    for path, up in ((ROOT / "model_cards" / f"{name}.md", "../"), (ROOT / "weights" / name / "README.md", "../../")):
        text = path.read_text(encoding="utf-8")
        start = text.index("## Editing directions\n")
        end = text.index("\n## ", start + 5)
        section = "\n".join(["## Editing directions", "", *_directions_section(name, backend, up), ""])
        path.write_text(text[:start] + section + text[end:], encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=("export", "cards", "directions"),
                    help="directions: rewrite only the cards' Editing directions section (no --run needed)")
    ap.add_argument("--run", type=Path, help="the training run folder (holds resume.pt)")
    ap.add_argument("--name", required=True, help="model name, e.g. toyfaces-stylegan2-64")
    ap.add_argument("--command", default=None, help="training command to record (default: the preset's)")
    args = ap.parse_args(argv)
    if args.step == "directions":
        for path in update_direction_sections(args.name):
            print(f"wrote {path}")
        return 0
    if args.run is None:
        ap.error(f"{args.step} needs --run (the training run folder)")
    torch.set_grad_enabled(False)
    if args.step == "export":
        for folder in export(args.run, ROOT / "weights", {"generator": args.name, "discriminator": f"{args.name}-d"}):
            size = sum(f.stat().st_size for f in Path(folder).glob("*.safetensors")) / 2**20
            print(f"exported {folder} ({size:.1f} MiB)")
    command = args.command or (f"OMP_WAIT_POLICY=PASSIVE idinvert train-gan --preset {args.name} "
                               f"--out runs/{args.name} --minutes MINUTES")
    for path in write_cards(args.run, args.name, command):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
