"""``idinvert invert GEN DIR -o OUT`` (issue 16): a folder in batches, a broken file recorded and skipped, the run
resumed without redoing finished files, and two processes under torchrun sharing the folder."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

from idinvert_plugins.cli import main
from idinvert_plugins.toyfaces import render, sample_attributes

MODEL = "toyfaces-stylegan2-64"


@pytest.fixture
def folder(tmp_path):
    """Five toy faces and one file that is not an image."""
    d = tmp_path / "in"
    d.mkdir()
    for i in range(5):
        Image.fromarray(render(sample_attributes(0, 65_000 + i), 64)).save(d / f"face{i}.png")
    (d / "broken.png").write_text("not an image")
    return d


def rows(out):
    with (out / "results.csv").open(newline="") as f:
        return {r["file"]: r for r in csv.DictReader(f)}


def test_folder_in_batches_records_and_skips_a_broken_file_and_resumes(folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["invert", MODEL, str(folder), "--method", "encoder", "--batch", "2", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "broken.png: skipped: " in captured.err and "not an image file" in captured.err
    assert "5 image(s) inverted with encoder" in captured.out and "1 failed: broken.png" in captured.out
    table = rows(out)
    assert set(table) == {f"face{i}.png" for i in range(5)} | {"broken.png"}
    assert table["broken.png"]["status"] == "error" and "not an image file" in table["broken.png"]["error"]
    for i in range(5):
        r = table[f"face{i}.png"]
        assert r["status"] == "ok" and r["method"] == "encoder" and 0 < float(r["mse"]) < 0.1
        assert float(r["seconds"]) > 0 and r["outputs"] == f"face{i}.png;face{i}.safetensors"
        assert np.asarray(Image.open(out / f"face{i}.png")).shape == (64, 64, 3)
    code = load_file(out / "face3.safetensors")["code"]
    # resume: finished files are skipped (their outputs are not rewritten), a lost output is redone
    stamp = (out / "face1.png").stat().st_mtime_ns
    (out / "face4.safetensors").unlink()
    assert main(["invert", MODEL, str(folder), "--method", "encoder", "--batch", "2", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 image(s) inverted" in text and "4 already done" in text
    assert (out / "face1.png").stat().st_mtime_ns == stamp
    assert (out / "face4.safetensors").is_file()
    assert load_file(out / "face3.safetensors")["code"].equal(code)
    assert len(rows(out)) == 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_under_torchrun_share_the_folder(folder, tmp_path):
    from conftest import REPO

    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "idinvert_plugins.cli", "invert", MODEL, str(folder), "--method", "encoder", "--batch", "2", "-o",
           str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = rows(out)
    assert len(table) == 6 and sum(r["status"] == "ok" for r in table.values()) == 5
    assert table["broken.png"]["status"] == "error"
    assert not list(out.glob("results.rank*.csv"))  # merged into results.csv by rank 0
    assert "over 2 processes" in proc.stdout and proc.stdout.count("image(s) inverted") == 1
    # each file was inverted once, by one of the two processes: the same code as a single process writes
    single = tmp_path / "single"
    assert main(["invert", MODEL, str(folder / "face2.png"), "--method", "encoder", "-o", str(single)]) == 0
    assert load_file(out / "face2.safetensors")["code"].allclose(load_file(single / "face2.safetensors")["code"],
                                                                 atol=1e-5)
