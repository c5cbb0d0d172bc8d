"""Cross-talk of a generator's attribute directions, and the choice of each shipped direction's edit vector.

For one bundled generator (``--generator``, repeatable):

1. reads the shipped attribute directions (*before*) and their boundaries (kept: the boundary scores codes);
2. samples ``--fit-n`` codes, reads every attribute of their images with the classifier, and builds six
   candidate edit vectors per direction from the shipped boundaries: ``normal`` (InterFaceGAN), ``covariance``
   (``Sigma n``), ``class-means`` (mean code of the positives minus the negatives, as ``learn_direction``
   splits them), ``conditional`` (the normal with the other families' boundaries projected out: InterFaceGAN's
   conditional manipulation), ``conditional-class-means`` (the same for the class-mean vector) and
   ``compensated`` (the class-mean vector minus the combination of the other families' class-mean vectors that
   leaves their boundary scores unchanged: :func:`~idinvert_plugins.editors.interfacegan.compensated_steering`);
3. measures each candidate's cross-talk (:mod:`idinvert_plugins.editors.crosstalk`, step 3), and the shipped
   vector's (candidate ``shipped``), on ``--screen-n`` samples and picks per direction: a clean candidate with
   the lowest worst cross-talk; else one meeting the success target (>= 90 %) with the lowest worst cross-talk;
   else, among those within 5 points of the best success, the lowest worst cross-talk (it ships marked weak);
4. measures *before* and *after* on ``--n`` fresh samples (not those the choice was made on) and on the first
   ``--test-n`` held-out test faces inverted with the generator's domain-guided encoder (``--idinvert-steps``
   adds IDInvert optimisation), spreads over 1,000 real test images; prints the tables and clean counts,
   writes the matrices (``docs/crosstalk/<generator>.json``) and before | after heatmaps
   (``docs/crosstalk/<generator>-generator.png``, ``-test-faces.png``);
5. with ``--ship``, rewrites the generator's bundled ``directions/`` (same files and names, the boundary kept,
   the chosen steering in the source and metadata, the measured cross-talk in ``summary.json``), and with
   ``--strip NAME,...`` draws an edit strip of 8 held-out faces per direction with the classifier's changes
   under each face (``docs/crosstalk/<generator>-strip.png``).

    python benchmarks/crosstalk.py --generator toyfaces-stylegan2-64 --generator toyfaces-stylegan-64 \
        [--n 200] [--test-n 64] [--screen-n 96] [--fit-n 4000] [--ship] [--strip smile,eyeglasses]
    python benchmarks/crosstalk.py --generator toyfaces-stylegan2-64 --from-json   # redraw from the saved matrices
    python benchmarks/crosstalk.py --generator toyfaces-stylegan2-64 --strip smile,eyeglasses --strip-only
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import time
from pathlib import Path

import torch

from idinvert_plugins.editors.crosstalk import (
    CLEAN_SUCCESS,
    DEFAULT_STEP,
    CrossTalk,
    measure_crosstalk,
    save_crosstalk,
    write_heatmap,
)
from idinvert_plugins.editors.directions import Direction, directions_folder, find_directions, read_summary
from idinvert_plugins.editors.interfacegan import compensated_steering, conditional_steering, sample_w
from idinvert_plugins.editors.optimized_steering import SteeringOptions
from idinvert_plugins.evaluation.editability import SPREAD_IMAGES, classifier_scorer, real_spreads, resolve_targets
from idinvert_plugins.evaluation.inversions import invert_cached, load_test_images, render_codes
from idinvert_plugins.evaluation.steering import optimize_directions
from idinvert_plugins.hub import default_encoder, load_encoder, load_generator, load_model

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "crosstalk"
CANDIDATES = ("normal", "covariance", "class-means", "conditional", "conditional-class-means", "compensated")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def candidate_sets(shipped: dict[str, Direction], codes: torch.Tensor, readings: dict[str, torch.Tensor],
                   targets) -> dict[str, dict[str, Direction]]:
    """The six candidate edit vectors of every shipped direction, from its boundary and the fit sample."""
    flat = codes.reshape(len(codes), -1).double()
    centred = flat - flat.mean(0)
    out: dict[str, dict[str, Direction]] = {k: {} for k in CANDIDATES}
    for name, d in shipped.items():
        t = targets[name]
        shape = d.boundary.shape
        n = d.boundary.reshape(-1).double()
        r = readings[name].double()
        if t.kind == "categorical":  # one vs rest on the predicted class, as ClassifierScorer labels them
            fam = [k for k, o in targets.items() if o.attribute == t.attribute]
            probs = torch.stack([readings[k].double() for k in fam], 1)
            pos = probs.argmax(1) == fam.index(name)
        elif t.kind == "binary":
            pos = r > 0.5
        else:  # continuous: split at the median, as learn_direction does with ratio 0.5
            pos = r > r.median()
        means = flat[pos].mean(0) - flat[~pos].mean(0)
        cov = centred.T @ (centred @ n) / (len(flat) - 1)
        base = d.source.split("-covariance")[0].split("-class-means")[0]
        common = {"name": name, "attribute": d.attribute, "layers": d.layers, "accuracy": d.accuracy,
                  "extra": dict(d.extra), "normal": d.boundary}
        out["normal"][name] = Direction(n.view(shape).float(), source=f"{base}", **common)
        out["covariance"][name] = Direction(cov.view(shape).float(), source=f"{base}-covariance", **common)
        out["class-means"][name] = Direction(means.view(shape).float(), source=f"{base}-class-means", **common)
    out["conditional"] = {d.name: d for d in conditional_steering(list(out["normal"].values()))}
    out["conditional-class-means"] = {d.name: d for d in conditional_steering(list(out["class-means"].values()))}
    out["compensated"] = {d.name: d for d in compensated_steering(list(out["class-means"].values()))}
    return out


def steer_of(source: str) -> str:
    """The steering a source names (``interfacegan-logistic-class-means`` -> ``class-means``)."""
    rest = source.split("interfacegan-logistic", 1)[-1].lstrip("-")
    return rest or "normal"


def choose(name: str, screened: dict[str, CrossTalk]) -> str:
    """The candidate to ship for one direction (see the module docstring)."""
    def worst(k: str) -> float:
        return screened[k].worst(name)[0]

    clean = [k for k in screened if screened[k].clean(name)]
    if clean:
        return min(clean, key=worst)
    ok = [k for k in screened if screened[k].success[name] >= CLEAN_SUCCESS]
    if ok:
        return min(ok, key=worst)
    best = max(screened[k].success[name] for k in screened)
    near = [k for k in screened if screened[k].success[name] >= best - 0.05]
    return min(near, key=worst)


def fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2f}"


def report(gen: str, results: dict[str, CrossTalk]) -> None:
    for samples in ("generator", "test_faces"):
        before, after = results.get(f"before/{samples}"), results.get(f"after/{samples}")
        if before is None or after is None:
            continue
        print(f"\n### {gen}, {samples} (n={after.n}, step {after.step:g})\n")
        print("| direction | before: success | worst | moved most | clean | after: steering | success | worst | "
              "moved most | clean |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in after.rows:
            wb, ab = before.worst(r)
            wa, aa = after.worst(r)
            steer = after.extra.get("steering", {}).get(r, "")
            print(f"| {r} | {before.success[r]:.0%} | {fmt(wb)} | {ab} | {'clean' if before.clean(r) else 'weak'} | "
                  f"{steer} | {after.success[r]:.0%} | {fmt(wa)} | {aa} | {'clean' if after.clean(r) else 'weak'} |")
        print(f"\n{gen} {samples}: clean {before.clean_count()} -> {after.clean_count()} of {len(after.rows)}; "
              f"median worst cross-talk {fmt(before.median_worst())} -> {fmt(after.median_worst())} "
              f"({after.extra.get('statistic', 'signed')})")
        for key in results:  # the other statistic, measured on the same faces
            if key.startswith(f"after/{samples}/") and key.replace("after/", "before/", 1) in results:
                b, a = results[key.replace("after/", "before/", 1)], results[key]
                print(f"{gen} {samples}: clean {b.clean_count()} -> {a.clean_count()} of {len(a.rows)}; median "
                      f"worst {fmt(b.median_worst())} -> {fmt(a.median_worst())} ({a.extra.get('statistic')})")


def compact(gen: str, results: dict[str, CrossTalk]) -> None:
    """One row per direction: the shipped edit vector and its figures on G's samples and test faces, and whether
    the vector shipped before was clean (the table of docs/directions.md)."""
    ag, at = results["after/generator"], results["after/test_faces"]
    bg, bt = results["before/generator"], results["before/test_faces"]

    def cells(ct: CrossTalk, r: str) -> str:
        worst, attr = ct.worst(r)
        return f"{ct.success[r]:.0%} | {fmt(worst)} ({attr}) | {'**clean**' if ct.clean(r) else 'weak'}"

    print(f"\n#### {gen}\n")
    print("| direction | edit vector | G: success | G: cross-talk (moved most) | G | test: success | "
          "test: cross-talk (moved most) | test | before: G / test |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in ag.rows:
        before = f"{'clean' if bg.clean(r) else 'weak'} / {'clean' if bt.clean(r) else 'weak'}"
        print(f"| {r} | {ag.extra.get('steering', {}).get(r, '')} | {cells(ag, r)} | {cells(at, r)} | {before} |")


def heatmaps(gen: str, results: dict[str, CrossTalk]) -> None:
    for samples, label in (("generator", "generator"), ("test_faces", "test-faces")):
        if f"before/{samples}" in results and f"after/{samples}" in results:
            what = "G's own samples" if samples == "generator" else "inverted held-out test faces"
            path = write_heatmap([(f"{gen}, before (shipped until now), {what}", results[f"before/{samples}"]),
                                  (f"{gen}, after (chosen per direction), {what}", results[f"after/{samples}"])],
                                 OUT / f"{gen}-{label}.png")
            log(f"wrote {path.relative_to(ROOT)}")


def ship(gen: str, after: dict[str, Direction], results: dict[str, CrossTalk], command: str) -> None:
    """Rewrite the bundled directions with the chosen vectors; summary.json rows gain steer and crosstalk."""
    from idinvert_plugins.editors.directions import save_directions

    folder = directions_folder(gen)
    summary = read_summary(folder)
    gen_ct, test_ct = results["after/generator"], results["after/test_faces"]
    info = {}
    for name, d in after.items():
        row = dict(summary["directions"].get(name, {}))
        ct = gen_ct.entry(name)
        ct["test_faces"] = test_ct.entry(name)
        steer = gen_ct.extra["steering"][name]
        d.extra.update(steer=steer, crosstalk=ct)
        row.pop("source", None)
        info[name] = {**{k: v for k, v in row.items() if k not in ("attribute", "accuracy", "layers")},
                      "steer": steer, "crosstalk": ct}
    run = {"command": command, "generator": gen, "chosen": gen_ct.extra["steering"],
           "rule": "per direction: clean with the lowest worst cross-talk, else success >= 90 % with the lowest, "
                   "else the lowest within 5 points of the best success (benchmarks/crosstalk.py)"}
    heatmap = OUT / f"{gen}-generator.png"
    if heatmap.is_file():  # the directions README shows it (and it travels with the model folder)
        shutil.copyfile(heatmap, folder / "crosstalk.png")
    save_directions(list(after.values()), folder, info, run)
    log(f"shipped {len(after)} directions into {folder}")


def short(name: str) -> str:
    """A direction's name short enough for a 112 px tile."""
    for long, abbrev in (("background-", "bg "), ("hair_color-", "hair "), ("hair_style-", "style "),
                         ("hair_length", "hair length"), ("eyeglasses", "glasses"), ("face_width", "face width"),
                         ("skin_tone", "skin tone")):
        name = name.replace(long, abbrev)
    return name


