"""``idinvert directions optimize``: a model's attribute directions optimised through the generator and the
classifier (evaluation/steering.py), written under the same names into a user folder, measured before/after."""

from __future__ import annotations

import pytest
import torch

from idinvert_plugins.editors.directions import Direction, read_summary


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from conftest import tiny_stylegan2

    from idinvert_plugins.cli import main
    from idinvert_plugins.hub import save_pretrained

    root = tmp_path_factory.mktemp("opt")
    folder = save_pretrained(tiny_stylegan2(64, seed=3), root / "g64", kind="generator")
    assert main(["directions", "learn", str(folder), "--n", "100", "--batch", "100", "--attributes", "smile,age"]) == 0
    return folder


def test_optimize_writes_optimised_directions_and_measures_them(model, tmp_path, capsys):
    from idinvert_plugins.cli import main

    out = tmp_path / "opt"
    args = ["directions", "optimize", str(model), "--names", "smile", "--iterations", "4", "--n", "32",
            "--batch", "8", "--measure", "16", "--discriminator", "none", "--out", str(out)]
    assert main(args) == 0
    assert torch.is_grad_enabled()  # the command leaves the process as it found it (later work needs gradients)
    text = capsys.readouterr().out
    assert "without the realism term" in text and "cross-talk on 16 other samples (absolute" in text
    assert "clean:" in text and f"wrote 1 direction(s) to {out}" in text
    learned = Direction.load(model / "directions" / "smile.safetensors")
    optimised = Direction.load(out / "smile.safetensors")
    assert optimised.source == "interfacegan-logistic-optimized"
    assert torch.allclose(optimised.boundary, learned.boundary) and not torch.allclose(optimised.vector,
                                                                                       learned.vector)
    assert float(optimised.vector.norm()) == pytest.approx(1.0, abs=1e-5)
    summary = read_summary(out)
    assert summary["runs"][-1]["command"] == "optimize" and summary["runs"][-1]["realism"] is False
    assert summary["directions"]["smile"]["crosstalk"]["statistic"] == "absolute"
    assert not (model / "directions" / "smile.safetensors").read_bytes() == (out / "smile.safetensors").read_bytes()

    capsys.readouterr()
    assert main(args) != 0
    assert "already holds 1 of these directions (smile.safetensors): pass --force" in capsys.readouterr().err
    assert main([*args, "--force", "--measure", "0"]) == 0


def test_optimize_names_a_direction_it_cannot_optimise(model, tmp_path, capsys):
    from idinvert_plugins.cli import main

    assert main(["directions", "optimize", str(model), "--names", "grin", "--out", str(tmp_path / "x"),
                 "--discriminator", "none", "--n", "8", "--measure", "0"]) != 0
    assert "no direction named ['grin']; the model has age, smile" in capsys.readouterr().err


def test_pipeline_names_its_discriminator(tmp_path):
    """pipeline.json's optional ``discriminator`` (the realism term of ``directions optimize``): the bundled
    generators name theirs; a wrong name is an error naming the key; no key, no discriminator."""
    import json
    import shutil

    from idinvert_plugins.pipeline import Pipeline, PipelineError

    D = Pipeline.from_pretrained("toyfaces-stylegan2-64").discriminator()
    images = torch.zeros(2, 3, 64, 64)
    assert D.resolved.name == "toyfaces-stylegan2-64-d" and D(images).shape[0] == 2
    folder = tmp_path / "g"
    shutil.copytree(Pipeline.from_pretrained("toyfaces-stylegan2-64").folder, folder,
                    ignore=shutil.ignore_patterns("directions"))
    config = json.loads((folder / "pipeline.json").read_text())
    config["discriminator"] = "no-such-discriminator"
    (folder / "pipeline.json").write_text(json.dumps(config))
    with pytest.raises(PipelineError, match="key 'discriminator' = 'no-such-discriminator'"):
        Pipeline.from_pretrained(folder).discriminator()
    del config["discriminator"]
    (folder / "pipeline.json").write_text(json.dumps(config))
    assert Pipeline.from_pretrained(folder).discriminator() is None


def test_classifier_scorer_leaves_the_grad_mode_alone_and_can_be_differentiated():
    """Building or calling a scorer never switches gradients off for the process; the differentiable one keeps
    the graph back to the images (what optimised steering needs)."""
    from idinvert_plugins.evaluation.editability import classifier_scorer, resolve_targets
    from idinvert_plugins.hub import load_model

    clf = load_model("toyfaces-classifier-64", kind="classifier")
    targets, _ = resolve_targets({"smile": Direction(torch.ones(4), name="smile")}, clf.attributes)
    plain = classifier_scorer(clf, targets)
    grad = classifier_scorer(clf, targets, differentiable=True)
    assert torch.is_grad_enabled()
    images = torch.zeros(2, 3, 64, 64, requires_grad=True)
    assert not plain(images)["smile"].requires_grad and torch.is_grad_enabled()
    grad(images)["smile"].sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
