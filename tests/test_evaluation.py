"""`idinvert evaluate`: the paper's tables on tiny random models, the ranking and editability maths, the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_stylegan2
from PIL import Image

from idinvert_plugins.cli import main
from idinvert_plugins.domains import get_domain
from idinvert_plugins.editors.directions import Direction
from idinvert_plugins.evaluation import (
    EvalConfig,
    average_precision,
    evaluate,
    measure_editability,
    precision_recall_curve,
    projection_scores,
    resolve_targets,
    semantic_property,
    write_report,
)
from idinvert_plugins.evaluation import inversions as inv_module
from idinvert_plugins.evaluation.plots import labelled_grid, line_plot
from idinvert_plugins.evaluation.report import INTERPRETATION_MARKER
from idinvert_plugins.hub import load_model, save_pretrained
from idinvert_plugins.inverters.base import Inverter
from idinvert_plugins.models.classifier import heads_from_specs
from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder


def toyfaces_heads():
    return heads_from_specs(get_domain("toyfaces").attributes)


def tiny_encoder(G, seed: int) -> IDInvertEncoder:
    torch.manual_seed(seed)
    return IDInvertEncoder(resolution=G.resolution, num_layers=G.num_layers, w_dim=G.w_dim, channel_base=8,
                           channel_max=16).eval()


def random_directions(G, names=("smile", "eyeglasses", "hair_color_blond", "sefa_00")) -> dict[str, Direction]:
    g = torch.Generator().manual_seed(0)
    return {n: Direction(torch.randn(G.w_dim, generator=g), name=n) for n in names}


@pytest.fixture(scope="module")
def classifier():
    return load_model("toyfaces-classifier-64", kind="classifier")


def _count_inverted(monkeypatch) -> list[int]:
    """Record the batch size of every inverter call (each method's untimed one-image warm-up included)."""
    calls: list[int] = []
    original = Inverter.invert

    def counting(self, generator, images, **kwargs):
        calls.append(len(images))
        return original(self, generator, images, **kwargs)

    monkeypatch.setattr(Inverter, "invert", counting)
    return calls


# -- Table I and the code cache ----------------------------------------------------------------------------------
def test_table1_rows_cache_reuse_and_extension(tmp_path, monkeypatch, classifier):
    G = tiny_stylegan2(16)
    encoders = {"domain-guided": tiny_encoder(G, 1), "conventional": tiny_encoder(G, 2)}
    cfg = EvalConfig(n=4, steps=3, sections=("table1",), n_figure=2)
    calls = _count_inverted(monkeypatch)
    kwargs = dict(encoders=encoders, classifier=classifier, out_dir=tmp_path / "out", cache_dir=tmp_path / "cache",
                  name="tiny", progress=False)
    res = evaluate(G, config=cfg, **kwargs)
    t1 = res["table1"]
    assert list(t1) == ["conventional", "domain-guided", "image2stylegan", "idinvert"]
    for row in t1.values():
        for key in ("mse", "psnr", "ssim", "swd", "fd", "seconds_per_image"):
            assert np.isfinite(row[key]), (key, row)
        assert row["n"] == 4 and row["seconds_per_image"] > 0 and 0 < row["mse"] < 4
    # the optimisation starts from the domain-guided encoder's codes and lowers the reconstruction error
    assert t1["idinvert"]["mse"] < t1["domain-guided"]["mse"] - 1e-3
    assert t1["image2stylegan"]["options"] == {"steps": 3} and t1["idinvert"]["options"] == {"steps": 3, "l_dom": 2.0}
    assert sorted(calls) == [1] * 4 + [4] * 4 and all(r["reused_from_cache"] == 0 for r in t1.values())
    # idinvert bench's cache: the encoder alone is bench's 'encoder' row, the conventional one 'encoder@conventional'
    assert sorted(p.name for p in (tmp_path / "cache" / "tiny").iterdir()) == sorted(
        f"{k}.{ext}" for k in ("encoder", "encoder@encoders.conventional", "idinvert", "image2stylegan")
        for ext in ("json", "safetensors"))
    fig = Image.open(tmp_path / "out" / res["figures"]["fig2"])
    assert fig.size[0] > 5 * 16 and fig.size[1] > 2 * 16  # 2 rows x (input + 4 methods), enlarged

    # same call again: nothing is inverted, the numbers are identical
    calls.clear()
    again = evaluate(G, config=cfg, **kwargs)
    assert calls == []
    assert all(again["table1"][m]["reused_from_cache"] == 4 for m in t1)
    assert again["table1"]["idinvert"]["mse"] == pytest.approx(t1["idinvert"]["mse"], abs=1e-7)

    # more images: only the new ones are inverted; fewer: a prefix of the cache
    bigger = evaluate(G, config=EvalConfig(n=6, steps=3, sections=("table1",), n_figure=2), **kwargs)
    assert sorted(calls) == [1] * 4 + [2] * 4 and bigger["table1"]["idinvert"]["n"] == 6
    calls.clear()
    evaluate(G, config=EvalConfig(n=3, steps=3, sections=("table1",), n_figure=2), **kwargs)
    assert calls == []

    # other options or other weights: not mixed with stale codes
    evaluate(G, config=EvalConfig(n=3, steps=2, sections=("table1",), n_figure=2), **kwargs)
    assert sorted(calls) == [1, 1, 3, 3]  # image2stylegan and idinvert re-run; the encoders have no steps
    calls.clear()
    encoders["domain-guided"] = tiny_encoder(G, 3)
    evaluate(G, config=EvalConfig(n=3, steps=2, sections=("table1",), n_figure=2), **kwargs)
    assert sorted(calls) == [1, 1, 3, 3]  # domain-guided and idinvert


def test_interrupted_inversion_resumes(tmp_path, monkeypatch):
    G = tiny_stylegan2(16)
    test = inv_module.load_test_images(5, 16)
    cache = inv_module.LatentCache(tmp_path)
    original = Inverter.invert
    seen: list[int] = []

    def failing_second_batch(self, generator, images, **kwargs):
        seen.append(len(images))
        if len(seen) == 3:  # the warm-up, the first batch, then the second batch fails
            raise KeyboardInterrupt
        return original(self, generator, images, **kwargs)

    monkeypatch.setattr(Inverter, "invert", failing_second_batch)
    with pytest.raises(KeyboardInterrupt):
        inv_module.invert_cached("image2stylegan", G, test, encoders={}, options={"steps": 1}, cache=cache, batch=2,
                                 progress=False)
    monkeypatch.setattr(Inverter, "invert", original)
    calls = _count_inverted(monkeypatch)
    done = inv_module.invert_cached("image2stylegan", G, test, encoders={}, options={"steps": 1}, cache=cache,
                                    batch=2, progress=False)
    assert calls == [1, 2, 1] and done.reused == 2 and done.codes.shape == (5, G.num_layers, G.w_dim)
    # per-image inversion: the resumed codes equal an uninterrupted run's
    fresh = inv_module.invert_cached("image2stylegan", G, test, encoders={}, options={"steps": 1}, batch=5,
                                     progress=False)
    assert torch.allclose(done.codes, fresh.codes, atol=1e-5)


def test_method_errors():
    G = tiny_stylegan2(16)
    test = inv_module.load_test_images(2, 16)
    with pytest.raises(ValueError, match="needs the domain-guided encoder"):
        inv_module.invert_cached("idinvert", G, test, encoders={}, progress=False)
    with pytest.raises(ValueError, match="unknown evaluation method 'nope'"):
        inv_module.invert_cached("nope", G, test, encoders={}, progress=False)
    with pytest.raises(ValueError, match="between 1 and the 5000 test images"):
        inv_module.load_test_images(5001, 16)
    with pytest.raises(ValueError, match="unknown evaluation section"):
        EvalConfig(sections=("table1", "tables"))


def test_quick_and_explicit_options():
    from idinvert_plugins.cli import build_parser
    from idinvert_plugins.evaluation.cli import config_from_args

    parse = build_parser().parse_args
    quick = config_from_args(parse(["evaluate", "--generator", "g", "--quick", "--steps", "3"]))
    assert (quick.n, quick.steps, quick.ldom_n) == (8, 3, 4)
    full = config_from_args(parse(["evaluate", "--generator", "g", "--n", "50", "--only", "ldom,table1",
                                   "--ldom-values", "0,1"]))
    assert (full.n, full.steps, full.sections, full.ldom_values) == (50, 100, ("ldom", "table1"), (0.0, 1.0))
    # --quick appended to a full command (the README's) is still quick: it caps the sizes
    capped = config_from_args(parse(["evaluate", "--generator", "g", "--n", "500", "--steps", "100", "--i2s-steps",
                                     "300", "--ldom-n", "100", "--quick"]))
    assert (capped.n, capped.steps, capped.i2s_steps, capped.ldom_n) == (8, 10, 10, 4)


def test_evaluate_writes_under_runs_by_default_and_quick_says_what_it_ran(tmp_path, monkeypatch, capsys):
    from idinvert_plugins.cli import main
    from idinvert_plugins.evaluation import runner

    calls = []

    def fake_run(generators, **kwargs):
        calls.append(kwargs)
        return {"generators": {}}

    monkeypatch.setattr(runner, "run_evaluation", fake_run)
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--generator", "g", "--n", "500", "--steps", "100", "--quick"]) == 0
    printed = capsys.readouterr().out
    assert calls[-1]["out_dir"] == "runs/evaluate-quick" and calls[-1]["report"] == "runs/evaluate-quick/results.md"
    assert (calls[-1]["config"].n, calls[-1]["config"].steps) == (8, 10)
    assert "g: 8 test images, 10 IDInvert / 10 Image2StyleGAN steps, 4 images in the l_dom sweep" in printed
    assert "--quick: a size check, not results; capped --n 500 -> 8, --steps 100 -> 10" in printed
    assert "--out runs/evaluate-quick --report runs/evaluate-quick/results.md" in calls[-1]["command"]
    assert main(["evaluate", "--generator", "g", "--n", "20"]) == 0
    assert (calls[-1]["out_dir"], calls[-1]["report"]) == ("runs/evaluate", "runs/evaluate/results.md")
    assert main(["evaluate", "--generator", "g", "--n", "20", "--out", "elsewhere"]) == 0
    assert (calls[-1]["out_dir"], calls[-1]["report"]) == ("elsewhere", "elsewhere/results.md")
    assert not (tmp_path / "docs").exists()  # never the project's page unless asked


# -- semantic property ---------------------------------------------------------------------------------------------
def test_average_precision_hand_made_cases():
    labels = np.array([1, 1, 0, 0, 0, 0])
    assert average_precision([6, 5, 4, 3, 2, 1], labels) == 1.0
    # reversed: the positives come last, at ranks 5 and 6: (1/5 + 2/6) / 2
    assert average_precision([1, 2, 3, 4, 5, 6], labels) == pytest.approx((1 / 5 + 2 / 6) / 2)
    # all scores tied: one threshold, precision = positive rate
    assert average_precision(np.zeros(6), labels) == pytest.approx(2 / 6)
    precision, recall = precision_recall_curve([0.9, 0.8, 0.8, 0.1], [1, 0, 1, 0])
    assert precision.tolist() == pytest.approx([1.0, 2 / 3, 0.5]) and recall.tolist() == [0.5, 1.0, 1.0]
    with pytest.raises(ValueError, match="at least one positive"):
        average_precision([1, 2], [0, 0])


def test_average_precision_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 8, 200).astype(float)  # many ties
    labels = (scores + rng.normal(0, 3, 200) > 4).astype(int)
    assert average_precision(scores, labels) == pytest.approx(sk.average_precision_score(labels, scores), abs=1e-12)


