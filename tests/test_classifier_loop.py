"""The classifier trainer runs in the shared training loop (training/loop.py): log, checkpoint, graceful stop,
resume (format 1 files too), time-budget sizing, and torchrun DDP, like the GAN and encoder trainers."""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from idinvert_plugins.training import classifier as tc
from idinvert_plugins.training import loop

REPO = Path(__file__).resolve().parents[1]
TINY = dict(n=700, resolution=16, batch=16, lr=3e-3, warmup=0, channels=[8, 16, 16], hidden=32, progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_stopped_run_resumes_through_the_shared_loop(tmp_path, monkeypatch):
    calls = []
    real_run = tc.run

    def spy(trainer, schedule, info, **kwargs):
        calls.append((type(trainer).__name__, schedule.total_nimg, kwargs["checkpoint_name"], kwargs["log_name"]))
        return real_run(trainer, schedule, info, **kwargs)

    monkeypatch.setattr(tc, "run", spy)
    assert tc.run is not loop.run and real_run is loop.run  # the trainer calls the shared loop itself
    full = tc.train_classifier(tmp_path / "full", steps=6, log_every=2, **TINY)

    # Ctrl-C during step 3: the loop finishes the step, writes the checkpoint and returns
    real_step = tc.ClassifierTrainer.train_step

    def interrupted(self, batch):
        out = real_step(self, batch)
        if self.step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(tc.ClassifierTrainer, "train_step", interrupted)
    half = tc.train_classifier(tmp_path / "split", steps=6, log_every=2, **TINY)
    assert half["step"] == 3 and not half["finished"]
    state = torch.load(tmp_path / "split" / "resume.pt", map_location="cpu", weights_only=True)
    assert state["format"] == tc.RESUME_FORMAT == 2 and state["step"] == 3 and state["nimg"] == 3 * 16
    assert state["world_size"] == 1 and state["wall_s"] > 0 and "CPU" in state["hardware"]
    monkeypatch.setattr(tc.ClassifierTrainer, "train_step", real_step)

    resumed = tc.train_classifier(tmp_path / "split", steps=6, log_every=2, **TINY)
    assert resumed["step"] == 6 and resumed["finished"] and resumed["losses"] == full["losses"]
    assert _same_weights(full["model"], resumed["model"])
    assert [c[0] for c in calls] == ["ClassifierTrainer"] * 3
    assert calls[0][1:] == (6 * 16, "resume.pt", "log.jsonl")

    # the loop's log: one record per 2 steps, appended across the resumption, the mean loss of those steps
    records = [json.loads(line) for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 3, 4, 6]  # 3: the record written when stopping
    assert {"kimg", "wall_s", "images_per_s", "loss"} <= set(records[0])
    assert records[0]["loss"] == pytest.approx(sum(full["losses"][:2]) / 2)
    assert records[-1]["kimg"] == pytest.approx(6 * 16 / 1000)
    assert tc.load_resume(tmp_path / "split").config == full["model"].config


def test_resume_files_of_format_1_still_load_and_others_fail_clearly(tmp_path):
    full = tc.train_classifier(tmp_path / "full", steps=4, **TINY)
    tc.train_classifier(tmp_path / "old", steps=4, stop_at=2, **TINY)
    path = tmp_path / "old" / "resume.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    # what the trainer wrote before the shared loop: no image count, wall time, world size or network config
    old = {k: state[k] for k in ("args", "step", "model", "optimizer", "losses")}
    old["args"] = {k: v for k, v in old["args"].items() if k != "domain"}
    torch.save({"format": 1, **old}, path)
    assert tc.read_resume(path)["nimg"] == 2 * 16
    assert tc.load_resume(tmp_path / "old").config == full["model"].config
    resumed = tc.train_classifier(tmp_path / "old", steps=4, **TINY)
    assert resumed["step"] == 4 and resumed["losses"] == full["losses"]
    assert _same_weights(full["model"], resumed["model"])

    torch.save({"format": 7, **old}, path)
    with pytest.raises(ValueError, match=r"not a classifier resume file this version reads \(format 7; it reads "
                                         r"formats 1, 2\).*resume=False"):
        tc.train_classifier(tmp_path / "old", steps=4, **TINY)
    torch.save({"version": 1, "G": {}, "step": 3}, path)
    with pytest.raises(ValueError, match=r"no classifier format \(a GAN or encoder run's resume.pt\?\)"):
        tc.load_resume(tmp_path / "old")
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="cannot be read as a classifier resume file"):
        tc.train_classifier(tmp_path / "old", steps=4, **TINY)


def test_a_time_budget_sizes_the_run_and_the_resume_keeps_its_length(tmp_path):
    run = tc.train_classifier(tmp_path / "budget", steps=None, max_minutes=0.03, **{**TINY, "warmup": 2})
    assert run["steps"] >= 2 and run["step"] <= run["steps"]
    state = tc.read_resume(tmp_path / "budget" / "resume.pt")
    assert state["args"]["steps"] == run["steps"] and state["step"] == run["step"]
    again = tc.train_classifier(tmp_path / "budget", steps=None, max_minutes=5, **{**TINY, "warmup": 2})
    assert again["steps"] == run["steps"] and again["finished"]  # resumed with the length it fixed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_on_cpu(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(
        """
        import hashlib, os, sys
        import torch
        torch.set_num_threads(1)
        from idinvert_plugins.training.classifier import train_classifier

        out, ranks = sys.argv[1:3]
        run = train_classifier(out, n=700, resolution=16, batch=16, lr=3e-3, warmup=0, channels=[8, 16, 16],
                               hidden=32, steps=3, progress=False)
        h = hashlib.sha256()
        for k, v in sorted(run["model"].state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().contiguous().numpy().tobytes())
        with open(os.path.join(ranks, f"rank{os.environ['RANK']}.txt"), "w") as f:
            f.write(h.hexdigest() + "\\n" + repr(run["losses"]))
        """
    ))  # fmt: skip
    out, ranks = tmp_path / "run", tmp_path / "ranks"
    ranks.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           str(script), str(out), str(ranks)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (d0, l0), (d1, l1) = ((ranks / f"rank{r}.txt").read_text().split("\n") for r in (0, 1))
    assert d0 == d1  # gradients and BatchNorm statistics averaged: the same network on both ranks
    assert l0 == l1 and len(ast.literal_eval(l0)) == 3  # the logged loss is the mean over the ranks
    state = tc.read_resume(out / "resume.pt")
    assert state["world_size"] == 2 and state["step"] == 3 and state["nimg"] == 3 * 16
    single = tc.train_classifier(tmp_path / "single", steps=3, **TINY)
    # each rank saw half of each global batch (per-rank BatchNorm statistics), so not the single-process run
    assert not _same_weights(single["model"], tc.load_resume(out))