@torch.no_grad()
def edit_strip(G, faces: torch.Tensor, codes: torch.Tensor, directions: dict[str, Direction], names: list[str],
               score, targets, scales: dict[str, float], path: Path, step: float = DEFAULT_STEP) -> Path:
    """8 faces: input, reconstruction, and per direction the edit towards the attribute's other side, with the
    classifier's changes (spreads) printed under each edited face: the target, then the two other-family
    attributes that moved most."""
    from PIL import Image, ImageDraw

    from idinvert_plugins.editors.crosstalk import _font
    from idinvert_plugins.images import to_uint8

    size, left, text_h = 112, 150, 44
    recon = render_codes(G, codes)
    base = score(recon)
    rows = [("input", faces, None), ("reconstruction", recon, None)]
    for name in names:
        t = targets[name]
        sign = torch.where(base[name] > t.threshold, -1.0, 1.0)
        edited = codes + (sign * step).view(-1, 1, 1) * directions[name].offsets(codes.shape[1], codes.shape[2])
        images = render_codes(G, edited)
        after = score(images)
        lines = []
        for i in range(len(codes)):
            delta = {k: float(after[k][i] - base[k][i]) / scales[k] for k in after}
            others = sorted((k for k in delta if targets[k].attribute != t.attribute), key=lambda k: -abs(delta[k]))
            lines.append([f"{short(name)} {delta[name]:+.2f}"] + [f"{short(k)} {delta[k]:+.2f}" for k in others[:2]])
        ct = directions[name].extra.get("crosstalk") or {}
        rows.append((f"{short(name)} ({'clean' if ct.get('clean') else 'weak'})" if ct else short(name), images, lines))
    n = len(codes)
    height = sum(size + (text_h if r[2] else 4) for r in rows) + 30
    img = Image.new("RGB", (left + n * size, height), "white")
    draw = ImageDraw.Draw(img)
    font, small = _font(12), _font(10)
    draw.text((6, 6), f"step {step:g} towards each attribute's other side; under each edit: the classifier's "
                      "change (spreads of real faces) of the target, then the two other attributes that moved most",
              fill="black", font=font)
    y = 26
    for label, images, lines in rows:
        draw.text((6, y + size // 2 - 6), label, fill="black", font=font)
        for i in range(n):
            img.paste(Image.fromarray(to_uint8(images[i : i + 1])[0]).resize((size, size), Image.NEAREST),
                      (left + i * size, y))
            for k, line in enumerate(lines[i] if lines else []):
                draw.text((left + i * size + 2, y + size + 1 + 13 * k), line,
                          fill="black" if k == 0 else (120, 0, 0), font=small)
        y += size + (text_h if lines else 4)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


_SPREADS: dict[int, dict[str, float]] = {}


def _spreads(resolution: int, score) -> dict[str, float]:
    """Each attribute's spread over the real test images (once per resolution: both generators share them)."""
    if resolution not in _SPREADS:
        _SPREADS[resolution] = real_spreads(score(load_test_images(SPREAD_IMAGES, resolution).images))
    return _SPREADS[resolution]


def optimized_set(gen: str, G, classifier, start: dict[str, Direction], fit_w: torch.Tensor,
                  scales: dict[str, float], args: argparse.Namespace, skip: set[str]) -> dict[str, Direction]:
    """Every direction's vector optimised through G and the classifier (``optimize_directions``, with the
    generator's discriminator as the realism term) from its best closed-form steering ``start``, on the first
    ``--optimize-n`` fit samples; ``skip``: directions kept as they are (clean in closed form). Each result is
    kept in ``--cache`` so an interrupted run resumes where it stopped."""
    D = load_model(args.discriminator or f"{gen}-d", kind="discriminator").eval()
    names = [n for n in start if n not in skip]
    cache = Path(args.cache) / f"{gen}-optimized-{args.optimize_iterations}-{args.seed}" if args.cache else None
    opts = SteeringOptions(step=args.step, iterations=args.optimize_iterations, batch=args.optimize_batch,
                           seed=args.seed)
    optimised, _ = optimize_directions(G, classifier, start, names=names, discriminator=D,
                                       codes=G.to_wplus(fit_w[: args.optimize_n]), scales=scales, options=opts,
                                       cache_dir=cache, log=log) if names else ({}, {})
    return {n: optimised.get(n, d) for n, d in start.items()}


def run_generator(gen: str, args: argparse.Namespace) -> None:
    """Steps 1-5 of the module docstring for one generator."""
    saved = OUT / f"{gen}.json"
    if args.strip_only:  # the shipped directions (with their recorded cross-talk) on 8 inverted test faces
        G = load_generator(gen).eval()
        classifier = load_model(args.classifier, kind="classifier").eval()
        every = {k: Direction.load(p) for k, p in find_directions(gen).items()}
        targets, _ = resolve_targets(every, classifier.attributes)
        score = classifier_scorer(classifier, targets)
        test = load_test_images(8, G.resolution)
        codes8 = invert_cached("domain-guided", G, test, encoders={"domain-guided": load_encoder(default_encoder(gen))},
                               progress=False).codes
        path = edit_strip(G, test.images, codes8, every, [s for s in args.strip.split(",") if s], score, targets,
                          _spreads(G.resolution, score), OUT / f"{gen}-strip.png", step=args.step)
        log(f"wrote {path.relative_to(ROOT)}")
        return
    if args.measure_only:  # before (--before) vs the shipped directions on fresh samples, no choice, no writing
        G = load_generator(gen).eval()
        classifier = load_model(args.classifier, kind="classifier").eval()
        shipped_now = {k: Direction.load(p) for k, p in find_directions(gen).items()}
        targets, _ = resolve_targets(shipped_now, classifier.attributes)
        old = {p.stem: Direction.load(p) for p in sorted(Path(args.before).glob("*.safetensors"))} \
            if args.before else shipped_now
        score = classifier_scorer(classifier, targets)
        families = {k: t.attribute for k, t in targets.items()}
        thresholds = {k: t.threshold for k, t in targets.items()}
        scales = _spreads(G.resolution, score)
        codes = G.to_wplus(sample_w(G, args.n, seed=args.seed + 2, progress=False)[0])
        for label, dirs in (("before", old), ("after", shipped_now)):
            dirs = {k: dirs[k] for k in targets}
            for statistic in ("signed", "absolute"):
                ct = measure_crosstalk(codes, dirs, lambda c: render_codes(G, c), score, thresholds=thresholds,
                                       families=families, step=args.step, scales=scales, statistic=statistic)
                print(f"{gen} {label:<6} {statistic:<8} n={args.n}: clean {ct.clean_count()} of {len(dirs)}, "
                      f"median worst {fmt(ct.median_worst())}; clean: "
                      f"{', '.join(r for r in ct.rows if ct.clean(r)) or 'none'}", flush=True)
        return
    if args.from_json:
        data = json.loads(saved.read_text())
        results = {k: CrossTalk.from_json(v) for k, v in data.items() if "/" in k}
        heatmaps(gen, results)
        report(gen, results)
        compact(gen, results)
        return
    G = load_generator(gen).eval()
    classifier = load_model(args.classifier, kind="classifier").eval()
    before_files = (sorted(Path(args.before).glob("*.safetensors")) if args.before
                    else list(find_directions(gen).values()))
    every = {p.stem: Direction.load(p) for p in before_files}
    targets, _ = resolve_targets(every, classifier.attributes)
    shipped = {k: every[k] for k in targets}
    families = {k: t.attribute for k, t in targets.items()}
    thresholds = {k: t.threshold for k, t in targets.items()}
    score = classifier_scorer(classifier, targets)
    log(f"{gen}: {len(shipped)} attribute directions; spreads over {SPREAD_IMAGES} real test images")
    scales = _spreads(G.resolution, score)

    def render(c: torch.Tensor) -> torch.Tensor:
        return render_codes(G, c)

    def wplus(n: int, seed: int) -> torch.Tensor:
        return G.to_wplus(sample_w(G, n, seed=seed, progress=False)[0])

    log(f"fit sample: {args.fit_n} codes scored")
    cache = Path(args.cache) / f"{gen}-fit-{args.fit_n}-{args.seed}.pt" if args.cache else None
    if cache is not None and cache.is_file():
        codes, readings = torch.load(cache)
    else:
        codes, readings = sample_w(G, args.fit_n, seed=args.seed, render=lambda w: render(G.to_wplus(w)),
                                   scorer=score, progress=False)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save((codes, readings), cache)
    cands = candidate_sets(shipped, codes, readings, targets)
    cands["shipped"] = shipped  # the incumbent competes too
    screen_codes = wplus(args.screen_n, args.seed + 1)
    screened = {}

    def screen(k: str, dirs: dict[str, Direction]) -> None:
        log(f"screen {k} on {args.screen_n} samples")
        screened[k] = measure_crosstalk(screen_codes, dirs, render, score, thresholds=thresholds,
                                        families=families, step=args.step, scales=scales, samples="screen",
                                        statistic=args.statistic)
        log(f"  {k}: clean {screened[k].clean_count()} of {len(dirs)}, median worst "
            f"{fmt(screened[k].median_worst())}")

    for k, dirs in cands.items():
        screen(k, dirs)
    if args.optimize_iterations:  # start from the best closed form, optimise through G and the classifier
        closed = {name: choose(name, screened) for name in shipped}
        done = {n for n in shipped if screened[closed[n]].clean(n)}
        log(f"clean in closed form: {len(done)} of {len(shipped)}; optimising the others")
        cands["optimized"] = optimized_set(gen, G, classifier, {n: cands[closed[n]][n] for n in shipped}, codes,
                                           scales, args, skip=done)
        screen("optimized", cands["optimized"])
    picked = {name: choose(name, screened) for name in shipped}
    after = {name: cands[picked[name]][name] for name in shipped}
    chosen = {name: steer_of(after[name].source) for name in shipped}  # "shipped" named by its own steering

    eval_codes = wplus(args.n, args.seed + 2)
    test = load_test_images(args.test_n, G.resolution)
    encoder_name = default_encoder(gen)
    if encoder_name is None:
        raise SystemExit(f"{gen} has no domain-guided encoder to invert the test faces with")
    E = load_encoder(encoder_name)
    method, options = ("idinvert", {"steps": args.idinvert_steps}) if args.idinvert_steps else ("domain-guided", {})
    test_codes = invert_cached(method, G, test, encoders={"domain-guided": E}, options=options,
                               progress=False).codes
    results = {f"screen/{k}": v for k, v in screened.items()}
    other = "signed" if args.statistic == "absolute" else "absolute"
    for label, dirs in (("before", shipped), ("after", after)):
        for samples, c in (("generator", eval_codes), ("test_faces", test_codes)):
            for statistic, key in ((args.statistic, f"{label}/{samples}"), (other, f"{label}/{samples}/{other}")):
                log(f"measure {label} on {samples} ({len(c)}), {statistic}")
                results[key] = measure_crosstalk(
                    c, dirs, render, score, thresholds=thresholds, families=families, step=args.step,
                    scales=scales, samples=samples, statistic=statistic)
    for key, ct in results.items():
        if key.startswith("after/"):
            ct.extra["steering"] = chosen
        elif key.startswith("before/"):
            ct.extra["steering"] = {k: d.source for k, d in shipped.items()}
    save_crosstalk(results, saved)
    log(f"wrote {saved.relative_to(ROOT)}")
    print("\nscreening (clean / median worst): " + ", ".join(
        f"{k} {v.clean_count()}/{len(v.rows)} {fmt(v.median_worst())}" for k, v in screened.items()))
    print("\n| direction | " + " | ".join(screened) + " | chosen |")
    print("|---|" + "---|" * (len(screened) + 1))
    for name in shipped:
        cells = [f"{screened[k].success[name]:.0%} / {fmt(screened[k].worst(name)[0])}"
                 + (" c" if screened[k].clean(name) else "") for k in screened]
        print(f"| {name} | " + " | ".join(cells) + f" | {picked[name]} ({chosen[name]}) |")
    heatmaps(gen, results)
    report(gen, results)
    if args.ship:
        ship(gen, after, results, "python benchmarks/crosstalk.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in (("n", args.n), ("test_n", args.test_n),
                                                       ("screen_n", args.screen_n), ("fit_n", args.fit_n),
                                                       ("seed", args.seed), ("statistic", args.statistic),
                                                       ("optimize_iterations", args.optimize_iterations),
                                                       ("optimize_n", args.optimize_n),
                                                       ("optimize_batch", args.optimize_batch))))
    names = [s for s in args.strip.split(",") if s]
    if names:
        faces, codes8 = test.images[:8], test_codes[:8]
        path = edit_strip(G, faces, codes8, after, names, score, targets, scales, OUT / f"{gen}-strip.png",
                          step=args.step)
        log(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", action="append", help="bundled generator (repeatable)")
    ap.add_argument("--classifier", default="toyfaces-classifier-64")
    ap.add_argument("--n", type=int, default=200, help="fresh generator samples for the before/after figures")
    ap.add_argument("--test-n", type=int, default=64, help="held-out test faces, inverted")
    ap.add_argument("--screen-n", type=int, default=96, help="other generator samples on which the choice is made")
    ap.add_argument("--fit-n", type=int, default=4000, help="scored samples for the class means and covariance")
    ap.add_argument("--step", type=float, default=DEFAULT_STEP)
    ap.add_argument("--statistic", choices=("absolute", "signed"), default="absolute",
                    help="cross-talk statistic the choice is made and shipped with (absolute: per face, what one "
                         "sees; signed: mean over faces); the other is measured and printed too")
    ap.add_argument("--optimize-iterations", type=int, default=40,
                    help="iterations of optimize_steering per direction (0: closed-form steerings only)")
    ap.add_argument("--optimize-n", type=int, default=1024, help="fit samples the optimisation draws batches from")
    ap.add_argument("--optimize-batch", type=int, default=16, help="faces per optimisation step")
    ap.add_argument("--discriminator", help="the realism term's discriminator (default: <generator>-d)")
    ap.add_argument("--idinvert-steps", type=int, default=0, help="IDInvert steps after the encoder (0: encoder only)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--before", help="folder of the directions shipped before (default: the generator's own); they "
                                     "are measured as 'before' and compete as the candidate 'shipped'")
    ap.add_argument("--cache", help="folder to keep the scored fit sample in (a rerun reuses it)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    ap.add_argument("--ship", action="store_true", help="rewrite the generator's bundled directions/ (a release step)")
    ap.add_argument("--strip", default="", help="comma-separated directions for an edit strip of 8 test faces")
    ap.add_argument("--strip-only", action="store_true", help="only draw --strip with the shipped directions")
    ap.add_argument("--from-json", action="store_true", help="only redraw and print from docs/crosstalk/<gen>.json")
    ap.add_argument("--measure-only", action="store_true",
                    help="only measure --before against the shipped directions on --n fresh samples, with the signed "
                         "and the absolute statistic (measure_crosstalk(statistic=...)), and print the clean counts")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    for gen in args.generator or ["toyfaces-stylegan2-64"]:
        run_generator(gen, args)
    print(f"\n{platform.machine()}, {torch.get_num_threads()} threads, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