def test_semantic_property_projection():
    L, D, N = 4, 6, 40
    n = torch.zeros(D)
    n[2] = 1.0
    labels = np.arange(N) % 2
    noise = torch.randn(N, L, D, generator=torch.Generator().manual_seed(0))
    noise[..., 2] = 0.0
    codes = noise + torch.as_tensor(labels * 2.0 - 1.0, dtype=torch.float32).view(N, 1, 1) * n
    layered = Direction(n, name="a", layers=[1, 2])
    # the projection on the direction's layers, averaged: exactly the +-1 put there
    assert torch.allclose(projection_scores(codes, layered), torch.as_tensor(labels * 2.0 - 1.0).float())
    per_layer = Direction(torch.stack([n, -n, n, n]), name="b")  # layer 1 points the other way
    assert torch.allclose(projection_scores(codes, per_layer), torch.as_tensor(labels - 0.5).float())
    sem = semantic_property({"good": codes, "reversed": -codes}, {"a": layered, "other": Direction(torch.ones(D))},
                            {"a": labels, "all_one": np.ones(N)})
    # reversed: every negative outranks every positive; the scores tie within each class, so the only
    # thresholds give precision 0 and then the positive rate
    assert sem["good"]["a"]["ap"] == 1.0 and sem["reversed"]["a"]["ap"] == pytest.approx(0.5)
    assert set(sem["good"]) == {"a"}  # no labels for "other"; a label column of one class is skipped
    assert sem["good"]["a"]["positive_rate"] == 0.5 and sem["good"]["a"]["recall"][-1] == 1.0


