"""`idinvert bench`: every registered method, a third-party one included, on one tiny generator with a pipeline;
the per-method cache (a rerun inverts nothing, a changed option re-inverts one method); the outputs."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pytest
import torch
from conftest import tiny_stylegan2
from PIL import Image

from idinvert_plugins.cli import main
from idinvert_plugins.domains import get_domain
from idinvert_plugins.editors.directions import Direction
from idinvert_plugins.evaluation.bench import dominating, pareto
from idinvert_plugins.hub import save_pretrained
from idinvert_plugins.inverters.base import Inverter
from idinvert_plugins.models.classifier import AttributeClassifier, heads_from_specs
from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder

PLUGIN = textwrap.dedent('''
    """A throwaway third-party plugin: a method (the W-space embedder alone, a named composition of a registered
    stage) and a metric (mean absolute error)."""
    import idinvert_plugins
    from idinvert_plugins.inverters import Composition
    from idinvert_plugins.metrics.registry import Metric


    class MAE(Metric):
        name = "mae"
        group = "fidelity"
        label = "MAE"
        description = "mean absolute error per pixel"

        def compute(self, data):
            return float((data.reconstructions - data.inputs).abs().mean())


    @idinvert_plugins.hookimpl
    def register_inverters(register):
        register(Composition("w-only", "w", description="W-space optimisation alone (a plugin's method)"))


    @idinvert_plugins.hookimpl
    def register_metrics(register):
        register(MAE())
''')


def _tiny_pipeline(root):
    """A 16 px generator folder with a pipeline.json naming its two encoders, an attribute classifier (FD features,
    attributes, editability; also the perceptual network) and its directions."""
    import torch

    G = tiny_stylegan2(16)
    gen = root / "tiny"
    save_pretrained(G, gen, kind="generator")
    for i, name in enumerate(("tiny-encoder", "tiny-encoder-conventional")):
        torch.manual_seed(i + 1)
        enc = IDInvertEncoder(resolution=16, num_layers=G.num_layers, w_dim=G.w_dim, channel_base=8, channel_max=16)
        save_pretrained(enc.eval(), root / name, kind="encoder")
    torch.manual_seed(3)  # a 16 px attribute classifier of the toy-face schema (random weights: fast, not accurate)
    clf = AttributeClassifier(heads_from_specs(get_domain("toyfaces").attributes), resolution=16, channels=[8, 8, 8],
                              hidden=8)
    save_pretrained(clf.eval(), root / "tiny-classifier", kind="classifier")
    g = torch.Generator().manual_seed(0)
    for name in ("smile", "age"):
        Direction(torch.randn(G.w_dim, generator=g), name=name).save(gen / "directions" / f"{name}.safetensors")
    (gen / "pipeline.json").write_text(json.dumps({
        "generator": ".", "domain": "toyfaces", "encoder": "../tiny-encoder",
        "encoders": {"conventional": "../tiny-encoder-conventional"}, "classifier": "../tiny-classifier",
        "feature_net": "classifier:../tiny-classifier", "directions": "directions/"}))
    return gen


def test_bench_quick_with_a_third_party_method_and_the_cache(tmp_path, monkeypatch, capsys):
    gen = _tiny_pipeline(tmp_path / "models")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "throwaway.py").write_text(PLUGIN)
    out, report, cache = tmp_path / "bench", tmp_path / "leaderboard.md", tmp_path / "cache"
    methods = "idinvert,encoder,image2stylegan++,w-only,psp"
    args = ["--plugins-dir", str(plugins), "bench", "--generator", str(gen), "--quick", "--methods", methods,
            "--out", str(out), "--report", str(report), "--cache", str(cache), "--no-progress"]
    calls: list[int] = []
    original = Inverter.invert

    def counting(self, generator, images, **kwargs):
        calls.append(len(images))
        return original(self, generator, images, **kwargs)

    monkeypatch.setattr(Inverter, "invert", counting)
    assert main(args) == 0
    printed = capsys.readouterr().out
    g = json.loads((out / "leaderboard.json").read_text())["generators"][str(gen)]
    rows = g["rows"]
    # every method ran on the same 4 images; the encoder alone once per encoder of the pipeline; psp needs an
    # encoder of its own architecture, so it is listed as not benchmarked with the reason
    assert list(rows) == ["idinvert", "encoder", "encoder@conventional", "image2stylegan++", "w-only"]
    assert "psp-encoder" in g["skipped"]["psp"] and "not benchmarked: psp" in printed
    assert all(r["n"] == 4 and r["reused"] == 0 for r in rows.values())
    assert rows["w-only"]["third_party"] and rows["w-only"]["plugin"] == "plugins/throwaway.py"
    assert not rows["idinvert"]["third_party"] and rows["image2stylegan++"]["parts"] == ["noise"]
    assert rows["idinvert"]["options"] == {"steps": 5}  # --quick caps every method's steps
    for key, r in rows.items():
        m = r["metrics"]
        for name in ("mse", "psnr", "ssim", "perceptual", "fd", "swd", "attributes", "edit_success", "crosstalk",
                     "fd_edited", "seconds_per_image", "time_to_quality", "mae"):
            assert name in m, (key, name, r["not_measured"])
        assert 0 < m["mse"] < 4 and m["seconds_per_image"] > 0 and 0 <= m["attributes"]["value"] <= 1
        assert set(m["edit_success"]) == {"value", "smile", "age"}
        assert r["not_measured"] == {}
    # the optimisation lowers the encoder's error, and IDInvert reaches its own error at its own time per image
    assert rows["idinvert"]["metrics"]["mse"] < rows["encoder"]["metrics"]["mse"]
    assert g["mse_target"] == pytest.approx(rows["idinvert"]["metrics"]["mse"], rel=1e-4)
    assert rows["idinvert"]["metrics"]["time_to_quality"] == pytest.approx(
        rows["idinvert"]["metrics"]["seconds_per_image"], rel=1e-6)
    assert len(rows["idinvert"]["curve"]["mse"]) == 6  # the start and after each of the 5 steps
    # outputs: the table lists the plugin's method and metric; the Pareto plot is a real picture
    text = report.read_text()
    assert "| w-only (steps=5) | third-party (plugins/throwaway.py) |" in text and "MAE" in text
    assert f"`idinvert --plugins-dir {plugins} bench --generator {gen} --methods {methods} --quick" in text
    assert g["pareto"] and set(g["pareto"]) <= set(rows)
    with Image.open(out / f"pareto-{gen.as_posix().strip('/').replace('/', '_')}.png") as img:
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.shape[1] >= 600 and pixels.std() > 10
    n_calls = len(calls)
    assert n_calls == 5 * 2 + 2  # per row a one-image warm-up and one batch of 4; psp refused both encoders

    # the same command again: nothing is inverted, the numbers are the same
    calls.clear()
    assert main(args) == 0
    assert calls == [] and "inverted anew: none" in capsys.readouterr().out
    again = json.loads((out / "leaderboard.json").read_text())["generators"][str(gen)]["rows"]
    assert all(r["reused"] == 4 and not r["metrics_recomputed"] for r in again.values())
    assert again["w-only"]["metrics"]["mse"] == rows["w-only"]["metrics"]["mse"]

    # one method's option changed: only that method is inverted again
    assert main([*args, "--set", "w-only:lr=0.05"]) == 0
    assert sorted(calls) == [1, 4]
    assert "inverted anew: w-only;" in capsys.readouterr().out


def test_pareto_front_and_domination():
    def row(mse, fd):
        return {"metrics": {"mse": mse, "fd_edited": fd}}

    rows = {"idinvert": row(0.02, 3.0), "image2stylegan": row(0.03, 5.0), "a": row(0.01, 2.0), "b": row(0.015, 4.0),
            "c": row(0.005, 6.0), "d": row(None, 1.0)}
    assert pareto(rows, "mse", "fd_edited") == ["c", "a"]
    assert dominating(rows, ("idinvert", "image2stylegan"), "mse", "fd_edited") == ["a"]
    assert dominating({"idinvert": row(0.02, 3.0), "x": row(0.01, 1.0)}, ("idinvert", "image2stylegan"), "mse",
                      "fd_edited") == []  # a baseline missing: no claim


#: evaluate's Table I methods and the bench rows that hold the same inversions
SHARED_ROWS = {"conventional": "encoder@conventional", "domain-guided": "encoder", "image2stylegan": "image2stylegan",
               "idinvert": "idinvert"}


@pytest.mark.usefixtures("one_thread")
def test_bench_and_evaluate_share_one_cache(tmp_path, monkeypatch, capsys):
    """`idinvert bench --quick` then `idinvert evaluate` on the same images with the same --cache: Table I is a view
    of bench's inversions (nothing is inverted again, the same numbers); and the other way round. A file of the old
    evaluation cache's layout in the folder is inverted again, not read."""
    from safetensors.torch import save_file

    gen = _tiny_pipeline(tmp_path / "models")
    calls: list[int] = []
    original = Inverter.invert

    def counting(self, generator, images, **kwargs):
        calls.append(len(images))
        return original(self, generator, images, **kwargs)

    monkeypatch.setattr(Inverter, "invert", counting)

    def bench(cache):
        args = ["bench", "--generator", str(gen), "--quick", "--methods", "idinvert,encoder,image2stylegan",
                "--out", str(tmp_path / "bench"), "--report", str(tmp_path / "leaderboard.md"), "--cache", str(cache),
                "--no-progress"]
        assert main(args) == 0
        return json.loads((tmp_path / "bench" / "leaderboard.json").read_text())["generators"][str(gen)]["rows"]

    def evaluate(cache, sections="table1"):  # bench --quick's images, steps and spreads; each pipeline's networks
        args = ["evaluate", "--generator", str(gen), "--n", "4", "--steps", "5", "--only", sections, "--classifier",
                "auto", "--feature-net", "auto", "--spread-images", "0", "--out", str(tmp_path / "eval"), "--report",
                str(tmp_path / "results.md"), "--cache", str(cache)]
        assert main(args) == 0
        result = json.loads((tmp_path / "eval" / "results.json").read_text())["generators"][str(gen)]
        return result if sections != "table1" else result["table1"]

    # bench first: 4 rows, each a one-image warm-up and one batch of 4; then evaluate inverts nothing
    rows = bench(tmp_path / "cache")
    assert list(rows) == ["idinvert", "encoder", "encoder@conventional", "image2stylegan"]
    assert sorted(calls) == [1] * 4 + [4] * 4 and all(r["reused"] == 0 for r in rows.values())
    calls.clear()
    t1 = evaluate(tmp_path / "cache")
    assert calls == []
    for method, key in SHARED_ROWS.items():
        row, metrics = t1[method], rows[key]["metrics"]
        assert row["reused_from_cache"] == 4 and row["n"] == 4, method
        for name in ("mse", "psnr", "ssim"):
            assert row[name] == pytest.approx(metrics[name], abs=1e-6), (method, name)
        assert row["seconds_per_image"] == pytest.approx(metrics["seconds_per_image"], rel=1e-9)
    assert t1["idinvert"]["mse"] < t1["domain-guided"]["mse"]  # real inversions, not a cache of zeros
    # the metrics too are bench's: read back, not measured again; and Table II / editability are views of the same
    # cross-talk and edited-image metrics
    assert all(t1[m]["metrics_reused"] for m in SHARED_ROWS)
    both = evaluate(tmp_path / "cache", "table1,editability")
    assert 4 not in calls  # no test image inverted again (the one-image calls are the diffusion figure's)
    for method in ("idinvert", "image2stylegan"):
        ed, metrics = both["editability"]["methods"][method], rows[method]["metrics"]
        assert set(ed["attributes"]) == set(rows[method]["metrics"]["edit_success"]) - {"value"}
        for direction, r in ed["attributes"].items():
            assert r["success_rate"] == pytest.approx(metrics["edit_success"][direction], abs=1e-9), direction
        assert ed["summary"]["success_rate"] == pytest.approx(metrics["edit_success"]["value"], abs=1e-9)
        assert ed["crosstalk"] == pytest.approx(metrics["crosstalk"]["value"], abs=1e-9)
        for mine, theirs in (("fd_manipulated", "fd_edited"), ("fd_interpolated", "fd_interpolated")):
            assert ed[mine] == pytest.approx(metrics[theirs], rel=1e-9) and math.isfinite(ed[mine]), mine
        assert ed["n_manipulated"] == 4 * len(ed["attributes"]) and ed["n_interpolated"] == 12
    # a measurement under other settings (spreads over 8 real images) is kept beside bench's, not instead of it
    args = ["evaluate", "--generator", str(gen), "--n", "4", "--steps", "5", "--only", "editability", "--classifier",
            "auto", "--feature-net", "auto", "--spread-images", "8", "--out", str(tmp_path / "eval8"), "--cache",
            str(tmp_path / "cache")]
    assert main(args) == 0
    assert not any(r["metrics_recomputed"] for r in bench(tmp_path / "cache").values())
    page = (tmp_path / "results.md").read_text()
    assert f"**Inversions:** through `idinvert bench`'s per-method entries and cache (`{tmp_path / 'cache'}`)" in page
    assert ("Metric values read from it (measured before on the same images and settings): conventional, "
            "domain-guided, Image2StyleGAN, IDInvert.") in page

    # evaluate first (a folder holding an old-layout evaluation file: codes without a record), then bench
    other = tmp_path / "cache2"
    stale = other / gen.as_posix().strip("/").replace("/", "_")
    stale.mkdir(parents=True)
    save_file({"codes": torch.zeros(4, 4, 8)}, str(stale / "idinvert.safetensors"),
              metadata={"identity": "{}", "seconds": "1.0", "count": "4"})
    calls.clear()
    t1b = evaluate(other)
    assert sorted(calls) == [1] * 4 + [4] * 4 and all(r["reused_from_cache"] == 0 for r in t1b.values())
    assert t1b["idinvert"]["mse"] == pytest.approx(t1["idinvert"]["mse"], abs=1e-6)  # inverted, not the zeros
    calls.clear()
    again = bench(other)
    assert calls == [] and "inverted anew: none" in capsys.readouterr().out
    for method, key in SHARED_ROWS.items():
        assert again[key]["reused"] == 4 and again[key]["metrics"]["mse"] == pytest.approx(t1b[method]["mse"],
                                                                                           abs=1e-6)


