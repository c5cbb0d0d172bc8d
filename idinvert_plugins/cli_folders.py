"""``idinvert invert GENERATOR DIR -o OUT`` and ``idinvert edit DIR --model GENERATOR ... -o OUT``: a whole folder
of images (or photos, with ``--align``).

Batched (``--batch N`` images per inversion), with a progress bar, resumable (a file whose outputs exist and
whose row in ``OUT/results.csv`` says ``ok`` is skipped), and robust: a file that cannot be read, has no face,
or fails is recorded with its error and skipped, and the run goes on. ``OUT/results.csv`` has one row per
file: ``file, status (ok | error), faces, method, mse, seconds, outputs, error``; an edit run adds ``edit`` (the
edit, e.g. ``smile=+2``), and its ``mse`` is the inversion's (the reconstruction against the input, before the
edit). An edit run refuses a folder whose table records another edit (or an inversion), so that finished files
of one run are never overwritten by another.

Under ``torchrun --nproc-per-node N`` each process takes every N-th file (rank ``r``: files ``r, r+N, ...``),
writes its rows to ``OUT/results.rank<r>.csv`` as it goes, and process 0 merges them into ``results.csv`` at
the end.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS_NAME = "results.csv"
COLUMNS = ("file", "status", "faces", "method", "mse", "seconds", "outputs", "error")
EDIT_COLUMNS = ("file", "status", "faces", "method", "edit", "mse", "seconds", "outputs", "error")


def is_folder_run(sources: Sequence[str | Path]) -> bool:
    """Whether the command was given a folder (then every image in it is processed)."""
    return any(Path(s).is_dir() for s in sources)


def read_results(folder: Path) -> dict[str, dict[str, str]]:
    """The latest row per file of ``results.csv`` and of any per-rank files left by an interrupted run."""
    rows: dict[str, dict[str, str]] = {}
    for path in [folder / RESULTS_NAME, *sorted(folder.glob("results.rank*.csv"))]:
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    if row.get("file"):
                        rows[row["file"]] = row
    return rows


def _append(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> None:
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in columns})


def _done(row: dict[str, str] | None, folder: Path) -> bool:
    return bool(row) and row.get("status") == "ok" and all(
        (folder / name).is_file() for name in (row.get("outputs") or "").split(";") if name)


def invert_folder(pipe: Any, args: argparse.Namespace) -> int:
    """Invert every image of the folders (and files) in ``args.images`` into ``args.output``; returns 0 when the run
    went through, also when some files failed (they are listed, and recorded in ``results.csv``: a run under
    torchrun must not look crashed because one photo was broken)."""
    from .cli_common import composed_method
    from .params import parse_assignments

    method, inverter = composed_method(pipe, args.method, args.embed, args.refine)
    options = parse_assignments(args.set)
    if args.steps is not None and "steps" in {p.name for p in inverter.params}:
        options.setdefault("steps", args.steps)
    if args.bf16:
        options["autocast"] = True

    def process(chunk: Sequence[Path], out: Path) -> list[dict[str, Any]]:
        return _invert_batch(pipe, inverter, method, options, chunk, out, args)

    return _run_folder(pipe, inverter, args, args.images, process, task="invert", done=f"inverted with {method}")


#: an edit of a folder run: a batch of latents -> (images ``[N, 3, R, R]``, or ``[N, V, 3, R, R]`` for an editor
#: whose result has variants, and the edited latents)
EditFn = Callable[[Any], tuple[Any, Any]]


def edit_folder(pipe: Any, args: argparse.Namespace, spec: str, edit: EditFn) -> int:
    """``idinvert edit DIR``: invert every image of folder ``args.image`` (``--method``, ``--steps``; with ``--align``
    the faces of each photo), apply ``edit`` (described by ``spec``, e.g. ``smile=+2``) and write ``OUT/STEM.png``
    (with ``--align``: the full-size photo with the edited faces pasted back), the edited latent
    ``STEM.safetensors`` (``STEM_K.safetensors`` and the transform ``STEM_K.json`` per face with ``--align``) and,
    with ``--strip``, ``STEM_strip.png`` (input, reconstruction, edit). Same conventions as :func:`invert_folder`."""
    from .cli_common import composed_method

    if args.code:
        raise ValueError("--code edits one code file; a folder run inverts every image of DIR (leave --code out)")
    if args.save_code:
        raise ValueError("--save-code is for one image; a folder run writes each file's edited code as "
                         "OUT/STEM.safetensors")
    method, inverter = composed_method(pipe, args.method, None, None)
    options = {"steps": args.steps} if args.steps is not None and "steps" in {p.name for p in inverter.params} \
        else {}

    def process(chunk: Sequence[Path], out: Path) -> list[dict[str, Any]]:
        return _edit_batch(pipe, inverter, method, options, spec, edit, chunk, out, args)

    return _run_folder(pipe, inverter, args, [args.image], process, task="edit",
                       done=f"inverted with {method} and edited ({spec})", edit=spec)


def _run_folder(pipe: Any, inverter: Any, args: argparse.Namespace, sources: Sequence[str | Path],
                process: Callable[[Sequence[Path], Path], list[dict[str, Any]]], *, task: str, done: str,
                edit: str | None = None) -> int:
    """The loop of a folder run: list the files, take this process's share (torchrun), skip finished ones, call
    ``process(files, out)`` per batch (one row per file), write and merge the tables, print the summary."""
    from tqdm import tqdm

    from .align.commands import expand_photos
    from .training.distributed import cleanup, gather_objects, import_before_group, init_from_env

    columns = COLUMNS if edit is None else EDIT_COLUMNS
    files = expand_photos(sources)
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise ValueError(f"{stems[f.stem]} and {f} would write the same outputs ({f.stem}.png): rename one")
        stems[f.stem] = f
    if getattr(args, "landmarks", None):
        raise ValueError("--landmarks FILE gives the faces of one photo; for a folder use --aligner json "
                         "(PHOTO_STEM.landmarks.json beside each photo)")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"-o {out}: a folder run writes into a folder, and this is a file: give a folder")
    previous = read_results(out)
    if edit is not None:
        other = sorted({r.get("edit") or "" for r in previous.values() if r.get("status") == "ok"} - {edit})
        if other:
            what = f"the edit {other[0]!r}" if other[0] else "an inversion (no edit)"
            raise ValueError(f"{out / RESULTS_NAME} records {what}, not {edit!r}: its finished files would be "
                             "overwritten; write to another folder (-o)")
    out.mkdir(parents=True, exist_ok=True)
    info = init_from_env("cpu" if str(getattr(args, "device", "cpu")) == "cpu" else None)
    mine = files[info.rank::info.world_size]
    todo = [f for f in mine if not _done(previous.get(f.name), out)]
    partial = out / (f"results.rank{info.rank}.csv" if info.enabled else RESULTS_NAME)
    rows: list[dict[str, Any]] = []
    batch = max(1, int(args.batch))
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), unit="image", desc=f"{task} (rank {info.rank})"
               if info.enabled else task, disable=not (sys.stderr.isatty() or args.progress), file=sys.stderr)
    # load now what the first batch would (the networks; torch._dynamo, which torch.optim imports, takes seconds):
    # the images/s figure is the inversions'
    import_before_group()
    _ = pipe.encoder, (pipe.feature_net if getattr(inverter, "uses_feature_net", True) else None)
    t_run = time.perf_counter()
    for start in range(0, len(todo), batch):
        chunk = todo[start:start + batch]
        new = process(chunk, out)
        _append(partial, new, columns)
        rows += new
        for row in new:
            if row["status"] != "ok":
                print(f"{row['file']}: skipped: {row['error']}", file=sys.stderr)
        bar.update(len(chunk))
    bar.close()
    seconds = time.perf_counter() - t_run
    all_rows = [r for part in gather_objects(rows, info) for r in part]
    if info.is_main:
        merged = read_results(out)
        for row in all_rows:
            merged[row["file"]] = {k: str(row.get(k, "")) for k in columns}
        order = {f.name: i for i, f in enumerate(files)}
        tmp = out / (RESULTS_NAME + ".tmp")
        tmp.unlink(missing_ok=True)
        _append(tmp, sorted(merged.values(), key=lambda r: order.get(r["file"], len(order))), columns)
        tmp.replace(out / RESULTS_NAME)
        for p in out.glob("results.rank*.csv"):
            p.unlink()
    if info.enabled:
        gather_objects(None, info)  # every rank waits for the merge before leaving
        cleanup()
    failed = [r for r in all_rows if r["status"] != "ok"]
    ok = len(all_rows) - len(failed)
    if info.is_main:
        skipped = len(files) - len(all_rows)
        rate = ok / seconds if seconds > 0 else float("nan")
        print(f"{ok} image(s) {done} in {seconds:.1f} s ({rate:.2f} images/s"
              + (f" over {info.world_size} processes" if info.enabled else "") + f"), {skipped} already done, "
              f"{len(failed)} failed" + (f": {', '.join(r['file'] for r in failed)}" if failed else "")
              + f"; table: {out / RESULTS_NAME}")
    return 0


def _load_batch(pipe: Any, files: Sequence[Path], args: argparse.Namespace
                ) -> tuple[list[dict[str, Any]], list[tuple[Path, Any]], Any]:
    """Rows of the files that cannot be loaded (or have no face), the others as ``(file, image [3, R, R] or
    PhotoFaces)``, and the stacked inputs ``[N, 3, R, R]`` (with ``--align``: every face's crop; None if none)."""
    import torch

    from .align.base import NoFaceError
    from .align.commands import align_photos_for, crops_of
    from .images import ImageError

    rows: list[dict[str, Any]] = []
    items: list[tuple[Path, Any]] = []
    for f in files:
        try:
            if args.align:
                items.append((f, align_photos_for(pipe, [f], args)[0]))
            else:
                items.append((f, pipe.images([f], crop=args.crop)[0]))
        except (ImageError, NoFaceError, ValueError, OSError) as exc:
            rows.append({"file": f.name, "status": "error", "error": str(exc).replace("\n", " ")})
    if not items:
        return rows, items, None
    x = crops_of([g for _, g in items]) if args.align else torch.stack([t for _, t in items])
    return rows, items, x


def _edit_batch(pipe: Any, inverter: Any, method: str, options: dict, spec: str, edit: EditFn,
                files: Sequence[Path], out: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Load, invert and edit ``files`` as one batch and write the outputs; one row per file."""
    import torch

    from .align.commands import save_face_files
    from .codes import save_latent
    from .images import save_image, save_strip
    from .latent import render
    from .metrics import mse

    rows, items, x = _load_batch(pipe, files, args)
    if not items:
        return rows
    t0 = time.perf_counter()
    try:
        result = pipe.invert(x, inverter, progress=False, **options)
        latent = result.latent.detach()
        images, edited = edit(latent)
        with torch.no_grad():
            recon = render(pipe.generator, latent).detach().cpu() if args.strip is not None else None
    except Exception as exc:  # noqa: BLE001 - the batch failed as a whole: record it, go on with the next
        return rows + [{"file": f.name, "status": "error", "error": f"{type(exc).__name__}: {exc}"} for f, _ in items]
    per_image = (time.perf_counter() - t0) / len(x)
    errors = mse(result.images.detach().to(x), x).tolist()
    images = images.detach().cpu()
    variants = images.ndim == 5
    final = images[:, -1] if variants else images
    i = 0
    for f, item in items:
        n = len(item.faces) if args.align else 1
        outputs = [f"{f.stem}.png"]
        if args.align:
            item.write(final[i:i + n], out / f"{f.stem}.png")
            for j, face in enumerate(item.faces):
                save_latent(edited[i + j], out / f"{f.stem}_{face.face}.safetensors", generator=pipe.name,
                            method=method, edit=spec)
                outputs += [f"{f.stem}_{face.face}.safetensors", f"{f.stem}_{face.face}.json"]
            save_face_files(item, out, x[i:i + n] if args.save_crops else None,
                            final[i:i + n] if args.save_crops else None, "_edited")
        else:
            if variants:  # input | the editor's frames
                save_strip(torch.cat([x[i:i + 1].cpu(), images[i]]), out / f"{f.stem}.png")
            else:
                save_image(images[i], out / f"{f.stem}.png")
            save_latent(edited[i], out / f"{f.stem}.safetensors", generator=pipe.name, method=method, edit=spec)
            outputs.append(f"{f.stem}.safetensors")
        if recon is not None:
            save_strip(torch.cat([x[i:i + n].cpu(), recon[i:i + n], final[i:i + n]]), out / f"{f.stem}_strip.png")
            outputs.append(f"{f.stem}_strip.png")
        err = sum(errors[i:i + n]) / n
        rows.append({"file": f.name, "status": "ok", "faces": n if args.align else "", "method": method,
                     "edit": spec, "mse": f"{err:.6f}" if math.isfinite(err) else "",
                     "seconds": f"{per_image * n:.3f}", "outputs": ";".join(outputs), "error": ""})
        i += n
    return rows


def _invert_batch(pipe: Any, inverter: Any, method: str, options: dict, files: Sequence[Path], out: Path,
                  args: argparse.Namespace) -> list[dict[str, Any]]:
    """Load what can be loaded of ``files``, invert it as one batch, write the outputs; one row per file."""
    from .align.commands import save_face_files
    from .codes import save_latent
    from .images import save_image
    from .metrics import mse

    rows, items, x = _load_batch(pipe, files, args)
    if not items:
        return rows
    t0 = time.perf_counter()
    try:
        result = pipe.invert(x, inverter, progress=False, **options)
    except Exception as exc:  # noqa: BLE001 - the batch failed as a whole: record it, go on with the next
        return rows + [{"file": f.name, "status": "error", "error": f"{type(exc).__name__}: {exc}"} for f, _ in items]
    per_image = (time.perf_counter() - t0) / len(x)
    images = result.images.detach().cpu()
    errors = mse(images.to(x), x.cpu()).tolist()
    i = 0
    for f, item in items:
        n = len(item.faces) if args.align else 1
        outputs = [f"{f.stem}.png"]
        if args.align:
            item.write(images[i:i + n], out / f"{f.stem}.png")
            for j, face in enumerate(item.faces):
                save_latent(result.latent[i + j], out / f"{f.stem}_{face.face}.safetensors", generator=pipe.name,
                            method=method)
                outputs += [f"{f.stem}_{face.face}.safetensors", f"{f.stem}_{face.face}.json"]
            save_face_files(item, out, x[i:i + n] if args.save_crops else None,
                            images[i:i + n] if args.save_crops else None, "_inverted")
        else:
            save_image(images[i], out / f"{f.stem}.png")
            save_latent(result.latent[i], out / f"{f.stem}.safetensors", generator=pipe.name, method=method)
            outputs.append(f"{f.stem}.safetensors")
        err = sum(errors[i:i + n]) / n
        rows.append({"file": f.name, "status": "ok", "faces": n if args.align else "", "method": method,
                     "mse": f"{err:.6f}" if math.isfinite(err) else "", "seconds": f"{per_image * n:.3f}",
                     "outputs": ";".join(outputs), "error": ""})
        i += n
    return rows


__all__ = ["COLUMNS", "EDIT_COLUMNS", "RESULTS_NAME", "EditFn", "edit_folder", "invert_folder", "is_folder_run",
           "read_results"]
