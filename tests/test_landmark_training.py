"""The landmark network's trainer, split between the core (targets, loss, the loop: training/landmarks.py) and the
toy-face domain (its rendered canvases, held-out metrics, card: toyfaces/train_landmarks.py): a run of a second,
continued from its checkpoint, exported as a model folder that loads by kind and that the aligner can run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from idinvert_plugins.training.landmarks import fit, load_run, make_targets

pytestmark = pytest.mark.usefixtures("one_thread")


def test_targets_put_the_peaks_at_the_landmarks():
    lm = np.array([[[20.5, 24.5], [40.5, 24.5], [24.5, 44.5], [36.5, 44.5]]])
    t = make_targets([lm], 64)
    assert t["centre"].shape == (1, 1, 16, 16) and t["points"].shape == (1, 4, 32, 32)
    for j, (x, y) in enumerate(lm[0]):  # stride 2: pixel x sits at cell (x - 0.5) / 2
        iy, ix = np.unravel_index(int(t["points"][0, j].argmax()), (32, 32))
        assert (ix, iy) == (round((x - 0.5) / 2), round((y - 0.5) / 2))
        assert t["offsets"][0, 2 * j, iy, ix] == pytest.approx((x - (2 * ix + 0.5)) / 2)


def test_a_generic_sampler_trains_and_resumes(tmp_path):
    def sample(g, n):  # one bright square per canvas, its corners as "landmarks"
        x = -torch.ones(n, 3, 32, 32)
        x[:, :, 8:24, 8:24] = 1.0
        return x, [np.array([[[10.0, 10.0], [21.0, 10.0], [10.0, 21.0], [21.0, 21.0]]])] * n

    first = fit(sample, tmp_path / "run", minutes=0.005, batch=2, channels=(4, 4, 4, 4), resolution=32, log_every=1,
                evaluate=lambda net: {"params": sum(p.numel() for p in net.parameters())}, run_info={"tag": "a"})
    assert first["steps"] >= 1 and first["runs"][0]["tag"] == "a" and first["tag"] == "a"
    rows = [json.loads(r) for r in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(rows) == first["steps"] and all(np.isfinite(r["total"]) for r in rows)
    again = fit(sample, tmp_path / "run2", minutes=0.005, batch=2, resolution=32, init=tmp_path / "run" / "model.pt")
    assert again["steps"] == first["steps"] + again["runs"][-1]["steps"] and len(again["runs"]) == 2
    net, summary = load_run(tmp_path / "run2")
    assert summary == again and net.config["channels"] == [4, 4, 4, 4]


def test_the_toyface_trainer_exports_a_model_the_aligner_loads(tmp_path):
    from idinvert_plugins.hub import load_model
    from idinvert_plugins.toyfaces.train_landmarks import export, train

    summary = train(tmp_path / "run", minutes=0.01, pool_size=4, batch=2, channels=(4, 4, 4, 4), log_every=1,
                    test_size=4, eval_n=4)
    assert summary["pool_size"] == 4 and summary["runs"][0]["canonical"] == 0.55
    assert set(summary["metrics"]) == {"canonical_found", "canonical_err_mean_px", "canonical_err_p95_px",
                                       "scene_recall", "scene_faces"}
    folder = export(tmp_path / "run", tmp_path / "toyfaces-landmarks-test")
    net = load_model(folder, kind="landmarks")
    assert net.resolution == 64 and net.config["channels"] == [4, 4, 4, 4]
    card = (folder / "README.md").read_text()
    assert "python -m idinvert_plugins.toyfaces.train_landmarks" in card and f"{summary['steps']} steps" in card
