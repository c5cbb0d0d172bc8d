"""benchmarks/encoders.py end to end on tiny random pSp / e4e / ReStyle encoders of a tiny generator (Table I rows,
ReStyle per iteration, editability, throughput, the markdown sections), reusing idinvert evaluate's JSON rows; and
pipelines that map each method to its encoder (``"encoders": {"psp": ..., "e4e": ..., "restyle": ...}``)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch
from conftest import REPO, tiny_stylegan2

from idinvert_plugins.cli import main as cli_main
from idinvert_plugins.domains import get_domain
from idinvert_plugins.editors.directions import Direction
from idinvert_plugins.evaluation.inversions import load_test_images, render_codes
from idinvert_plugins.evaluation.report import INTERPRETATION_MARKER
from idinvert_plugins.hub import load_generator, save_pretrained
from idinvert_plugins.inverters.psp_family import restyle_iterations
from idinvert_plugins.metrics import mse
from idinvert_plugins.models.classifier import AttributeClassifier, heads_from_specs
from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder
from idinvert_plugins.pipeline import Pipeline
from idinvert_plugins.training.style_encoder import StyleEncoderTrainConfig, build_style_encoder

pytestmark = pytest.mark.usefixtures("one_thread")
STYLE = ("psp", "e4e", "restyle")


def _bench():
    """benchmarks/encoders.py as a module (registered first: its dataclasses need their module)."""
    if "encoders_bench" not in sys.modules:
        spec = importlib.util.spec_from_file_location("encoders_bench", REPO / "benchmarks" / "encoders.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["encoders_bench"] = module
        spec.loader.exec_module(module)
    return sys.modules["encoders_bench"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A 16 px generator with its IDInvert encoders, a toy-face classifier of random weights, two directions, and
    tiny pSp / e4e / ReStyle encoders (the "tiny" preset, random weights) in sibling folders named as the trainer
    exports them (``<generator>-<method>-encoder``)."""
    root = tmp_path_factory.mktemp("models")
    G = tiny_stylegan2(16)
    gen = root / "tiny"
    save_pretrained(G, gen, kind="generator")
    for i, name in enumerate(("tiny-encoder", "tiny-encoder-conventional")):
        torch.manual_seed(i + 1)
        enc = IDInvertEncoder(resolution=16, num_layers=G.num_layers, w_dim=G.w_dim, channel_base=8, channel_max=16)
        save_pretrained(enc.eval(), root / name, kind="encoder")
    torch.manual_seed(3)
    clf = AttributeClassifier(heads_from_specs(get_domain("toyfaces").attributes), resolution=16, channels=[8, 8, 8],
                              hidden=8)
    save_pretrained(clf.eval(), root / "tiny-classifier", kind="classifier")
    g = torch.Generator().manual_seed(0)
    for name in ("smile", "age"):
        Direction(torch.randn(G.w_dim, generator=g), name=name).save(gen / "directions" / f"{name}.safetensors")
    for i, method in enumerate(STYLE):
        torch.manual_seed(10 + i)
        E = build_style_encoder(StyleEncoderTrainConfig.preset("tiny", generator=str(gen), objective=method), G)
        save_pretrained(E.eval(), root / f"tiny-{method}-encoder", kind="encoder")
    (gen / "pipeline.json").write_text(json.dumps({
        "generator": ".", "domain": "toyfaces", "encoder": "../tiny-encoder",
        "encoders": {"conventional": "../tiny-encoder-conventional"}, "classifier": "../tiny-classifier",
        "feature_net": "classifier:../tiny-classifier", "directions": "directions/"}))
    return root, gen


def _args(gen, tmp, *extra):
    return ["--generator", str(gen), "--n", "4", "--steps", "2", "--i2s-steps", "2", "--batch", "4",
            "--spread-images", "0", "--figure-images", "2", "--eval-cache", str(tmp / "eval-cache"),
            "--out", str(tmp / "out"), "--paste-into", str(tmp / "results.md"), "--perf-into",
            str(tmp / "performance.md"), "--no-progress", *extra]


