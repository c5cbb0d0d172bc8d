"""The attribute classifier (here of the bundled toy-face domain): network, training (resumable, through the
shared training loop), metrics and export."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from idinvert_plugins.data import toyfaces
from idinvert_plugins.models.classifier import (
    AttributeClassifier,
    denormalise,
    head_spec,
    heads_from_specs,
    normalise,
)
from idinvert_plugins.training import classifier as tc

pytestmark = pytest.mark.usefixtures("one_thread")


def toyfaces_heads():
    return heads_from_specs(toyfaces.ATTRIBUTES)


TINY = dict(n=700, resolution=16, batch=16, lr=3e-3, warmup=0, channels=[8, 16, 16], hidden=32)


def tiny_run(out_dir, **kwargs):
    args = {**TINY, "progress": False, **kwargs}
    return tc.train_classifier(out_dir, **args)


# -- network ----------------------------------------------------------------------------------------------
def test_config_rebuilds_and_is_json_safe():
    model = AttributeClassifier.for_attributes(toyfaces.ATTRIBUTES)
    config = json.loads(json.dumps(model.config))
    assert config["channels"] == [24, 48, 96, 192, 128]
    assert 0.5e6 < sum(p.numel() for p in model.parameters()) < 2e6
    rebuilt = AttributeClassifier(**config)
    assert rebuilt.config == model.config
    assert [h["name"] for h in config["attributes"]] == [s.name for s in toyfaces.ATTRIBUTES]
    hue = next(h for h in config["attributes"] if h["name"] == "background_hue")
    assert hue == {"name": "background_hue", "kind": "continuous", "num_classes": None, "range": [0.0, 1.0],
                   "cyclic": True}


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="power of two >= 8"):
        AttributeClassifier(toyfaces_heads(), resolution=48)
    with pytest.raises(ValueError, match="channels must list 3 widths"):
        AttributeClassifier(toyfaces_heads(), resolution=16, channels=[8, 8])
    with pytest.raises(ValueError, match="needs num_classes >= 2"):
        head_spec("x", "categorical")
    with pytest.raises(ValueError, match="must be unique"):
        AttributeClassifier([head_spec("a", "binary"), head_spec("a", "binary")], resolution=8)
    model = AttributeClassifier(toyfaces_heads(), resolution=16, channels=[8, 8, 8], hidden=8)
    with pytest.raises(ValueError, match=r"must be \[N, 3, 16, 16\]"):
        model(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown feature layer 'stage9'"):
        model.features(torch.zeros(1, 3, 16, 16), "stage9")


def test_features_shapes_and_input_gradient_with_frozen_params():
    torch.manual_seed(0)
    model = AttributeClassifier.for_attributes(toyfaces.ATTRIBUTES).eval().requires_grad_(False)
    x = (torch.rand(3, 3, 64, 64) * 2 - 1).requires_grad_(True)
    shapes = {name: tuple(model.features(x, name).shape) for name in model.layer_names}
    assert shapes == {"stem": (3, 24, 64, 64), "stage1": (3, 48, 32, 32), "stage2": (3, 96, 16, 16),
                      "stage3": (3, 192, 8, 8), "stage4": (3, 128, 4, 4), "pool": (3, 128), "embed": (3, 256)}
    f = model.features(x, "stage2")
    target = model.features(torch.zeros(3, 3, 64, 64), "stage2")
    ((f - target) ** 2).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    # eval mode: deterministic and independent of the rest of the batch
    with torch.no_grad():
        a, b = model.features(x, "pool"), model.features(x, "pool")
        assert torch.equal(a, b)
        torch.testing.assert_close(model.features(x[1:2], "pool"), a[1:2], rtol=1e-5, atol=1e-6)


def test_predict_and_normalisation():
    heads = [head_spec("b", "binary"), head_spec("c", "categorical", num_classes=4),
             head_spec("v", "continuous", value_range=(2.0, 6.0)),
             head_spec("h", "continuous", value_range=(0.0, 1.0), cyclic=True)]
    torch.manual_seed(0)
    model = AttributeClassifier(heads, resolution=8, channels=[8, 8], hidden=8).eval()
    x = torch.rand(5, 3, 8, 8) * 2 - 1
    raw, pred = model(x), model.predict(x)
    assert raw["b"].shape == (5,) and raw["c"].shape == (5, 4) and raw["v"].shape == (5,)
    assert raw["h"].shape == (5, 2)
    torch.testing.assert_close(pred["b"], torch.sigmoid(raw["b"]))
    assert pred["c"].dtype == torch.int64 and torch.equal(pred["c"], raw["c"].argmax(1))
    torch.testing.assert_close(pred["v"], raw["v"] * 2 + 4)
    assert ((pred["h"] >= 0) & (pred["h"] < 1)).all()
    v = torch.tensor([2.0, 4.0, 6.0])
    torch.testing.assert_close(normalise(heads[2], v), torch.tensor([-1.0, 0.0, 1.0]))
    h = torch.tensor([0.0, 0.25, 0.5, 0.9])
    torch.testing.assert_close(normalise(heads[3], h)[1], torch.tensor([0.0, 1.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(denormalise(heads[3], normalise(heads[3], h)), h, atol=1e-6, rtol=0)


# -- training ---------------------------------------------------------------------------------------------
def test_batch_indices_cover_each_epoch_once():
    order = np.concatenate([tc.batch_indices(3, s, 7, 20) for s in range(6)])  # 42 positions, 3 epochs
    assert sorted(order[:20]) == list(range(20)) and sorted(order[20:40]) == list(range(20))
    assert not np.array_equal(order[:20], order[20:40])
    assert np.array_equal(tc.batch_indices(3, 4, 7, 20), order[28:35])
    assert tc.learning_rate(0, 1.0, 100, 10) == pytest.approx(0.1)
    assert tc.learning_rate(10, 1.0, 100, 10) == pytest.approx(1.0)
    assert tc.learning_rate(55, 1.0, 100, 10) == pytest.approx(0.5)


def test_training_lowers_the_loss(tmp_path):
    data = tc.RenderedSplit(0, range(650), 16)
    images, targets = data.get(np.arange(48))

    def loss_of(model):
        with torch.no_grad():
            total, parts = tc.attribute_loss(model, model.eval()(tc.to_input(images)), targets)
        return float(total), parts

    before, parts_before = loss_of(tiny_run(tmp_path / "a", steps=0)["model"])
    run = tiny_run(tmp_path / "b", steps=40, augment_images=False)
    after, parts_after = loss_of(run["model"])
    assert run["finished"] and run["step"] == 40 and len(run["losses"]) == 40
    # 36 heads, most need far more than 40 steps; the global colour ones are learnt at once
    assert after < 0.95 * before, (before, after)
    for name in ("skin_tone", "background_value"):
        assert parts_after[name] < 0.5 * parts_before[name], (name, parts_before[name], parts_after[name])


def test_resume_continues_the_same_run(tmp_path):
    full = tiny_run(tmp_path / "full", steps=6)
    half = tiny_run(tmp_path / "split", steps=6, stop_at=3)
    assert half["step"] == 3 and not half["finished"]
    state = torch.load(tmp_path / "split" / "resume.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 3 and state["args"]["steps"] == 6
    resumed = tiny_run(tmp_path / "split", steps=6)
    assert resumed["step"] == 6 and resumed["finished"]
    assert resumed["losses"] == full["losses"]
    a, b = full["model"].state_dict(), resumed["model"].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match=r"belongs to another run \(lr: 0.003 in resume.pt, 0.001 now"):
        tiny_run(tmp_path / "split", steps=6, lr=1e-3)
    with pytest.raises(ValueError, match="give steps, or max_minutes"):
        tiny_run(tmp_path / "other", steps=None)


def test_folder_split_matches_rendering(tmp_path):
    folder = toyfaces.render_dataset(tmp_path / "faces", n=30, seed=5, resolution=16, progress=False)
    split = tc.FolderSplit(folder, 16)
    assert len(split) == toyfaces.split_sizes(30)["train"]
    images, attrs = split.get(np.array([4, 0, 27]))
    ref_images, ref_attrs = toyfaces.render_batch(5, [4, 0, 27], 16)
    assert np.array_equal(images, ref_images)
    for spec in toyfaces.ATTRIBUTES:
        np.testing.assert_array_equal(attrs[spec.name], ref_attrs[spec.name])
    with pytest.raises(ValueError, match="holds 16x16 images, the classifier is trained at 32"):
        tc.FolderSplit(folder, 32)


# -- metrics ----------------------------------------------------------------------------------------------
def test_attribute_metrics_against_hand_computed_values():
    heads = [h for h in toyfaces_heads()
             if h["name"] in ("smile", "eyeglasses", "hair_color", "background_hue", "lens_tint")]
    targets = {"smile": np.array([-0.5, 0.2, 0.4, 0.9]), "eyeglasses": np.array([1, 0, 0, 1]),
               "hair_color": np.array([0, 1, 1, 4]), "background_hue": np.array([0.05, 0.5, 0.95, 0.3]),
               "lens_tint": np.array([0.2, 0.9, 0.1, 0.6])}
    preds = {"smile": np.array([-0.4, -0.1, 0.4, 0.7]), "eyeglasses": np.array([0.9, 0.6, 0.1, 0.4]),
             "hair_color": np.array([0, 1, 2, 4]), "background_hue": np.array([0.95, 0.5, 0.05, 0.3]),
             "lens_tint": np.array([0.3, 0.0, 0.0, 0.6])}
    m = tc.attribute_metrics(preds, targets, heads)
    # smile: residuals .1 -.3 0 -.2 -> 0.14; deviations from 0.25 -> 1.01; signs agree on 3 of 4
    assert m["smile"]["r2"] == pytest.approx(1 - 0.14 / 1.01)
    assert m["smile"]["mae"] == pytest.approx(0.15)
    assert m["smile"]["binary_accuracy"] == 0.75 and m["smile"]["threshold"] == 0.0
    assert m["eyeglasses"] == {"kind": "binary", "n": 4, "accuracy": 0.5, "majority": 0.5}
    assert m["hair_color"] == {"kind": "categorical", "n": 4, "accuracy": 0.75, "majority": 0.5}
    # hue wraps: 0.95 vs 0.05 is 0.1 away; deviations from 0.45 -> 0.435
    assert m["background_hue"]["r2"] == pytest.approx(1 - 0.02 / 0.435)
    assert m["background_hue"]["mae"] == pytest.approx(0.05)
    assert "binary_accuracy" not in m["background_hue"]
    # lens tint only counts the two faces with glasses: residuals .1, 0; deviations from .4 -> 0.08
    assert m["lens_tint"]["n"] == 2 and m["lens_tint"]["r2"] == pytest.approx(1 - 0.01 / 0.08)
    summary = tc.summarise(m)
    assert summary["semantic_mean_accuracy"] == pytest.approx(0.625)
    assert summary["nuisance_mean_r2"] == pytest.approx(0.875)


class GroundTruthStub(nn.Module):
    """Answers with the true attributes of the toy faces it was built for (looked up by pixels)."""

    def __init__(self, seed, indices, resolution, smile_offset=0.0):
        super().__init__()
        self.attributes, self.resolution = toyfaces_heads(), resolution
        images, attrs = toyfaces.render_batch(seed, indices, resolution)
        self.table = {img.tobytes(): i for i, img in enumerate(images)}
        self.attrs, self.smile_offset = attrs, smile_offset

    def predict(self, x):
        pixels = ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        rows = [self.table[p.tobytes()] for p in pixels]
        out = {h["name"]: torch.tensor(self.attrs[h["name"]][rows]) for h in self.attributes}
        out["smile"] = out["smile"] + self.smile_offset
        return out


def test_evaluate_classifier_scores_ground_truth_perfectly():
    indices = range(650, 700)
    metrics = tc.evaluate_classifier(GroundTruthStub(0, indices, 16), 0, n=700, resolution=16, batch=20)
    assert metrics["num_images"] == 50 and metrics["indices"] == "650..699"
    for name, m in metrics["attributes"].items():
        assert m["n"] > 0, name
        assert m.get("accuracy", 1.0) == 1.0 and m.get("binary_accuracy", 1.0) == 1.0, name
        assert m.get("r2", 1.0) == pytest.approx(1.0), name
    assert metrics["attributes"]["lens_tint"]["n"] == int(toyfaces.render_batch(0, indices, 16)[1]
                                                          ["eyeglasses"].sum())
    # a constant error of 0.1 on smile: R^2 = 1 - N * 0.01 / sum((t - mean)^2)
    smile = toyfaces.render_batch(0, indices, 16)[1]["smile"]
    off = tc.evaluate_classifier(GroundTruthStub(0, indices, 16, 0.1), 0, indices, 16)
    assert off["attributes"]["smile"]["r2"] == pytest.approx(1 - 50 * 0.01 / ((smile - smile.mean()) ** 2).sum())
    assert off["attributes"]["smile"]["mae"] == pytest.approx(0.1)
    assert off["attributes"]["smile"]["binary_accuracy"] == pytest.approx(1 - np.mean((smile > -0.1) & (smile <= 0)))


# -- export -----------------------------------------------------------------------------------------------
def _register_if_needed(tmp_path):
    """Until the classifier is a built-in plugin, register it through a plugins directory."""
    from idinvert_plugins import plugins

    try:
        plugins.get_plugins().get("classifier", AttributeClassifier.architecture)
        return
    except plugins.UnknownNameError:
        pass
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "clf.py").write_text(textwrap.dedent("""
        import idinvert_plugins
        from idinvert_plugins.models.classifier import AttributeClassifier

        @idinvert_plugins.hookimpl
        def register_networks(register):
            register(AttributeClassifier, kind="classifier")
    """))
    plugins.configure([hooks])


def test_export_and_load_round_trip(tmp_path):
    from safetensors import safe_open

    from idinvert_plugins.hub import load_model

    torch.manual_seed(0)
    model = AttributeClassifier.for_attributes(toyfaces.ATTRIBUTES).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    metrics = {"num_images": 1, "indices": "0..0", "seed": 0, "attributes": {}, "summary": {}}
    folder = tc.export_classifier(model, tmp_path / "toyfaces-classifier-64", metrics)
    config = json.loads((folder / "config.json").read_text())
    assert config["kind"] == "classifier" and config["architecture"] == "attribute-classifier"
    assert config["storage_dtype"] == "float16" and config["args"] == json.loads(json.dumps(model.config))
    assert json.loads((folder / "metrics.json").read_text()) == metrics
    assert (folder / "model.safetensors").stat().st_size < 25e6
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert f.get_tensor("stem.conv.weight").dtype == torch.float16
    assert "name: toyfaces-classifier-64" in (folder / "README.md").read_text()

    _register_if_needed(tmp_path)
    loaded = load_model(folder, kind="classifier")
    assert isinstance(loaded, AttributeClassifier) and not loaded.training
    model.load_state_dict({k: v.half().to(v.dtype) if v.is_floating_point() else v
                           for k, v in model.state_dict().items()})
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_command_line_trains_evaluates_and_exports(tmp_path, capsys):
    out = tmp_path / "run"
    assert tc.main(["--out", str(out), "--steps", "2", "--batch", "8", "--n", "700", "--resolution", "16",
                    "--eval-n", "20", "--no-progress"]) == 0
    folder = out / "toyfaces-classifier-16"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["num_images"] == 20 and metrics["indices"] == "650..669"
    assert metrics["training"]["step"] == 2 and metrics["training"]["finished"]
    assert math.isfinite(metrics["training"]["final_loss"])
    assert (out / "resume.pt").is_file() and (folder / "model.safetensors").is_file()
    assert f"exported to {folder}" in capsys.readouterr().out