# -- editability ---------------------------------------------------------------------------------------------------
def test_editability_on_a_linear_stub():
    L, D, N = 3, 8, 50
    codes = torch.randn(N, L, D, generator=torch.Generator().manual_seed(1))
    e = torch.eye(D)
    directions = {"a": Direction(e[0], name="a"), "b": Direction(e[1], name="b", layers=[0])}
    v = {"a": torch.tensor([2.0, 0.3, 0, 0, 0, 0, 0, 0.7]), "b": torch.tensor([0.5, -1.5, 1.0, 0, 0, 0, 0, 0])}

    def score(x: torch.Tensor) -> dict[str, torch.Tensor]:  # linear in the (layer-averaged) code
        return {k: x.mean(1) @ w for k, w in v.items()}

    thresholds, scales, step = {"a": 0.1, "b": -0.2}, {"a": 2.0, "b": 0.5}, 1.5
    rows, edited = measure_editability(codes, directions, lambda c: c, score, step=step, thresholds=thresholds,
                                       scales=scales, keep_images=True)
    # along a (all layers): score a moves by step * n_a . v_a = 3, towards the other side of the threshold
    a = rows["a"]
    assert a["change_per_unit"] == pytest.approx(2.0) and a["change_per_unit_std"] == pytest.approx(1.0)
    assert a["success_rate"] == 1.0
    assert a["others"]["b"] == pytest.approx(0.5 / 0.5) and a["others_mean"] == pytest.approx(1.0)
    base = score(codes)
    crossed = ((base["a"] - thresholds["a"]).abs() < step * 2.0).double().mean()
    assert a["flip_rate"] == pytest.approx(float(crossed))
    # along b (layer 0 only, a third of the layer mean): v_b . n_b / 3 = -0.5, the wrong way for every image
    b = rows["b"]
    assert b["change_per_unit"] == pytest.approx(-0.5) and b["success_rate"] == 0.0 and b["flip_rate"] == 0.0
    assert b["others"]["a"] == pytest.approx(0.3 / 3 / 2.0)
    # the edit itself: the sign depends on which side of the threshold each code starts
    sign = torch.where(base["a"] > thresholds["a"], -1.0, 1.0)
    assert torch.allclose(edited["a"], codes + sign.view(-1, 1, 1) * step * e[0])
    with pytest.raises(ValueError, match="step must be positive"):
        measure_editability(codes, directions, lambda c: c, score, step=0, thresholds=thresholds)