def test_encoders_benchmark_end_to_end(models, tmp_path, capsys):
    bench = _bench()
    root, gen = models
    (tmp_path / "results.md").write_text(f"# Results\n\n{INTERPRETATION_MARKER}\n\nHand-written notes.\n")
    args = _args(gen, tmp_path, "--results", str(tmp_path / "absent.json"), "--restyle-iters", "3", "--write",
                 "--no-official", "--batches", "1,2", "--repeats", "1", "--warmup", "0")
    res = bench.main(args)
    printed = capsys.readouterr().out
    q = res["quality"]
    rows = q["table"]
    assert list(rows) == ["conventional", "domain-guided", "image2stylegan", "idinvert", "psp", "e4e", "restyle"]
    assert all(r["source"] == "measured" and r["n"] == 4 for r in rows.values())
    assert q["encoders"]["psp"]["reference"] == str(root / "tiny-psp-encoder")  # found by the trainer's naming
    # the pSp row is the pSp encoder's own reconstruction error on the first 4 test faces of Table I
    test = load_test_images(4, 16)
    G = load_generator(gen)
    E = {m: bench.load_style_encoders(Pipeline.from_pretrained(gen), str(gen), {})[0][m].module for m in STYLE}
    with torch.no_grad():
        expected = float(mse(render_codes(G, E["psp"](test.images)), test.images).mean())
        assert rows["psp"]["mse"] == pytest.approx(expected, rel=1e-4)
        # ReStyle: 3 iterations measured one by one; the table's row is its trained count (2, the tiny preset's)
        codes, _ = restyle_iterations(E["restyle"], G, test.images, 3)
    assert q["restyle_trained_iters"] == 2
    its = q["restyle_iterations"]["rows"]
    assert [r["iteration"] for r in its] == [1, 2, 3]
    for r, c in zip(its, codes, strict=True):
        assert r["mse"] == pytest.approx(float(mse(render_codes(G, c), test.images).mean()), rel=1e-4)
    assert rows["restyle"]["mse"] == pytest.approx(its[1]["mse"], rel=1e-5)
    for r in rows.values():
        assert 0 < r["mse"] < 4 and r["psnr"] > 0 and r["fd"] >= 0 and r["swd"] > 0 and r["seconds_per_image"] > 0
    assert rows["idinvert"]["mse"] < rows["domain-guided"]["mse"]  # the optimisation improves on its start

    ed = q["editability"]
    assert ed["directions"] == ["age", "smile"] and ed["step"] == 3.0 and ed["spread_images"] == 4
    assert set(ed["methods"]) == set(rows)
    for m in ed["methods"].values():
        assert set(m["attributes"]) == {"age", "smile"} and m["fd_manipulated"] >= 0
        assert 0 <= m["summary"]["success_rate"] <= 1 and m["summary"]["others_mean"] >= 0
        assert m["n_manipulated"] == 8
    assert [f["finding"] for f in q["findings"]] == ["e4e_tradeoff", "restyle_iterations"]
    assert all(isinstance(f["holds"], bool) for f in q["findings"])

    out = tmp_path / "out"
    for fig in q["figures"].values():
        assert (out / fig).is_file()
    section = (out / "encoders.md").read_text()
    assert "| pSp |" in section and "| ReStyle (2 iterations) |" in section and "#### Paper findings" in section
    assert "](out/figures/tiny/restyle_iterations.png)" in section and "`out/encoders.json`" in section
    page = (tmp_path / "results.md").read_text()
    assert page.index(INTERPRETATION_MARKER) < page.index(section.splitlines()[0]) and "Hand-written" in page
    assert section in printed

    t = res["throughput"]["rows"]
    shape = [(r["method"], r["iterations"], r["batch"]) for r in t]
    assert shape == [("psp", None, 1), ("psp", None, 2), ("e4e", None, 1), ("e4e", None, 2),
                     *(("restyle", k, b) for b in (1, 2) for k in (1, 2, 3))]
    assert all(r["images_per_s"] > 0 and r["size"] == "bundled" for r in t)
    assert all(r["generator_in_loop"] == (r["method"] == "restyle") for r in t)
    perf = (out / "encoders-performance.md").read_text()
    assert perf.count("| bundled |") == len(t) and perf in (tmp_path / "performance.md").read_text()

    # a second run reuses evaluate's code cache and replaces the sections instead of adding them
    bench.main(_args(gen, tmp_path, "--results", str(tmp_path / "absent.json"), "--only", "quality", "--write",
                     "--psp", "none"))
    again = json.loads((out / "encoders.json").read_text())
    assert "psp" not in again["quality"]["table"] and "throughput" in again  # kept from the first run
    assert again["quality"]["table"]["idinvert"]["mse"] == pytest.approx(rows["idinvert"]["mse"], rel=1e-6)
    assert (tmp_path / "results.md").read_text().count("benchmarks/encoders.py: results begin") == 1