def test_measurements_of_two_processes_are_both_kept(tmp_path):
    """Bench and evaluate measuring the same cached inversion at once (each holding the record it read): the later
    write keeps the other's measurement instead of overwriting it."""
    from idinvert_plugins.evaluation.inversions import Entry, LatentCache, MethodRun, TestImages
    from idinvert_plugins.evaluation.measures import measure_run
    from idinvert_plugins.latent import Latent
    from idinvert_plugins.metrics.registry import get_metrics

    G = tiny_stylegan2().eval()
    cache = LatentCache(tmp_path)
    wp = G.to_wplus(G.mapping(torch.randn(3, 32, generator=torch.Generator().manual_seed(0))).detach())
    identity = {"method": "x", "images": "abc"}
    record = {"identity": identity, "seconds": 1.0, "batches": [{"n": 3, "seconds": 1.0, "mse": [0.1], "t": [1.0]}],
              "metrics": None, "count": 3}
    cache.save("x", Latent(wp), record)
    test = TestImages(G.synthesis(wp, noise_mode="const").detach().clamp(-1, 1), [0, 1, 2], {}, 0, 3, None)

    def run() -> MethodRun:  # what each process holds after reading the record
        return MethodRun(Entry("x", "x"), Latent(wp), 1.0, record["batches"], 3, {}, identity, dict(record))

    first, second = run(), run()
    a = measure_run(first, G, test, cache, metrics=get_metrics(["mse"]), setup=None, edit_step=3.0)
    b = measure_run(second, G, test, cache, metrics=get_metrics(["mse", "psnr"]), setup=None, edit_step=3.0)
    assert a.recomputed and b.recomputed and "psnr" in b.values and "psnr" not in a.values
    on_disk = cache.read_record("x")
    assert len(on_disk["metrics"]) == 2 and on_disk["count"] == 3
    # a later run reading the record finds both without measuring again
    later = run()
    later.record = cache.read_record("x")
    again = measure_run(later, G, test, cache, metrics=get_metrics(["mse"]), setup=None, edit_step=3.0)
    assert not again.recomputed and again.values["mse"] == pytest.approx(a.values["mse"])
