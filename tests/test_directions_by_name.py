"""Directions by name (model folders, the Hub cache) and learning a generator's directions (InterFaceGAN)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import tiny_stylegan, tiny_stylegan2

from idinvert_plugins.editors.directions import (
    Direction,
    DirectionNotFoundError,
    as_direction,
    find_directions,
    load_direction,
    orthogonalize,
    read_summary,
    save_directions,
)
from idinvert_plugins.editors.interfacegan import ClassifierScorer, learn_direction, learn_generator_directions
from idinvert_plugins.editors.manipulate import Manipulate
from idinvert_plugins.hub import load_generator, load_model, save_pretrained

SHA = "c" * 40


def _direction(dim: int, seed: int, name: str, **kwargs) -> Direction:
    return Direction(torch.randn(dim, generator=torch.Generator().manual_seed(seed)), name=name, **kwargs)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, atol=1e-6, rtol=0)  # saving re-normalises: last-bit differences


@pytest.fixture
def model_dir(tmp_path):
    G = tiny_stylegan2()
    folder = save_pretrained(G, tmp_path / "tiny-g", kind="generator")
    dirs = [_direction(G.w_dim, 1, "smile", accuracy=0.93, source="interfacegan-logistic"),
            _direction(G.w_dim, 2, "eyeglasses", layers=[0, 1, 2])]
    save_directions(dirs, folder / "directions", info={"smile": {"majority": 0.5}})
    return folder, G, dirs


def test_find_and_load_by_name(model_dir):
    folder, G, (smile, glasses) = model_dir
    found = find_directions(folder)
    assert list(found) == ["eyeglasses", "smile"] and found["smile"].suffix == ".safetensors"
    loaded = load_direction("smile", folder)
    assert _same(loaded.vector, smile.vector) and loaded.accuracy == 0.93
    assert load_direction("eyeglasses", folder).layers == [0, 1, 2]
    # a loaded generator knows its folder: names work through it, and in the Manipulate editor
    Gl = load_generator(folder)
    assert _same(as_direction("smile", Gl).vector, smile.vector)
    codes = Gl.mapping(Gl.sample_z(2, seed=3)).detach()
    by_name = Manipulate()(Gl, codes, direction="smile", strength=1.5, condition_on=["eyeglasses"], render=False)
    by_obj = Manipulate()(Gl, codes, direction=smile, strength=1.5, condition_on=[glasses], render=False)
    assert _same(by_name.codes, by_obj.codes)
    assert float((by_name.codes - Gl.to_wplus(codes)).norm(dim=-1).max()) == pytest.approx(1.5, abs=1e-5)
    # paths still work, with or without a model
    assert _same(as_direction(str(found["smile"])).vector, smile.vector)
    # the summary table records accuracies and the extra columns
    summary = read_summary(folder / "directions")
    assert summary["directions"]["smile"]["accuracy"] == 0.93 and summary["directions"]["smile"]["majority"] == 0.5
    assert "| smile | interfacegan-logistic | 0.930 | 0.500 |" in (folder / "directions" / "README.md").read_text()


def test_unknown_names_say_what_exists_and_how_to_learn(model_dir, tmp_path):
    folder, *_ = model_dir
    with pytest.raises(DirectionNotFoundError, match=r"no direction 'smiel' in .*directions\. Available: "
                                                     r"eyeglasses, smile\. .*idinvert directions learn"):
        load_direction("smiel", folder)
    with pytest.raises(DirectionNotFoundError, match=r"bare name is looked up .*pass the model"):
        load_direction("smile")
    empty = save_pretrained(tiny_stylegan2(), tmp_path / "bare", kind="generator")
    with pytest.raises(DirectionNotFoundError, match=r"Available: none\. To add one, learn them with"):
        load_direction("smile", empty)
    with pytest.raises(FileNotFoundError, match="no direction file at"):
        load_direction(str(tmp_path / "missing.safetensors"), folder)
    # an extra folder is searched too and wins on a clash
    other = _direction(32, 9, "smile")
    save_directions([other], tmp_path / "mine")
    assert _same(load_direction("smile", folder, extra_dirs=[tmp_path / "mine"]).vector, other.vector)
    with pytest.raises(ValueError, match="cannot be a file name"):
        save_directions([_direction(32, 1, "a/b")], tmp_path / "bad")


def _seed_cache(cache: Path, repo_id: str, snapshot: Path) -> None:
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(snapshot, repo / "snapshots" / SHA)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SHA)


def test_hub_cache_directions_found_offline(model_dir, tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    folder, G, (smile, _) = model_dir
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    cache = tmp_path / "hub"
    _seed_cache(cache, "idinvert-test/tiny-dirs", folder)
    Gh = load_generator("idinvert-test/tiny-dirs", cache_dir=cache)
    assert Gh.resolved.origin == "hub" and Gh.resolved.commit == SHA
    assert list(find_directions(Gh)) == ["eyeglasses", "smile"]
    assert _same(load_direction("smile", Gh).vector, smile.vector)


def test_hub_download_fetches_the_directions(model_dir, tmp_path, monkeypatch):
    """Online, the model's directions/ files are requested with the model (Hub calls stubbed)."""
    import huggingface_hub
    import huggingface_hub.constants as c

    folder, *_ = model_dir
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    snap = tmp_path / "snap" / SHA
    snap.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(folder / name, snap / name)
    calls = {}

    def fake_file(repo_id, filename, **kwargs):
        if not (snap / filename).exists():
            raise huggingface_hub.errors.EntryNotFoundError(filename)
        return str(snap / filename)

    def fake_snapshot(repo_id, revision=None, allow_patterns=None, **kwargs):
        calls.update(repo_id=repo_id, revision=revision, allow_patterns=allow_patterns)
        shutil.copytree(folder / "directions", snap / "directions")
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_file)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    G = load_generator("idinvert-test/tiny-online", cache_dir=tmp_path / "unused")
    assert calls["repo_id"] == "idinvert-test/tiny-online" and calls["revision"] == SHA
    assert "directions/*.safetensors" in calls["allow_patterns"] and "*" not in calls["allow_patterns"]
    assert list(find_directions(G)) == ["eyeglasses", "smile"]

    def failing_snapshot(*args, **kwargs):
        raise OSError("network down")

    shutil.rmtree(snap / "directions")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing_snapshot)
    with pytest.warns(UserWarning, match="could not fetch the editing directions.*network down"):
        G = load_generator("idinvert-test/tiny-online", cache_dir=tmp_path / "unused")
    assert find_directions(G) == {}