def test_table1_rows_come_from_evaluate_json_when_they_match(models, tmp_path, capsys):
    bench = _bench()
    _, gen = models
    published = {"mse": 0.0123, "psnr": 25.0, "ssim": 0.6, "swd": 50.0, "fd": 0.1, "seconds_per_image": 1.5, "n": 4}
    config = {"n": 4, "steps": 2, "i2s_steps": 2, "l_dom": 2.0, "seed": 0, "batch": 4, "edit_step": 3.0}
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"meta": {"date": "2026-11-22 08:45"}, "generators": {str(gen): {
        "n": 4, "first_index": 65000, "config": config,
        "table1": {m: published for m in ("conventional", "domain-guided", "image2stylegan", "idinvert")}}}}))
    res = bench.main(_args(gen, tmp_path, "--results", str(results), "--only", "quality", "--skip-optimised",
                           "--e4e", "none", "--restyle", "none"))
    capsys.readouterr()
    rows = res["quality"]["table"]
    for m in ("conventional", "domain-guided", "image2stylegan", "idinvert"):
        assert rows[m]["mse"] == 0.0123 and rows[m]["source"] == "results.json (2026-11-22 08:45)"
    assert rows["psp"]["source"] == "measured" and "e4e" not in rows
    # --skip-optimised: no Image2StyleGAN / IDInvert codes inverted, so no editability for them
    cached = [p.name for p in (tmp_path / "eval-cache").rglob("*")]
    assert cached and not [n for n in cached if n.startswith(("idinvert", "image2stylegan"))]
    assert set(res["quality"]["editability"]["methods"]) == {"conventional", "domain-guided", "psp"}
    # other settings than the published rows': measured here, and the note says why
    res = bench.main(_args(gen, tmp_path, "--results", str(results), "--only", "quality", "--skip-optimised",
                           "--steps", "3", "--e4e", "none", "--restyle", "none"))
    capsys.readouterr()
    assert res["quality"]["table"]["conventional"]["source"] == "measured"
    assert "image2stylegan" not in res["quality"]["table"]
    assert any("other settings (there: steps 2)" in n for n in res["quality"]["notes"])


def test_official_layout_throughput_without_a_generator():
    """The 256 px rows time encoder steps alone (ReStyle: k steps fed a fixed reconstruction); here on a tiny
    stand-in of the same classes."""
    bench = _bench()
    from idinvert_plugins.models.restyle import ReStyleEncoder

    E = ReStyleEncoder(resolution=32, w_dim=16, input_size=16, stages=[1, 1, 1, 1], widths=[8, 8, 16, 16], stem=8)
    rows = bench.throughput_rows({"restyle": (E.eval(), "stand-in")}, None, "official", [2], [1, 3], 1, 0)
    assert [(r["iterations"], r["batch"], r["input_size"], r["generator_in_loop"]) for r in rows] == [
        (1, 2, 16, False), (3, 2, 16, False)]
    assert rows[0]["images_per_s"] > 0


# -- pipelines that map each method to its encoder ---------------------------------------------------------------
@pytest.fixture
def mapped(models, tmp_path):
    """A pipeline folder whose pipeline.json maps psp, e4e and restyle to their encoders beside the IDInvert one."""
    root, gen = models
    folder = tmp_path / "mapped"
    folder.mkdir()
    config = json.loads((gen / "pipeline.json").read_text())
    config.update(generator=str(gen), encoder=str(root / "tiny-encoder"),
                  encoders={"conventional": str(root / "tiny-encoder-conventional"),
                            **{m: str(root / f"tiny-{m}-encoder") for m in STYLE}},
                  classifier=str(root / "tiny-classifier"), feature_net=f"classifier:{root / 'tiny-classifier'}",
                  directions=str(gen / "directions"))
    (folder / "pipeline.json").write_text(json.dumps(config))
    return root, folder


