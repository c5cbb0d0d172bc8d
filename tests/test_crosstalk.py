"""Cross-talk measurement (idinvert_plugins.editors.crosstalk) and conditional steering, on a fake generator and
classifier whose answers are known: the "images" are the codes themselves and the readings linear in them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from idinvert_plugins.editors.crosstalk import CrossTalk, measure_crosstalk, write_heatmap
from idinvert_plugins.editors.directions import Direction
from idinvert_plugins.editors.interfacegan import conditional_steering, directions_from_scores, learn_direction

D = 5
FAMILIES = {"a": "a", "b": "b", "c-x": "c", "c-y": "c"}
THRESHOLDS = {"a": 0.0, "b": 0.0, "c-x": 0.0, "c-y": 0.0}


def render(codes: torch.Tensor) -> torch.Tensor:
    return codes[:, 0]  # [N, D]: the fake image is the code


def fake_score(k: float):
    """a = x0 (the wrong way for faces whose marker x4 < 0), b = x1 + k * x0, c-x = x2, c-y = -x2."""
    def score(x: torch.Tensor) -> dict[str, torch.Tensor]:
        marker = torch.where(x[:, 4] < 0, -1.0, 1.0)
        return {"a": x[:, 0] * marker, "b": x[:, 1] + k * x[:, 0], "c-x": x[:, 2], "c-y": -x[:, 2]}
    return score


def codes(n: int = 40, wrong: int = 0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(n, 1, D, generator=g)
    c[:, 0, 4] = 1.0
    c[:wrong, 0, 4] = -1.0
    return c


def unit(i: int) -> Direction:
    v = torch.zeros(D)
    v[i] = 1.0
    return Direction(v)


def test_matrix_worst_and_clean_on_known_linear_readings():
    dirs = {"a": unit(0), "b": unit(1), "c-x": unit(2)}
    ct = measure_crosstalk(codes(), dirs, render, fake_score(0.3), thresholds=THRESHOLDS, families=FAMILIES,
                           step=3.0, scales={"b": 2.0})
    assert ct.rows == ["a", "b", "c-x"] and ct.columns == ["a", "b", "c-x", "c-y"] and ct.n == 40
    # per unit step along +direction, in spreads: editing a moves b by 0.3 (spread 2 -> 0.15)
    np.testing.assert_allclose(ct.matrix, [[1, 0.15, 0, 0], [0, 0.5, 0, 0], [0, 0, 1, -1]], atol=1e-9)
    assert ct.worst("a") == pytest.approx((0.15, "b"))
    assert ct.worst("b")[0] == pytest.approx(0.0)
    # c-y is c-x's own family (more x is less y): it does not count as cross-talk
    assert ct.worst("c-x")[0] == pytest.approx(0.0) and ct.worst("c-x")[1] != "c-y"
    assert all(ct.success[r] == 1.0 for r in ct.rows) and ct.clean_count() == 3
    entry = ct.entry("a")
    assert entry == {"clean": True, "success": 1.0, "worst": 0.15, "worst_attribute": "b", "target_change": 1.0,
                     "step": 3.0, "samples": "generator", "n": 40, "statistic": "signed"}


def test_strong_drag_or_low_success_is_not_clean():
    # b moves 0.6 as much as a (spreads 1): above the half-as-much limit
    ct = measure_crosstalk(codes(), {"a": unit(0)}, render, fake_score(0.6), thresholds=THRESHOLDS,
                           families=FAMILIES)
    assert ct.worst("a") == pytest.approx((0.6, "b")) and not ct.clean("a")
    # 8 of 40 faces read a backwards: success 80 %, the target's mean change (32 - 8) / 40 per unit
    ct = measure_crosstalk(codes(wrong=8), {"a": unit(0)}, render, fake_score(0.1), thresholds=THRESHOLDS,
                           families=FAMILIES)
    assert ct.success["a"] == pytest.approx(0.8) and ct.target("a") == pytest.approx(0.6)
    assert ct.worst("a")[0] == pytest.approx(0.1 / 0.6) and not ct.clean("a")
    # the wrong way on average: infinite cross-talk, written as None
    ct = measure_crosstalk(codes(wrong=30), {"a": unit(0)}, render, fake_score(0.1), thresholds=THRESHOLDS,
                           families=FAMILIES)
    assert ct.target("a") < 0 and math.isinf(ct.worst("a")[0]) and ct.entry("a")["worst"] is None


def test_json_round_trip_table_and_errors(tmp_path):
    ct = measure_crosstalk(codes(), {"a": unit(0), "b": unit(1)}, render, fake_score(0.3), thresholds=THRESHOLDS,
                           families=FAMILIES, samples="test_faces")
    back = CrossTalk.from_json(ct.to_json())
    np.testing.assert_allclose(back.matrix, ct.matrix, atol=1e-5)
    assert back.samples == "test_faces" and back.clean_count() == ct.clean_count() == 2
    assert "| a | 100% | 1.000 | 0.30 | b | clean |" in ct.table()
    with pytest.raises(ValueError, match="reads no attribute named \\['z'\\]"):
        measure_crosstalk(codes(), {"z": unit(0)}, render, fake_score(0.3), thresholds=THRESHOLDS, families=FAMILIES)
    with pytest.raises(ValueError, match="no family given for \\['c-y'\\]"):
        measure_crosstalk(codes(), {"a": unit(0)}, render, fake_score(0.3), thresholds=THRESHOLDS,
                          families={k: v for k, v in FAMILIES.items() if k != "c-y"})


def test_heatmap_shows_clean_and_weak_rows(tmp_path):
    clean = measure_crosstalk(codes(), {"a": unit(0)}, render, fake_score(0.1), thresholds=THRESHOLDS,
                              families=FAMILIES)
    weak = measure_crosstalk(codes(), {"a": unit(0)}, render, fake_score(0.9), thresholds=THRESHOLDS,
                             families=FAMILIES)
    path = write_heatmap([("before", weak), ("after", clean)], tmp_path / "h.png")
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    half = img.shape[1] // 2
    assert img.shape[1] > 2 * 330
    # the target's own cell (1.0) is deep red in both panels; the b cell is redder before (0.9) than after (0.1)
    red = (img[..., 0] > 240) & (img[..., 1] < 90) & (img[..., 2] < 90)
    assert red[:, :half].sum() > red[:, half:].sum() > 100
    pinkish = (img[..., 0] > 240) & (img[..., 1] < 200)
    assert pinkish[:, :half].sum() > pinkish[:, half:].sum()
    with pytest.raises(ValueError, match="nothing to draw"):
        write_heatmap([], tmp_path / "x.png")


def test_conditional_steering_projects_out_other_families_only():
    g = torch.Generator().manual_seed(0)
    a = Direction(torch.randn(6, generator=g), name="a", attribute="a", source="interfacegan-logistic")
    b = Direction(torch.randn(6, generator=g), name="b", attribute="b", source="interfacegan-logistic",
                  normal=torch.randn(6, generator=g))
    cx = Direction(torch.randn(6, generator=g), name="c-x", attribute="c", source="interfacegan-logistic-class-means",
                   normal=torch.randn(6, generator=g))
    cy = Direction(torch.randn(6, generator=g), name="c-y", attribute="c", source="interfacegan-logistic")
    out = {d.name: d for d in conditional_steering([a, b, cx, cy])}
    # orthogonal to every other family's boundary, not to its own family's
    assert abs(float(out["a"].vector @ b.boundary)) < 1e-5 and abs(float(out["a"].vector @ cx.boundary)) < 1e-5
    assert abs(float(out["c-x"].vector @ a.boundary)) < 1e-5 and abs(float(out["c-x"].vector @ b.boundary)) < 1e-5
    assert abs(float(out["c-x"].vector @ cy.boundary)) > 1e-3
    assert out["a"].source == "interfacegan-logistic-conditional"
    assert out["c-x"].source == "interfacegan-logistic-conditional-class-means"
    assert torch.allclose(out["c-x"].boundary, cx.boundary) and torch.allclose(out["a"].boundary, a.vector)
    assert out["a"].extra["conditioned_on"] == ["b", "c"] and out["a"].name == "a"


def test_conditional_steering_removes_a_correlated_attributes_drag():
    """Two attributes correlated in the codes: the plain normal of a moves b's score, the conditional one does
    not, and it still moves a's."""
    g = torch.Generator().manual_seed(2)
    z = torch.randn(4000, 4, generator=g)
    x = torch.stack([z[:, 0], z[:, 0] * 0.8 + z[:, 1] * 0.6, z[:, 2], z[:, 3]], 1)  # axes 0 and 1 correlated
    scores = {"a": x[:, 0] + 0.5 * x[:, 1], "b": (x[:, 1] - 0.2 * x[:, 0] > 0).float()}
    plain, _ = directions_from_scores(x, scores, steer="normal", progress=False)
    cond, skipped = directions_from_scores(x, scores, steer="conditional", progress=False)
    assert not skipped
    p, c = {d.name: d for d in plain}, {d.name: d for d in cond}
    nb = p["b"].vector
    assert abs(float(p["a"].vector @ nb)) > 0.2
    assert abs(float(c["a"].vector @ nb)) < 1e-5 and float(c["a"].vector @ p["a"].vector) > 0.3
    assert torch.allclose(c["a"].boundary, p["a"].vector, atol=1e-6) and c["a"].accuracy == p["a"].accuracy
    with pytest.raises(ValueError, match="made for a whole set"):
        learn_direction(x, scores["a"], steer="conditional")