def test_editability_rows_are_a_view_of_the_crosstalk():
    """The editability rows read a cross-talk measurement (what bench ranks by): the same numbers before and after a
    JSON round trip, and a signed measurement is refused (its others would be signed means)."""
    from idinvert_plugins.editors.crosstalk import CrossTalk, measure_crosstalk
    from idinvert_plugins.evaluation.editability import editability_rows

    codes = torch.randn(20, 2, 4, generator=torch.Generator().manual_seed(2))
    e = torch.eye(4)
    directions = {"a": Direction(e[0], name="a"), "b": Direction(e[1], name="b")}

    def score(x):
        return {"a": x.mean(1)[:, 0] + 0.5 * x.mean(1)[:, 1], "b": x.mean(1)[:, 1]}

    kwargs = {"thresholds": {"a": 0.0, "b": 0.0}, "families": {"a": "a", "b": "b"}, "step": 2.0,
              "scales": {"a": 2.0, "b": 1.0}}
    ct = measure_crosstalk(codes, directions, lambda c: c, score, statistic="absolute", **kwargs)
    rows = editability_rows(ct)
    assert rows["a"]["change_per_unit"] == pytest.approx(1.0) and rows["a"]["change_per_unit_std"] == pytest.approx(0.5)
    assert rows["b"]["others"] == {"a": pytest.approx(0.5 / 2.0)} and rows["b"]["success_rate"] == 1.0
    assert 0 < rows["a"]["flip_rate"] <= 1 and rows["a"]["n"] == 20
    back = editability_rows(CrossTalk.from_json(ct.to_json()))  # the matrix is stored to 5 decimals
    for name, row in rows.items():
        assert back[name]["others"] == pytest.approx(row["others"], abs=1e-5)
        assert {k: v for k, v in back[name].items() if k != "others"} == pytest.approx(
            {k: v for k, v in row.items() if k != "others"}, abs=1e-5)
    signed = measure_crosstalk(codes, directions, lambda c: c, score, **kwargs)
    with pytest.raises(ValueError, match="statistic='absolute'"):
        editability_rows(signed)