def test_each_method_inverts_with_its_own_encoder(mapped, tmp_path, capsys):
    from idinvert_plugins.codes import load_latent

    root, folder = mapped
    pipe = Pipeline.from_pretrained(folder)
    x = load_test_images(2, 16).images
    with torch.no_grad():
        for m in ("psp", "e4e"):
            assert torch.allclose(pipe.invert(x, m).codes, pipe.encoders[m](x), atol=1e-5)
        codes, _ = restyle_iterations(pipe.encoders["restyle"], pipe.generator, x, 2)
        assert torch.allclose(pipe.invert(x, "restyle").codes, codes[-1], atol=1e-5)
    # the CLI: idinvert invert GEN IMG --method restyle takes encoders.restyle
    img = tmp_path / "face.png"
    from PIL import Image

    from idinvert_plugins.images import to_uint8

    Image.fromarray(to_uint8(x[0])).save(img)
    assert cli_main(["invert", str(folder), str(img), "--method", "restyle", "-o", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    latent = load_latent(tmp_path / "out" / "face.safetensors", pipe.generator)
    with torch.no_grad():
        codes, _ = restyle_iterations(pipe.encoders["restyle"], pipe.generator, pipe.images(img), 2)
    assert torch.allclose(latent.wp, codes[-1], atol=1e-4)
    # an encoder given explicitly serves the method instead of the declared one
    other = Pipeline.from_pretrained(folder, encoder=str(root / "tiny-e4e-encoder"))
    with torch.no_grad():
        assert torch.allclose(other.invert(x, "e4e").codes, pipe.encoders["e4e"](x), atol=1e-5)
    with pytest.raises(ValueError, match="needs a psp-encoder .*this e4e-encoder encoder fits --method e4e"):
        other.invert(x, "psp")


def test_a_method_without_its_encoder_names_the_key(models, tmp_path, capsys):
    root, gen = models
    pipe = Pipeline.from_pretrained(gen)  # an IDInvert encoder, no encoders.e4e
    x = load_test_images(1, 16).images
    with pytest.raises(ValueError, match=r"needs a e4e-encoder .*key 'encoders\.e4e' \(\"encoders\": \{\"e4e\""):
        pipe.invert(x, "e4e")
    bare = Pipeline.from_pretrained(gen, encoder=None)
    with pytest.raises(ValueError, match=r"'restyle' needs its restyle encoder .*key 'encoders\.restyle'"):
        bare.invert(x, "restyle")
    img = tmp_path / "face.png"
    from PIL import Image

    from idinvert_plugins.images import to_uint8

    Image.fromarray(to_uint8(x[0])).save(img)
    code = cli_main(["invert", str(gen), str(img), "--method", "psp", "--encoder", "none", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code != 0 and "--method psp needs its psp encoder" in err and "'encoders.psp'" in err


def test_bench_gives_each_method_its_own_encoder(mapped, tmp_path):
    from idinvert_plugins.evaluation.bench import BenchConfig, bench_generator

    _, folder = mapped
    pipe = Pipeline.from_pretrained(folder)
    cfg = BenchConfig.quick(methods=("encoder", "psp", "e4e", "restyle"), metrics=("mse",))
    res = bench_generator(pipe, cfg=cfg, cache_dir=tmp_path / "cache", progress=False)
    rows = res["rows"]
    # each method ran once with its own encoder; the plain encoder ran with the IDInvert encoders only
    assert list(rows) == ["encoder", "encoder@conventional", "psp", "e4e", "restyle"]
    assert {k: rows[k]["encoder"] for k in ("psp", "e4e", "restyle")} == {
        "psp": "encoders.psp", "e4e": "encoders.e4e", "restyle": "encoders.restyle"}
    x = load_test_images(4, 16).images
    with torch.no_grad():
        expected = float(mse(render_codes(pipe.generator, pipe.encoders["e4e"](x)), x).mean())
    assert rows["e4e"]["metrics"]["mse"] == pytest.approx(expected, rel=1e-4)


def test_the_app_inverts_with_each_methods_encoder_and_names_the_key(models, mapped):
    from PIL import Image

    from idinvert_plugins.app.models import ModelSpec, load_bundle
    from idinvert_plugins.app.session import AppError, invert_image
    from idinvert_plugins.images import to_uint8

    root, gen = models
    x = load_test_images(1, 16).images
    face = Image.fromarray(to_uint8(x[0]))
    bundle = load_bundle(ModelSpec(model=str(mapped[1])))
    inversion = invert_image(bundle, face, "e4e")
    with torch.no_grad():
        assert torch.allclose(inversion.code, bundle.pipeline.encoders["e4e"](inversion.target[None])[0], atol=1e-5)
    plain = load_bundle(ModelSpec(model=str(gen)))  # its IDInvert encoder only
    with pytest.raises(AppError, match=r"needs a e4e-encoder .*'encoders\.e4e'"):
        invert_image(plain, face, "e4e")
    bare = load_bundle(ModelSpec(model=str(gen), encoder=None))
    with pytest.raises(AppError, match=r"needs its restyle encoder.*'encoders\.restyle'.*choose IDInvert"):
        invert_image(bare, face, "restyle")