def test_directions_list_shows_crosstalk_and_flags_accuracy_at_or_below_majority(tmp_path, capsys):
    import json

    from conftest import tiny_stylegan2

    from idinvert_plugins.cli import main
    from idinvert_plugins.editors.directions import save_directions
    from idinvert_plugins.hub import save_pretrained

    model = save_pretrained(tiny_stylegan2(16), tmp_path / "g", kind="generator")
    w_dim = 32  # tiny_stylegan2's
    g = torch.Generator().manual_seed(0)
    clean = {"clean": True, "success": 0.96, "worst": 0.21, "worst_attribute": "age", "step": 3.0,
             "samples": "generator", "test_faces": {"clean": False, "success": 0.84, "worst": 0.7,
                                                    "worst_attribute": "yaw", "step": 3.0, "samples": "test_faces"}}
    weak = {"clean": False, "success": 0.62, "worst": 1.35, "worst_attribute": "background-red", "step": 3.0,
            "samples": "generator"}
    dirs = [Direction(torch.randn(w_dim, generator=g), name="smile", attribute="smile", accuracy=0.81,
                      source="interfacegan-logistic-conditional", extra={"crosstalk": clean}),
            Direction(torch.randn(w_dim, generator=g), name="hair_color-auburn", attribute="hair_color",
                      accuracy=0.914, source="interfacegan-logistic-class-means",
                      extra={"majority": 0.922, "crosstalk": weak}),
            Direction(torch.randn(w_dim, generator=g), name="sefa_00", source="sefa")]
    save_directions(dirs, model / "directions", {"hair_color-auburn": {"majority": 0.922, "crosstalk": weak},
                                                 "smile": {"crosstalk": clean}})
    assert main(["directions", "list", str(model)]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln and ln.split()[0] in {d.name for d in dirs}}
    assert "96%" in lines["smile"] and "0.21 (age)" in lines["smile"] and " clean " in lines["smile"]
    assert "84% weak" in lines["smile"] and "0.810  " in lines["smile"]
    assert "0.914 !" in lines["hair_color-auburn"] and "0.922" in lines["hair_color-auburn"]
    assert "1.35 (background-red)" in lines["hair_color-auburn"] and " weak " in lines["hair_color-auburn"]
    assert "!" not in lines["sefa_00"] and "clean" not in lines["sefa_00"]
    assert "no better than always guessing the larger class" in out and "(1 of 2 clean)" in out
    assert main(["directions", "list", str(model), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["hair_color-auburn"]["below_majority"] and not rows["smile"]["below_majority"]
    assert rows["smile"]["crosstalk"]["clean"] and rows["sefa_00"]["crosstalk"] is None
    readme = (model / "directions" / "README.md").read_text()
    row = "| smile | interfacegan-logistic-conditional | 0.810 |  |  | 96% | 0.21 (age) | clean | 84%, weak |"
    assert row in readme
    assert "| 0.914 ! | 0.922 |" in readme and "Clean on G's own samples: 1 of 2" in readme


def test_compensated_steering_cancels_other_boundaries_along_their_own_edit_vectors():
    """The compensated vector is the class-mean vector minus a combination of the other families' edit vectors
    (so it stays in their span), and leaves the other families' boundary scores (nearly) unchanged."""
    from idinvert_plugins.editors.interfacegan import compensated_steering

    g = torch.Generator().manual_seed(3)

    def make(name: str, fam: str) -> Direction:
        return Direction(torch.randn(12, generator=g), name=name, attribute=fam, normal=torch.randn(12, generator=g),
                         source="interfacegan-logistic-class-means")

    dirs = [make("a", "a"), make("b", "b"), make("c-x", "c"), make("c-y", "c")]
    out = {d.name: d for d in compensated_steering(dirs, ridge=1e-9)}
    a = out["a"]
    assert a.source == "interfacegan-logistic-compensated" and a.extra["compensated_for"] == ["b", "c"]
    assert torch.allclose(a.boundary, dirs[0].boundary)
    for other in dirs[1:]:
        assert abs(float(a.vector @ other.boundary)) < 1e-4
    # in the span of its own and the others' edit vectors
    span = torch.stack([d.vector for d in dirs]).double()
    coef = torch.linalg.lstsq(span.T, a.vector.double().unsqueeze(1)).solution
    assert torch.allclose((span.T @ coef).squeeze(1), a.vector.double(), atol=1e-5)
    # c-x is compensated for a and b but not for its own family's c-y
    assert abs(float(out["c-x"].vector @ dirs[0].boundary)) < 1e-4
    assert abs(float(out["c-x"].vector @ dirs[3].boundary)) > 1e-3
    # through directions_from_scores
    z = torch.randn(3000, 4, generator=g)
    x = torch.stack([z[:, 0], z[:, 0] * 0.8 + z[:, 1] * 0.6, z[:, 2], z[:, 3]], 1)
    scores = {"a": x[:, 0] + 0.5 * x[:, 1], "b": (x[:, 1] - 0.2 * x[:, 0] > 0).float()}
    comp, _ = directions_from_scores(x, scores, steer="compensated", progress=False)
    c = {d.name: d for d in comp}
    assert c["a"].source == "interfacegan-logistic-compensated" and abs(float(c["a"].vector @ c["b"].boundary)) < 1e-2


def test_directions_learn_cli_set_wide_steerings(tmp_path):
    """``idinvert directions learn --steer conditional|compensated``: the boundaries are the plain ones, the
    edit vectors leave the other attributes' boundary scores unchanged."""
    from conftest import tiny_stylegan2

    from idinvert_plugins.cli import main
    from idinvert_plugins.hub import save_pretrained

    model = save_pretrained(tiny_stylegan2(64, seed=3), tmp_path / "g64", kind="generator")
    common = ["--n", "160", "--batch", "80", "--attributes", "smile,age,yaw"]
    assert main(["directions", "learn", str(model), *common, "--out", str(tmp_path / "plain")]) == 0
    names = ("smile", "age", "yaw")
    plain = {n: Direction.load(tmp_path / "plain" / f"{n}.safetensors") for n in names}
    for steer in ("conditional", "compensated"):
        assert main(["directions", "learn", str(model), *common, "--steer", steer, "--out", str(tmp_path / steer)]) == 0
        steered = {n: Direction.load(tmp_path / steer / f"{n}.safetensors") for n in names}
        for n in names:
            d = steered[n]
            assert d.source == f"interfacegan-logistic-{steer}" and d.accuracy == pytest.approx(plain[n].accuracy)
            assert torch.allclose(d.boundary, plain[n].vector, atol=1e-5)
            for other in names:
                if other != n:
                    assert abs(float(d.vector @ plain[other].vector)) < 1e-3, (steer, n, other)


def test_absolute_statistic_sees_a_drag_that_changes_sign_between_faces():
    """b = x1 + x0 * marker': for half the faces the a-edit pushes b up, for the other half down. The signed mean
    sees no drag; the absolute statistic sees all of it. The target's own column stays signed."""
    def score(x: torch.Tensor) -> dict[str, torch.Tensor]:
        half = torch.where(torch.arange(len(x)) % 2 == 0, 1.0, -1.0)
        return {"a": x[:, 0], "b": x[:, 1] + 0.8 * x[:, 0] * half, "c-x": x[:, 2], "c-y": -x[:, 2]}

    kwargs = dict(thresholds=THRESHOLDS, families=FAMILIES, step=3.0)
    signed = measure_crosstalk(codes(), {"a": unit(0)}, render, score, **kwargs)
    absolute = measure_crosstalk(codes(), {"a": unit(0)}, render, score, statistic="absolute", **kwargs)
    assert signed.worst("a")[0] == pytest.approx(0.0, abs=1e-6) and signed.clean("a")
    assert absolute.worst("a") == pytest.approx((0.8, "b")) and not absolute.clean("a")
    assert absolute.target("a") == pytest.approx(1.0) and absolute.extra["statistic"] == "absolute"
    with pytest.raises(ValueError, match="statistic must be"):
        measure_crosstalk(codes(), {"a": unit(0)}, render, score, statistic="median", **kwargs)


def test_optimized_steering_finds_the_clean_vector_the_boundary_misses():
    """a = x0 + x3 and b = x1 + 0.9 x0 (another family): the plain direction x0 moves b by 0.9 of a's own change;
    x3 moves a alone. Optimising through render and score from x0 must reach a clean vector (measured on other
    codes than those it was fitted on), stay unit length, keep the boundary and the layers, and name itself."""
    from idinvert_plugins.editors.optimized_steering import SteeringOptions, optimize_steering

    def score(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"a": x[:, 0] + x[:, 3], "b": x[:, 1] + 0.9 * x[:, 0], "c-x": x[:, 2], "c-y": -x[:, 2]}

    start = Direction(unit(0).vector, name="a", attribute="a", source="interfacegan-logistic-class-means",
                      layers=[0], extra={"note": "kept"})
    kwargs = dict(thresholds=THRESHOLDS, families=FAMILIES)
    held_out = codes(60, seed=1)
    before = measure_crosstalk(held_out, {"a": start}, render, score, statistic="absolute", step=3.0, **kwargs)
    assert before.worst("a")[0] == pytest.approx(0.9, abs=1e-6) and not before.clean("a")
    seen = []
    opt = optimize_steering(start, codes(64, seed=0), render, score, options=SteeringOptions(iterations=150, lr=0.05),
                            progress=lambda it, m: seen.append(m), **kwargs)
    after = measure_crosstalk(held_out, {"a": opt}, render, score, statistic="absolute", step=3.0, **kwargs)
    assert after.clean("a") and after.worst("a")[0] < 0.3 and after.success["a"] == 1.0
    assert after.target("a") > 0.5 * before.target("a")
    assert float(opt.vector.norm()) == pytest.approx(1.0, abs=1e-5)
    assert opt.vector[3] > 0.5 and abs(float(opt.vector[2])) < 0.2  # towards x3; c's family left alone
    assert torch.equal(opt.boundary, start.boundary) and opt.layers == [0] and opt.extra["note"] == "kept"
    assert opt.source == "interfacegan-logistic-optimized" and len(seen) == 150
    assert seen[-1]["worst"] < seen[0]["worst"]
    with pytest.raises(ValueError, match="no attribute named 'z'"):
        optimize_steering(Direction(unit(0).vector, name="z"), codes(8), render, score, **kwargs)


def test_optimized_steering_realism_term_keeps_edits_where_the_generator_makes_images():
    """Same readings; a 'discriminator' that calls images with |x3| large unreal. With it, the optimised vector
    leans on x3 (the clean but unreal route) less and its edits lose less realism than without it."""
    from idinvert_plugins.editors.optimized_steering import SteeringOptions, optimize_steering

    def score(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"a": x[:, 0] + x[:, 3], "b": x[:, 1] + 0.9 * x[:, 0], "c-x": x[:, 2], "c-y": -x[:, 2]}

    def realism(x: torch.Tensor) -> torch.Tensor:
        return -2.0 * x[:, 3].abs()

    start = Direction(unit(0).vector, name="a")
    common = dict(thresholds=THRESHOLDS, families=FAMILIES, options=SteeringOptions(iterations=120, lr=0.05))
    plain = optimize_steering(start, codes(64), render, score, **common)
    real = optimize_steering(start, codes(64), render, score, realism=realism, **common)
    assert float(real.vector[3].abs()) < float(plain.vector[3].abs()) - 0.2

    def lost(d: Direction) -> float:
        c = codes(60, seed=1)
        return float((realism(render(c)) - realism(render(c + 3.0 * d.offsets(1, D)))).clamp(min=0).mean())

    assert lost(real) < lost(plain)