def test_resolve_targets_and_labels():
    D = 4
    dirs = {n: Direction(torch.ones(D), name=n) for n in
            ("smile", "eyeglasses", "hair_color_blond", "hair_color", "background_hue", "sefa_00")}
    dirs["glasses-v2"] = Direction(torch.ones(D), name="glasses-v2", attribute="eyeglasses")
    # as `idinvert directions learn` names one-vs-rest directions of a categorical attribute
    dirs["hair_style-bun"] = Direction(torch.ones(D), name="hair_style-bun", attribute="hair_style")
    targets, skipped = resolve_targets(dirs, toyfaces_heads())
    assert set(targets) == {"smile", "eyeglasses", "hair_color_blond", "glasses-v2", "hair_style-bun"}
    assert targets["hair_style-bun"].attribute == "hair_style" and targets["hair_style-bun"].positive == 3
    assert targets["smile"].kind == "continuous" and targets["smile"].threshold == 0.0
    assert targets["hair_color_blond"].positive == 2 and targets["glasses-v2"].attribute == "eyeglasses"
    assert "without a known positive class" in skipped["hair_color"] and "hair_color_black" in skipped["hair_color"]
    assert "no threshold" in skipped["background_hue"] and "no classifier head" in skipped["sefa_00"]
    table = {"smile": np.array([-0.5, 0.2, 0.0]), "hair_color": np.array([2, 0, 2]), "eyeglasses": np.array([0, 1, 1])}
    assert targets["smile"].labels(table).tolist() == [0, 1, 0]
    assert targets["hair_color_blond"].labels(table).tolist() == [1, 0, 1]
    assert targets["eyeglasses"].labels(table).tolist() == [0, 1, 1]
    raw = {"hair_color": torch.tensor([[0.0, 0.0, np.log(3.0), 0.0, 0.0]]), "smile": torch.tensor([0.5])}
    heads = {h["name"]: h for h in toyfaces_heads()}
    assert float(targets["hair_color_blond"].score(raw, heads["hair_color"])) == pytest.approx(3 / 7)
    assert float(targets["smile"].score(raw, heads["smile"])) == pytest.approx(0.5)  # range [-1, 1]: identity


# -- report and figures --------------------------------------------------------------------------------------------
def _fake_results(tmp_path) -> dict:
    out = tmp_path / "out"
    line_plot({"x": ([0, 1, 2], [1.0, 0.5, 0.25])}, out / "figures" / "g" / "ldom_sweep.png", title="t")
    labelled_grid(torch.zeros(6, 3, 8, 8), 2, 3, out / "figures" / "g" / "fig2.png", col_labels=["a", "b", "c"])
    t1 = {m: {"mse": mse, "psnr": 10.0, "ssim": 0.5, "swd": 20.0, "fd": fd, "seconds_per_image": s, "n": 4}
          for m, mse, fd, s in (("conventional", 0.2, 9.0, 0.01), ("domain-guided", 0.1, 5.0, 0.01),
                                ("image2stylegan", 0.05, 6.0, 2.0), ("idinvert", 0.06, 4.0, 1.0))}
    sem = {m: {"smile": {"ap": ap, "positive_rate": 0.5, "n": 4, "precision": [1.0], "recall": [1.0]}}
           for m, ap in (("image2stylegan", 0.7), ("idinvert", 0.9))}
    attr = {"step": 3.0, "change_per_unit": 0.2, "change_per_unit_std": 0.4, "success_rate": 0.95, "flip_rate": 0.5,
            "others": {}, "others_mean": 0.1, "n": 4}
    ed = {"step": 3.0, "scales": {}, "methods": {
        m: {"attributes": {"smile": {**attr, "others_mean": om}}, "summary": {}, "fd_manipulated": fd,
            "swd_manipulated": 1.0, "fd_interpolated": None, "swd_interpolated": 2.0}
        for m, om, fd in (("image2stylegan", 0.3, 8.0), ("idinvert", 0.1, 6.0))},
        "must_show": {"smile": {"success_rate": 0.95, "holds_success": True, "others_idinvert": 0.1,
                                "others_image2stylegan": 0.3, "holds_others": True}}}
    ldom = {"n": 4, "steps": 2, "edit_step": 3.0, "rows": [
        {"l_dom": 0.0, "mse": 0.05, "fd_reconstruction": 4.0, "fd_manipulated": 9.0, "seconds_per_image": 1.0},
        {"l_dom": 40.0, "mse": 0.09, "fd_reconstruction": 5.0, "fd_manipulated": 7.0, "seconds_per_image": 1.0}]}
    g = {"name": "g", "architecture": "stylegan2", "resolution": 16, "num_layers": 6, "w_dim": 32, "n": 4,
         "first_index": 65000, "config": {"steps": 2, "i2s_steps": 2, "l_dom": 2.0, "batch": 16}, "notes": ["a note"],
         "figures": {"fig2": "figures/g/fig2.png", "ldom": "figures/g/ldom_sweep.png"}, "table1": t1,
         "semantic": sem, "ldom": ldom, "editability": ed}
    return {"generators": {"g": g}, "meta": {"machine": {"processor": "x86_64", "cpu_count": 2, "threads": 2,
                                                          "torch": "2.x"}, "wall_seconds": 90.0, "command": "cmd"}}