# -- learning -----------------------------------------------------------------------------------------
def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


def test_learned_directions_recover_a_known_linear_attribute():
    """Scores that are a linear function of w: the learned normals point along the truth."""
    G = tiny_stylegan2()
    g = torch.Generator().manual_seed(5)
    t1, t2 = torch.randn(G.w_dim, generator=g), torch.randn(G.w_dim, generator=g)

    def scorer(codes: torch.Tensor) -> dict[str, torch.Tensor]:  # "images" are the codes (render=identity)
        return {"linear": codes @ t1, "label": (codes @ t2 > 0.1).float(), "flat": torch.ones(len(codes))}

    directions, skipped = learn_generator_directions(G, scorer, n=3000, seed=1, batch=512, render=lambda w: w,
                                                     progress=False)
    by_name = {d.name: d for d in directions}
    assert set(by_name) == {"linear", "label"} and skipped == {"flat": "the scores are constant"}
    assert _cosine(by_name["linear"].vector, t1) > 0.95 and by_name["linear"].accuracy > 0.9
    assert _cosine(by_name["label"].vector, t2) > 0.95 and by_name["label"].accuracy > 0.9
    assert by_name["label"].extra["n_samples"] == 3000 and 0.5 <= by_name["label"].extra["majority"] < 1
    assert by_name["linear"].extra["n_train"] == 2400  # 3000 split at the median, less the 20 % held out


def test_per_layer_learning_for_models_without_w_space():
    G = tiny_stylegan()  # IDInvert-style StyleGAN: one w per layer
    t = torch.randn(G.num_layers, G.w_dim, generator=torch.Generator().manual_seed(2))
    directions, _ = learn_generator_directions(G, lambda wp: {"x": (wp * t).sum((1, 2))}, n=1500,
                                               render=lambda w: w, progress=False)
    d = directions[0]
    assert d.per_layer and d.vector.shape == (G.num_layers, G.w_dim) and d.extra["space"] == "wp"
    assert d.accuracy > 0.9
    # W+ codes of this model span few dimensions, so the normal is not unique; but a step along it must raise
    # the score by a good part of what a (per-layer unit) step along the truth does
    truth = t / t.norm(dim=-1, keepdim=True)
    assert float((t * d.vector).sum()) > 0.3 * float((t * truth).sum())  # a random direction: about +-2.3


