"""Folder throughput of ``idinvert invert GEN DIR`` (docs/performance.md, "Folders"): images/s with the encoder only
and with IDInvert, in 1 and 2 processes (torchrun), on held-out toy faces.

    python benchmarks/folders.py --n 16 --steps 20
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="toyfaces-stylegan2-64")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--steps", type=int, default=20, help="IDInvert iterations")
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args()
    from idinvert_plugins.toyfaces import render, sample_attributes

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i in range(args.n):
            Image.fromarray(render(sample_attributes(0, 65_000 + i), 64)).save(folder / f"{i:05d}.png")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        print(f"{args.n} images, batch {args.batch}, load average {os.getloadavg()[0]:.1f}")
        print("| method | processes | images/s | wall s |")
        print("|---|---|---|---|")
        for method, extra in (("encoder", []), ("idinvert", ["--steps", str(args.steps)])):
            for procs in (1, 2):
                out = Path(tmp) / f"out-{method}-{procs}"
                cli = ["-m", "idinvert_plugins.cli", "invert", args.model, str(folder), "--method", method,
                       "--batch", str(args.batch), "-o", str(out), *extra]
                cmd = ([sys.executable, *cli] if procs == 1 else
                       [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}",
                        f"--master_port={free_port()}", *cli])
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                m = re.search(r"inverted with \S+ in ([\d.]+) s \(([\d.]+) images/s", proc.stdout)
                if proc.returncode or not m:
                    print(f"| {method} | {procs} | failed | {proc.stderr[-300:]!r} |")
                    continue
                name = method + (f" ({args.steps} steps)" if method == "idinvert" else "")
                print(f"| {name} | {procs} | {float(m[2]):.2f} | {float(m[1]):.1f} |", flush=True)


if __name__ == "__main__":
    main()