def test_report_tables_findings_and_kept_interpretation(tmp_path):
    results = _fake_results(tmp_path)
    path = write_report(results, tmp_path / "docs" / "results.md", tmp_path / "out")
    text = path.read_text()
    for header in ("| Method | MSE ↓ | PSNR (dB) ↑ | SSIM ↑ | SWD ↓ | FD ↓ | s / image |",
                   "| Attribute | positives | AP Image2StyleGAN | AP IDInvert |",
                   "| l_dom | MSE ↓ | FD reconstructions ↓ | FD manipulated ↓ | s / image |",
                   "| Codes | FD manipulated ↓ | SWD manipulated ↓ | FD interpolated ↓ | SWD interpolated ↓ |"):
        assert header in text
    assert "| IDInvert (encoder + domain-regularised optimisation) | 0.06 | 10 | 0.5 | 20 | 4 | 1 |" in text
    # our Fréchet distance is never called FID: "FID" only appears saying so, or quoting the paper's metric
    assert "FD (toy-face classifier features)" in text and "is *not* FID" in text
    rest = text.replace("is *not* FID", "").replace("published FIDs", "").replace("the paper's FID", "")
    assert "FID" not in rest
    assert "mean AP 0.9 vs 0.7, higher for 1 of 1 attributes: **holds**" in text
    assert "domain-guided encoder reconstructs better than the conventional encoder" in text
    assert "MSE 0.05 at l_dom 0 vs 0.09 at 40: **holds**" in text
    assert "| n/a |" in text  # a missing number is shown as such
    assert "for 1 of 1 attributes" in text and "- a note" in text
    # figure links are relative to the report and point at real PNGs
    assert "![inputs and their reconstructions by each method (paper Fig. 2)](../out/figures/g/fig2.png)" in text
    for link in ("../out/figures/g/fig2.png", "../out/figures/g/ldom_sweep.png"):
        with Image.open(path.parent / link) as img:
            img.load()
            assert img.mode == "RGB" and np.asarray(img).std() > 0
    # the lead's interpretation below the marker survives a rewrite
    path.write_text(text.replace("_To be written", "Our reading: it works"))
    write_report(results, path, tmp_path / "out")
    again = path.read_text()
    assert again.count(INTERPRETATION_MARKER) == 1 and "Our reading: it works" in again