def test_covariance_steering_follows_how_the_attribute_varies(tmp_path):
    """An attribute carried by a high-variance axis and, with the same weight, by a nearly constant one: the
    discriminative normal leans on the nearly constant axis (it classifies well there), the steered vector on
    the high-variance one. Both keep the same boundary, which survives a save / load round trip."""
    g = torch.Generator().manual_seed(0)
    spread = torch.tensor([3.0, 0.05, 1.0, 1.0])
    codes = torch.randn(4000, 4, generator=g) * spread
    scores = codes[:, 0] / 3.0 + codes[:, 1] / 0.05  # both axes decide equally, in their own spreads
    plain = learn_direction(codes, scores, steer="normal", name="a")
    steered = learn_direction(codes, scores, steer="covariance", name="a")
    assert plain.normal is None and torch.equal(plain.boundary, plain.vector)
    assert steered.source == "interfacegan-logistic-covariance" and steered.accuracy == plain.accuracy
    assert torch.allclose(steered.boundary, plain.vector, atol=1e-6)
    assert abs(float(plain.vector[1])) > 0.9  # the normal: almost all on the low-variance axis
    expected = torch.cov(codes.T.double()) @ plain.vector.double()
    assert torch.allclose(steered.vector.double(), expected / expected.norm(), atol=1e-4)
    assert float(steered.vector[0]) > 0.9  # the steered vector: the high-variance axis
    loaded = Direction.load(steered.save(tmp_path / "a.safetensors"))
    assert _same(loaded.vector, steered.vector) and _same(loaded.normal, steered.normal)
    with pytest.raises(ValueError, match="steer must be one of 'normal', 'covariance', 'class-means', 'conditional', "
                                         "'conditional-class-means', 'compensated', got 'pca'"):
        learn_direction(codes, scores, steer="pca")


def test_class_means_steering_edits_along_the_difference_of_the_class_means(tmp_path):
    """``steer="class-means"``: the edit vector is the positives' mean code minus the negatives' (here the top
    and bottom halves of the scores, all used for training), unit length; the boundary is the plain normal's."""
    g = torch.Generator().manual_seed(1)
    codes = torch.randn(3000, 5, generator=g) * torch.tensor([2.0, 0.1, 1.0, 1.0, 0.5])
    scores = codes[:, 0] + 20 * codes[:, 1] + 0.3 * torch.randn(3000, generator=g)
    plain = learn_direction(codes, scores, holdout=0.0, name="a")
    means = learn_direction(codes, scores, steer="class-means", holdout=0.0, name="a")
    assert means.source == "interfacegan-logistic-class-means" and means.accuracy is None
    assert torch.allclose(means.boundary, plain.vector, atol=1e-6)
    top = scores > scores.median()
    expected = codes[top].double().mean(0) - codes[~top].double().mean(0)
    assert torch.allclose(means.vector.double(), expected / expected.norm(), atol=1e-5)
    assert float(torch.dot(means.vector, plain.vector)) < 0.99  # a different vector from the normal
    loaded = Direction.load(means.save(tmp_path / "a.safetensors"))
    assert _same(loaded.vector, means.vector) and _same(loaded.normal, means.normal)


def test_conditioning_on_a_steered_direction_keeps_its_score_unchanged():
    """Conditional manipulation removes the component along the conditioned attributes' boundaries, so an
    edit leaves their linear scores unchanged even when their edit vectors are steered away from them."""
    g = torch.Generator().manual_seed(1)
    target = Direction(torch.randn(8, generator=g), name="t")
    other = Direction(torch.randn(8, generator=g), name="o", normal=torch.randn(8, generator=g))
    edited = orthogonalize(target, other)
    assert abs(float(edited.vector @ other.boundary)) < 1e-5
    assert abs(float(edited.vector @ other.vector)) > 1e-2  # not merely orthogonal to its edit vector


