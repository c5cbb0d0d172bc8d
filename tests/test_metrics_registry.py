"""The metrics registry of `idinvert bench`: built-ins reuse the metric functions, plugins register and are
validated, missing inputs are reported instead of measured, time to quality reads a curve."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
import torch

from idinvert_plugins.editors.crosstalk import CrossTalk
from idinvert_plugins.metrics import mse, psnr, ssim
from idinvert_plugins.metrics.registry import (
    GROUPS,
    MetricData,
    compute_metrics,
    get_metrics,
    main_value,
    time_to_reach,
)
from idinvert_plugins.plugins import Plugins


def _images(seed: int, n: int = 4, res: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, res, res, generator=g) * 2 - 1


def test_builtins_are_registered_in_group_order_and_match_the_metric_functions():
    metrics = get_metrics()
    names = [m.name for m in metrics]
    for name in ("mse", "psnr", "ssim", "perceptual", "fd", "swd", "attributes", "edit_success", "crosstalk",
                 "fd_edited", "seconds_per_image", "time_to_quality"):
        assert name in names
    assert [GROUPS.index(m.group) for m in metrics] == sorted(GROUPS.index(m.group) for m in metrics)
    x, y = _images(0), _images(1)
    data = MetricData(x, y, seconds_per_image=0.25)
    values, skipped = compute_metrics(data, get_metrics(["mse", "psnr", "ssim", "swd", "seconds_per_image",
                                                         "fd", "perceptual", "edit_success", "time_to_quality"]))
    assert values["mse"] == pytest.approx(float(mse(y, x).mean()), rel=1e-6)
    assert values["psnr"] == pytest.approx(float(psnr(y, x).mean()), rel=1e-6)
    assert values["ssim"] == pytest.approx(float(ssim(y, x).mean()), rel=1e-6)
    assert values["swd"] > 0 and values["seconds_per_image"] == 0.25
    # no FD features, feature network, cross-talk or curve: not measured, with the reason
    assert skipped == {"fd": "needs fd_features", "perceptual": "needs feature_net", "edit_success": "needs crosstalk",
                       "time_to_quality": "needs curve, mse_target"}
    # identical images: zero error, FD 0 in any feature space
    same, _ = compute_metrics(MetricData(x, x.clone(), fd_features=lambda t: t.flatten(1)[:, :8]),
                              get_metrics(["mse", "fd"]))
    assert same["mse"] == 0 and same["fd"] == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        MetricData(x, y[:2])


def test_editability_metrics_read_the_crosstalk_and_edited_images():
    x = _images(0, n=6)
    ct = CrossTalk(["smile", "age"], ["smile", "age"], {"smile": "smile", "age": "age"},
                   np.array([[1.0, 0.2], [0.9, 0.5]]), {"smile": 1.0, "age": 0.5}, 3.0, 6)
    data = MetricData(x, x, crosstalk=ct, edited={"smile": x + 0.1, "age": x - 0.1},
                      fd_features=lambda t: t.mean(dim=(2, 3)))
    values, skipped = compute_metrics(data, get_metrics(["edit_success", "crosstalk", "fd_edited"]))
    assert not skipped
    assert values["edit_success"] == {"value": 0.75, "smile": 1.0, "age": 0.5}
    # smile: 0.2 / 1.0; age: 0.9 / 0.5 -> median of (0.2, 1.8)
    assert values["crosstalk"]["value"] == pytest.approx(1.0) and values["crosstalk"]["clean"] == 1.0
    assert main_value(values["crosstalk"]) == pytest.approx(1.0) and values["fd_edited"] > 0


def test_table_two_metrics_edited_and_interpolated_images():
    """The paper's Table II as metrics: SWD of the edited images, FD and SWD of the interpolations; images equal to
    the inputs score (about) zero, shifted ones more; below SWD's 16 px only the SWDs are not measured."""
    from idinvert_plugins.metrics.swd import swd

    x = _images(0, n=8)
    names = ["swd_edited", "fd_interpolated", "swd_interpolated"]
    feats = lambda t: t.mean(dim=(2, 3))  # noqa: E731
    same, _ = compute_metrics(MetricData(x, x, edited={"a": x.clone()}, interpolated=torch.cat([x, x, x]),
                                         fd_features=feats), get_metrics(names))
    y = x * 0.5 + 0.3
    shifted, _ = compute_metrics(MetricData(x, x, edited={"a": y}, interpolated=torch.cat([y, y, y]),
                                            fd_features=feats), get_metrics(names))
    assert same["swd_edited"] == pytest.approx(0, abs=1e-3) and same["fd_interpolated"] == pytest.approx(0, abs=1e-4)
    assert shifted["swd_edited"] == pytest.approx(float(swd(x, y, seed=0)["mean"]), rel=1e-6)
    assert shifted["swd_interpolated"] > same["swd_interpolated"] + 1 and shifted["fd_interpolated"] > 0.1
    small = _images(0, n=4, res=8)
    _, skipped = compute_metrics(MetricData(small, small, edited={"a": small}, interpolated=small,
                                            fd_features=feats), get_metrics(names))
    assert skipped == {"swd_edited": "images below SWD's 16 px coarsest level",
                       "swd_interpolated": "images below SWD's 16 px coarsest level"}
    _, skipped = compute_metrics(MetricData(x, x, fd_features=feats), get_metrics(names))
    assert skipped == {"swd_edited": "needs edited", "fd_interpolated": "needs interpolated",
                       "swd_interpolated": "needs interpolated"}
    # JSON-only metrics stay out of the leaderboard's table
    from idinvert_plugins.evaluation.leaderboard import _columns

    described = {m.name: m.describe() for m in get_metrics()}
    gen = {"rows": {"a": {"metrics": {"mse": 0.1, "swd_edited": 3.0, "fd_interpolated": 0.2}}}, "metrics": described}
    assert _columns(gen) == ["mse", "fd_interpolated"]