# -- the command line end to end ----------------------------------------------------------------------------------
def test_cli_evaluate_end_to_end(tmp_path, capsys):
    G = tiny_stylegan2(16)
    gen = tmp_path / "models" / "tiny"
    save_pretrained(G, gen, kind="generator")
    save_pretrained(tiny_encoder(G, 1), tmp_path / "models" / "tiny-encoder", kind="encoder")
    save_pretrained(tiny_encoder(G, 2), tmp_path / "models" / "tiny-encoder-conventional", kind="encoder")
    for d in random_directions(G).values():
        d.save(gen / "directions" / f"{d.name}.safetensors")
    out, report, cache = tmp_path / "results", tmp_path / "results.md", tmp_path / "cache"
    args = ["evaluate", "--generator", str(gen), "--n", "4", "--steps", "2", "--ldom-values", "0,2,40",
            "--out", str(out), "--report", str(report), "--cache", str(cache)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"{gen}: 4 test images, methods conventional, domain-guided, image2stylegan, idinvert" in printed
    assert "direction 'sefa_00' not used" in printed
    results = json.loads((out / "results.json").read_text())
    g = results["generators"][str(gen)]
    assert set(g) >= {"table1", "semantic", "ldom", "editability"}
    assert [r["l_dom"] for r in g["ldom"]["rows"]] == [0.0, 2.0, 40.0]
    assert set(g["semantic"]["idinvert"]) <= {"smile", "eyeglasses", "hair_color_blond"}
    edit = g["editability"]["methods"]["idinvert"]
    assert set(edit["attributes"]) == {"smile", "eyeglasses", "hair_color_blond"}
    assert edit["n_manipulated"] == 12 and edit["n_interpolated"] == 12
    assert set(g["editability"]["must_show"]["smile"]) >= {"success_rate", "holds_success", "holds_others"}
    assert "--n 4 --steps 2" in results["meta"]["command"] and results["meta"]["machine"]["cpu_count"]
    text = report.read_text()
    assert "### Table I: reconstruction of test images" in text and "### Editability" in text
    assert "## Findings against the paper" in text and INTERPRETATION_MARKER in text
    figures = [g["figures"][k] for k in ("fig2", "semantic_pr", "ldom", "interpolation", "diffusion")]
    figures += [m["path"] for m in g["figures"]["manipulation"]]
    assert len(figures) == 9
    for rel in figures:
        with Image.open(out / rel) as img:
            img.load()
            assert img.size[0] > 32 and np.asarray(img).std() > 5
    # a second run of one section reuses every cached code and keeps the other sections
    assert main([*args, "--only", "table1"]) == 0
    g2 = json.loads((out / "results.json").read_text())["generators"][str(gen)]
    assert all(row["reused_from_cache"] == 4 for row in g2["table1"].values())
    assert g2["editability"] == g["editability"]
    # errors: an unknown section, and an explicitly named encoder that does not exist
    with pytest.raises(SystemExit):
        main([*args, "--only", "tables"])
    assert "--only takes a comma-separated list of table1, semantic, ldom, editability" in capsys.readouterr().err
    assert main([*args, "--encoder", str(tmp_path / "missing-encoder")]) == 2
    assert "missing-encoder" in capsys.readouterr().err


def test_cli_evaluate_both_backends_in_one_report(tmp_path, capsys):
    """`idinvert evaluate --generator A --generator B` with a StyleGAN2 and a StyleGAN v1 model (per-layer W+,
    no single W space): each gets its own sections, and the report has one Table I per generator."""
    from conftest import tiny_stylegan

    gens = []
    for name, G in (("sg2", tiny_stylegan2(16)), ("v1", tiny_stylegan(16))):
        gen = tmp_path / "models" / name
        save_pretrained(G, gen, kind="generator")
        save_pretrained(tiny_encoder(G, 1), tmp_path / "models" / f"{name}-encoder", kind="encoder")
        save_pretrained(tiny_encoder(G, 2), tmp_path / "models" / f"{name}-encoder-conventional", kind="encoder")
        for d in random_directions(G, ("smile", "eyeglasses")).values():
            d.save(gen / "directions" / f"{d.name}.safetensors")
        gens.append(gen)
    out, report = tmp_path / "results", tmp_path / "results.md"
    args = ["evaluate", "--generator", str(gens[0]), "--generator", str(gens[1]), "--n", "3", "--steps", "1",
            "--ldom-values", "0,2", "--out", str(out), "--report", str(report), "--cache", str(tmp_path / "cache")]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())["generators"]
    assert list(results) == [str(g) for g in gens]
    for g in results.values():
        assert set(g) >= {"table1", "semantic", "ldom", "editability"}
        assert all(np.isfinite(row["mse"]) and row["n"] == 3 for row in g["table1"].values())
        assert g["table1"]["idinvert"]["mse"] < g["table1"]["domain-guided"]["mse"]
    assert report.read_text().count("### Table I: reconstruction of test images") == 2
