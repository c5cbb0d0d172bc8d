"""How fast the web app answers: upload-to-reconstruction time and requests per minute under 4 clients.

    python benchmarks/app.py [--model toyfaces-stylegan2-64] [--repeats 5] [--seconds 60] [--clients 4]

Starts ``gradio_app.py`` in its own process (as a user would), then drives it over HTTP with gradio_client:

1. **latency**: time from sending the image (upload included) to having the reconstruction back, for
   encoder-only inversion and for IDInvert at its default iterations (median of ``--repeats``; the server's own
   inversion time, from the page's metrics, alongside);
2. **throughput**: ``--clients`` concurrent sessions, each repeating "invert (encoder only), then 3 slider
   edits" for ``--seconds``; and the same with IDInvert inversions only. Reported as requests per minute held,
   with the latency of each request kind.

Prints a Markdown table (for docs/performance.md). Without an encoder, encoder-only rows are skipped.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, str(REPO / "gradio_app.py"), "--model", args.model, "--port", str(free_port())]
    if args.encoder:
        cmd += ["--encoder", args.encoder]
    for d in args.directions:
        cmd += ["--directions", d]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"at (http://\S+)", line)
        if match:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # drain the log
            return proc, match.group(1)
    raise RuntimeError(f"the app did not start (exit code {proc.wait()})")


def server_seconds(metrics: str) -> float:
    match = re.search(r"in \*\*([0-9.]+) s\*\*", metrics)
    return float(match.group(1)) if match else float("nan")


def latency(url: str, image: str, model: str, method: str, steps: int, repeats: int) -> tuple[float, float]:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    client.predict(model, handle_file(image), method, steps, api_name="/invert")  # warm-up
    wall, server = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = client.predict(model, handle_file(image), method, steps, api_name="/invert")
        wall.append(time.perf_counter() - t0)
        server.append(server_seconds(result[2]))
    return statistics.median(wall), statistics.median(server)


def throughput(url: str, images: list[str], model: str, method: str, steps: int, edits: int, clients: int,
               seconds: float) -> dict[str, float]:
    """Each client loops "invert, then ``edits`` slider edits" until the time is up; counts finished requests."""
    from gradio_client import Client, handle_file

    counts = {"invert": [], "edit": []}
    lock = threading.Lock()
    errors: list[str] = []
    start = threading.Barrier(clients + 1)

    def run(i: int) -> None:
        client = Client(url, verbose=False)
        start.wait()
        deadline = time.perf_counter() + seconds
        k = 0
        while time.perf_counter() < deadline:
            try:
                t0 = time.perf_counter()
                client.predict(model, handle_file(images[(i + k) % len(images)]), method, steps, api_name="/invert")
                with lock:
                    counts["invert"].append(time.perf_counter() - t0)
                for e in range(edits):
                    if time.perf_counter() >= deadline:
                        break
                    t0 = time.perf_counter()
                    client.predict(float((e % 5) - 2), api_name="/edit")
                    with lock:
                        counts["edit"].append(time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001 - report, keep measuring
                errors.append(f"{type(exc).__name__}: {exc}")
            k += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    total = len(counts["invert"]) + len(counts["edit"])
    return {"requests_per_min": total / elapsed * 60, "inverts": len(counts["invert"]), "edits": len(counts["edit"]),
            "invert_median_s": statistics.median(counts["invert"]) if counts["invert"] else float("nan"),
            "edit_median_s": statistics.median(counts["edit"]) if counts["edit"] else float("nan"),
            "elapsed_s": elapsed, "errors": len(errors), "first_errors": errors[:3]}


def main(argv: list[str] | None = None) -> int:
    from idinvert_plugins.app.examples import example_images
    from idinvert_plugins.app.models import AUTO, DEFAULT_MODEL, ModelSpec, load_bundle
    from idinvert_plugins.app.session import default_steps

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--encoder", default=AUTO)
    parser.add_argument("--directions", action="append", default=[])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each throughput run")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--steps", type=int, default=None, help="IDInvert iterations (default: its default, 100)")
    args = parser.parse_args(argv)
    steps = args.steps if args.steps is not None else default_steps("idinvert")
    bundle = load_bundle(ModelSpec(args.model, encoder=args.encoder, directions=tuple(args.directions)))
    has_encoder, has_directions = bundle.encoder is not None, bool(bundle.directions)
    label = args.model  # the app names a model by how it was given
    images = [p for p, _ in example_images(bundle.resolution)]
    proc, url = start_server(args)
    try:
        import torch

        print(f"app on {label} ({bundle.resolution} px, encoder: {'yes' if has_encoder else 'none'}), "
              f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
        print("| measurement | value |\n|---|---|")
        if has_encoder:
            wall, server = latency(url, images[0], label, "encoder", 0, args.repeats)
            print(f"| upload -> reconstruction, encoder only (median of {args.repeats}) | {wall:.3f} s "
                  f"(server inversion {server:.3f} s) |")
        wall, server = latency(url, images[0], label, "idinvert", steps, args.repeats)
        print(f"| upload -> reconstruction, IDInvert {steps} iterations (median of {args.repeats}) | {wall:.2f} s "
              f"(server inversion {server:.2f} s) |")
        runs = []
        if has_encoder and has_directions:
            runs.append(("encoder-only inversion + 3 slider edits", "encoder", 0, 3))
        runs.append((f"IDInvert {steps} iterations only", "idinvert", steps, 0))
        for what, method, n_steps, edits in runs:
            r = throughput(url, images, label, method, n_steps, edits, args.clients, args.seconds)
            edit_part = f", edit median {r['edit_median_s']:.3f} s" if edits else ""
            print(f"| {args.clients} clients, {what}, {r['elapsed_s']:.0f} s | **{r['requests_per_min']:.0f} "
                  f"requests/min** ({r['inverts']} inversions, {r['edits']} edits; invert median "
                  f"{r['invert_median_s']:.2f} s{edit_part}; errors {r['errors']}) |")
            for err in r["first_errors"]:
                print(f"  error: {err}", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