def test_few_positives_are_skipped_with_a_reason():
    G = tiny_stylegan2()
    calls = iter(range(10**6))

    def scorer(codes):
        return {"rare": torch.tensor([1.0 if next(calls) < 3 else 0.0 for _ in range(len(codes))])}

    directions, skipped = learn_generator_directions(G, scorer, n=200, render=lambda w: w, progress=False)
    assert directions == [] and "3 of 200 samples are positive" in skipped["rare"]


def test_classifier_scorer_turns_heads_into_scalar_scores():
    clf = load_model("toyfaces-classifier-64", kind="classifier")
    scorer = ClassifierScorer(clf)
    names = scorer.names
    assert "smile" in names and "eyeglasses" in names and "hair_color-blond" in names and "background-cyan" in names
    assert not any(n.startswith(("background_hue", "light_x", "blush")) for n in names)  # cyclic / nuisance
    images = torch.rand(6, 3, 32, 32) * 2 - 1  # another resolution: resized to the classifier's 64
    scores = scorer(images)
    assert set(scores) == set(names) and all(s.shape == (6,) for s in scores.values())
    assert set(scores["eyeglasses"].unique().tolist()) <= {0.0, 1.0}
    hair = torch.stack([scores[f"hair_color-{c}"] for c in ("black", "brown", "blond", "red", "auburn")])
    assert torch.equal(hair.sum(0), torch.ones(6))  # one-vs-rest of the predicted class
    with torch.no_grad():
        expected = clf.predict(torch.nn.functional.interpolate(images, size=64, mode="bilinear"))["smile"]
    torch.testing.assert_close(scores["smile"], expected, atol=1e-5, rtol=0)  # smile's range is [-1, 1]
    assert scorer.describe("hair_color-red") == {"attribute": "hair_color",
                                                 "label": "predicted class == red (one vs rest)"}
    assert len(ClassifierScorer(clf, "all").names) > len(names)
    with pytest.raises(ValueError, match=r"cyclic \(hues\)"):
        ClassifierScorer(clf, ["background_hue"])
    with pytest.raises(ValueError, match=r"no attribute\(s\) \['gender'\]; it has: smile, eyeglasses"):
        ClassifierScorer(clf, ["gender"])


def test_save_directions_merges_runs(tmp_path):
    save_directions([_direction(8, 1, "a")], tmp_path, run={"command": "learn", "skipped": {"b": "too few"}})
    save_directions([_direction(8, 2, "b")], tmp_path, run={"command": "learn", "skipped": {}})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["directions"]) == {"a", "b"} and summary["skipped"] == {} and len(summary["runs"]) == 2


def test_linear_separability_benchmark_tells_linear_from_nonlinear():
    """benchmarks/linear_separability.py: a label linear in the codes reads out near 1; one that depends on |w_0|
    only (symmetric, as a pose folded onto itself would be) reads out near chance with every linear read-out."""
    import importlib.util

    import numpy as np

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "linear_separability.py"
    spec = importlib.util.spec_from_file_location("linear_separability", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    codes = torch.randn(1000, 3, 8, generator=torch.Generator().manual_seed(0))
    linear = (codes[:, 0, 0] + 0.5 * codes[:, 0, 1] > 0).numpy().astype(int)
    folded = (codes[:, 0, 0].abs() > 0.6745).numpy().astype(int)  # the median of |N(0, 1)|: balanced classes
    acc_linear, acc_folded = module.read_outs(codes, linear), module.read_outs(codes, folded)
    assert set(acc_linear) == {"C=1", "C=100", "standardised", "layer 0"}
    assert min(acc_linear.values()) > 0.9
    assert max(acc_folded.values()) < 0.65 and abs(np.mean(list(acc_folded.values())) - 0.5) < 0.1


def test_direction_functions_are_importable_from_the_package(model_dir):
    import idinvert_plugins as ip

    assert ip.load_direction is load_direction and ip.find_directions is find_directions
    assert {"load_direction", "find_directions", "Direction"} <= set(ip.__all__)
    d = ip.load_direction("smile", model_dir[0])
    assert isinstance(d, ip.Direction) and d.name == "smile"