def test_time_to_reach():
    assert time_to_reach([0.0, 1.0, 2.0, 3.0], [0.5, 0.3, 0.2, 0.1], 0.2) == 2.0
    assert time_to_reach([0.0, 1.0], [0.5, 0.3], 0.2) == math.inf
    assert time_to_reach([0.5], [0.25], 0.25) == 0.5  # a method reaches its own final error


def test_metric_plugins_register_and_bad_ones_are_reported(tmp_path):
    plugin_dir = tmp_path / "p"
    plugin_dir.mkdir()
    (plugin_dir / "mae.py").write_text(textwrap.dedent("""
        import idinvert_plugins
        from idinvert_plugins.metrics.registry import Metric

        class MAE(Metric):
            name = "mae"
            group = "fidelity"
            description = "mean absolute error"

            def compute(self, data):
                return float((data.reconstructions - data.inputs).abs().mean())

        class Bad(Metric):
            name = "bad"
            group = "beauty"

        @idinvert_plugins.hookimpl
        def register_metrics(register):
            register(MAE())

        @idinvert_plugins.hookimpl
        def register_editors(register):
            pass
    """))
    (plugin_dir / "bad.py").write_text(textwrap.dedent("""
        import idinvert_plugins
        from idinvert_plugins.metrics.registry import Metric

        class Bad(Metric):
            name = "bad"
            group = "beauty"

        @idinvert_plugins.hookimpl
        def register_metrics(register):
            register(Bad())
    """))
    with pytest.warns(UserWarning, match="group 'beauty' is not one of fidelity"):
        plugins = Plugins(plugins_dirs=[plugin_dir], load_entry_points=False)
    assert "mae" in plugins.names("metric") and "bad" not in plugins.names("metric")
    mae = plugins.get("metric", "mae")
    x = _images(0)
    values, _ = compute_metrics(MetricData(x, x + 0.5), [mae])
    assert values["mae"] == pytest.approx(0.5)
