"""Metrics: pixel metrics, SWD, Fréchet distances, attribute marginals, timing, and the quality benchmark."""

from __future__ import annotations

import importlib.util
import json
import math
import time

import numpy as np
import pytest
import torch
from conftest import REPO, tiny_stylegan2
from PIL import Image

from idinvert_plugins.data.toyfaces import render_batch
from idinvert_plugins.images import from_uint8
from idinvert_plugins.metrics import (
    InceptionFeatures,
    attribute_marginals,
    bundled_feature_network,
    compare_marginals,
    feature_statistics,
    frechet_distance,
    frechet_features,
    median_seconds,
    mse,
    psnr,
    ssim,
    swd,
    table_marginals,
    timer,
)
from idinvert_plugins.metrics.pixel import gaussian_window
from idinvert_plugins.metrics.swd import laplacian_pyramid, wasserstein_1d

# small but real SWD settings: 32 px renders give levels 32 and 16
SWD_FAST = dict(directions=64, repeats=2, descriptors_per_image=32)


@pytest.fixture(scope="module")
def renders():
    images, table = render_batch(0, range(65000, 65048), 32)
    return images, table


@pytest.fixture(scope="module")
def classifier():
    from idinvert_plugins import load_model

    return load_model("toyfaces-classifier-64", kind="classifier")


# -- pixel metrics ---------------------------------------------------------------------------------------
def test_mse_psnr_known_values():
    a = torch.zeros(2, 3, 4, 4)
    b = torch.stack([torch.full((3, 4, 4), 0.5), torch.full((3, 4, 4), -1.0)])
    assert mse(a, b).tolist() == [0.25, 1.0]
    assert mse(a, b, reduction="mean").item() == pytest.approx(0.625)
    # 10 log10(2^2 / 0.25) and 10 log10(4 / 1)
    assert psnr(a, b).tolist() == pytest.approx([10 * math.log10(16), 10 * math.log10(4)], abs=1e-5)
    assert psnr(a, b, data_range=1.0)[0].item() == pytest.approx(10 * math.log10(4), abs=1e-5)
    assert psnr(b, b).isinf().all()
    assert mse(b[0], b[0]).shape == (1,)  # a single CHW image is a batch of one
    with pytest.raises(ValueError, match="same shape"):
        mse(a, b[:1])
    with pytest.raises(ValueError, match="reduction must be"):
        psnr(a, b, reduction="sum")
    with pytest.raises(TypeError, match="float tensors"):
        mse(a.to(torch.uint8), b.to(torch.uint8))


def test_ssim_identical_and_constant_shift():
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    assert ssim(x, x).tolist() == pytest.approx([1.0] * 3, abs=1e-12)
    # constant images m and m + c: the contrast-structure term is (0 + C2) / (0 + C2) = 1, the luminance term
    # (2 m (m + c) + C1) / (m^2 + (m + c)^2 + C1) everywhere
    m, c, c1 = 0.2, 0.3, (0.01 * 2.0) ** 2
    expected = (2 * m * (m + c) + c1) / (m**2 + (m + c) ** 2 + c1)
    got = ssim(torch.full((1, 3, 12, 12), m), torch.full((1, 3, 12, 12), m + c))
    assert got.item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="smaller than the 11x11 SSIM window"):
        ssim(x[:, :, :8, :8], x[:, :, :8, :8])


def test_ssim_single_window_by_hand():
    # an 11x11 image has exactly one window position: Gaussian-weighted moments computed directly
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 11, 11, generator=gen, dtype=torch.float64) * 2 - 1
    b = (a + 0.3 * torch.randn(2, 3, 11, 11, generator=gen, dtype=torch.float64)).clamp(-1, 1)
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    expected = []
    for n in range(2):
        values = []
        for ch in range(3):
            x, y = a[n, ch].numpy(), b[n, ch].numpy()
            mx, my = (w * x).sum(), (w * y).sum()
            vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
            cov = (w * (x - mx) * (y - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
        expected.append(np.mean(values))
    assert ssim(a, b).tolist() == pytest.approx(expected, abs=1e-6)
    assert ssim(a, b, reduction="mean").item() == pytest.approx(np.mean(expected), abs=1e-6)
    assert gaussian_window(11, 1.5).numpy() == pytest.approx(g / g.sum())


def test_ssim_falls_with_noise():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=gen)
    scores = [ssim(x, (x + s * noise).clamp(-1, 1), reduction="mean").item() for s in (0.05, 0.2, 0.5)]
    assert 1.0 > scores[0] > scores[1] > scores[2]


# -- Fréchet distance ---------------------------------------------------------------------------------------
def test_frechet_distance_closed_form_diagonal():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    a, b = rng.uniform(0.1, 3, size=5), rng.uniform(0.1, 3, size=5)
    # Gaussians with diagonal covariances: |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    # same Gaussian: 0 (to ~1e-12 when full rank; singular ones lose precision in sqrt of ~1e-16 eigenvalues)
    m = rng.normal(size=(5, 5))
    assert frechet_distance(mu1, m @ m.T, mu1, m @ m.T) == pytest.approx(0.0, abs=1e-10)
    assert frechet_distance(mu1, m[:, :2] @ m[:, :2].T, mu1, m[:, :2] @ m[:, :2].T) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="shapes do not match"):
        frechet_distance(mu1, np.diag(a), mu2[:4], np.diag(b))


def test_frechet_distance_full_covariance_matches_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = x @ x.T + 0.1 * np.eye(6), y @ y.T
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_feature_statistics_streamed_equals_numpy(renders):
    images = renders[0][:20]
    feature_fn = lambda x: x.mean(dim=(2, 3))  # noqa: E731 - per-channel means, 3 features
    mu, sigma = feature_statistics(images, feature_fn, batch=7)
    feats = from_uint8(images).mean(dim=(2, 3)).double().numpy()
    np.testing.assert_allclose(mu, feats.mean(0), rtol=1e-6)
    np.testing.assert_allclose(sigma, np.cov(feats, rowvar=False), rtol=1e-5)
    batches = (from_uint8(images[i : i + 5]) for i in range(0, 20, 5))  # an iterable of float batches
    mu2, sigma2 = feature_statistics(batches, feature_fn)
    np.testing.assert_allclose(mu2, mu, rtol=1e-6)
    np.testing.assert_allclose(sigma2, sigma, rtol=1e-5)


def test_bundled_feature_network(renders, classifier):
    net = bundled_feature_network()
    assert net.name == "FD-toyfaces-classifier" and net.dim == 128
    images = renders[0]  # 32 px renders are resized to the classifier's 64
    assert net(from_uint8(images[:3])).shape == (3, 128)
    features = frechet_features(classifier)
    assert features.dim == 128 and features(from_uint8(images[:2])).shape == (2, 128)
    real_a = feature_statistics(images[:24], features)
    real_b = feature_statistics(images[24:], features)
    noise = feature_statistics(torch.rand(24, 3, 32, 32) * 2 - 1, features)
    assert frechet_distance(*real_a, *real_b) * 5 < frechet_distance(*real_a, *noise)


def test_inception_features_refuse_clearly(tmp_path):
    with pytest.raises(ValueError, match="needs weights_path="):
        InceptionFeatures()
    with pytest.raises(FileNotFoundError, match="Inception weights not found"):
        InceptionFeatures(tmp_path / "missing.pt")
    (tmp_path / "inception.pt").write_bytes(b"\0")
    with pytest.raises(NotImplementedError, match="not implemented"):
        InceptionFeatures(tmp_path / "inception.pt")


# -- SWD --------------------------------------------------------------------------------------------------
def test_wasserstein_1d_exact():
    a = np.array([[0.0, 1.0]])
    b = np.array([[0.0, 0.5, 1.0]])
    # quantile functions differ by 0.5 on (1/3, 2/3]: 1/6
    assert wasserstein_1d(a, b)[0] == pytest.approx(1 / 6)
    assert wasserstein_1d(a, np.array([[0.0, 0.0, 1.0, 1.0]]))[0] == 0.0
    assert wasserstein_1d(np.array([[0.0, 2.0]]), np.array([[1.0, 4.0]]))[0] == 1.5
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n_a, n_b in [(10, 4), (12, 4), (4, 12), (7, 7)]:  # general, multiple, multiple (swapped), equal
        x, y = np.sort(rng.normal(size=(2, n_a))), np.sort(rng.normal(size=(2, n_b)))
        expected = [stats.wasserstein_distance(x[i], y[i]) for i in range(2)]
        assert wasserstein_1d(x, y) == pytest.approx(expected, rel=1e-6)


def test_laplacian_pyramid_of_constant_image():
    x = torch.full((1, 3, 32, 32), 7.0)
    levels = laplacian_pyramid(x, 3)
    assert [lv.shape[-1] for lv in levels] == [32, 16, 8]
    assert levels[0].abs().max() < 1e-5 and levels[1].abs().max() < 1e-5
    assert torch.allclose(levels[2], torch.full_like(levels[2], 7.0))


def test_swd_self_zero_deterministic_and_growing(renders):
    images = renders[0]
    a, b = images[:24], images[24:]
    assert swd(a, a, **SWD_FAST)["mean"] == 0.0
    # the same images as float [-1, 1] tensors are quantised back to the same uint8
    assert swd(a, from_uint8(a), **SWD_FAST)["mean"] == 0.0
    floor = swd(a, b, seed=3, **SWD_FAST)
    assert set(floor["levels"]) == {32, 16}
    assert floor == swd(a, b, seed=3, **SWD_FAST)
    assert swd(a, b, seed=4, **SWD_FAST)["mean"] != floor["mean"]
    rng = np.random.default_rng(0)
    scores = []
    for sigma in (4, 16, 48):  # the same images with more and more noise
        noisy = np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)
        scores.append(swd(a, noisy, seed=3, **SWD_FAST)["mean"])
    assert 0 < scores[0] < scores[1] < scores[2]
    # a global brightness shift only shows in the Gaussian (16x16) level, not in the band-pass one; it is
    # visible at all because the channel statistics are pooled over both sets
    brighter = swd(a, np.clip(a.astype(int) + 40, 0, 255).astype(np.uint8), seed=3, **SWD_FAST)["levels"]
    assert brighter[16] > 2 * floor["levels"][16] and brighter[32] < 0.2 * floor["levels"][32]
    uneven = swd(a, b[:12], seed=3, **SWD_FAST)
    assert uneven["num_images"] == (24, 12) and uneven["mean"] > 0
    with pytest.raises(ValueError, match="same image shape"):
        swd(a, render_batch(0, range(2), 16)[0])


# -- attributes and timing ------------------------------------------------------------------------------------
def test_table_marginals_and_comparison():
    table = {
        "eyeglasses": np.array([1, 0, 0, 1]),
        "hair_color": np.array([0, 0, 2, 4]),  # black, black, blond, auburn
        "smile": np.array([-0.5, 0.2, 0.3, 0.9]),
        "background_hue": np.array([0.1, 0.2, 0.3, 0.4]),
    }
    m = table_marginals(table)
    assert m["eyeglasses"] == {"kind": "binary", "fraction": 0.5}
    assert m["hair_color"]["histogram"] == {"black": 0.5, "brown": 0.0, "blond": 0.25, "red": 0.0, "auburn": 0.25}
    assert m["smile"]["mean"] == pytest.approx(0.225) and m["smile"]["fraction_positive"] == 0.75
    assert m["background_hue"]["fraction_positive"] is None
    other = table_marginals({**table, "eyeglasses": np.array([1, 1, 1, 0]), "hair_color": np.array([1, 1, 2, 4]),
                             "smile": np.array([-0.5, -0.2, 0.3, 0.9])})
    diff = compare_marginals(m, other)
    assert diff["eyeglasses"]["max_abs_diff_pp"] == pytest.approx(25.0)
    assert diff["hair_color"]["max_abs_diff_pp"] == pytest.approx(50.0)
    assert diff["smile"]["max_abs_diff_pp"] == pytest.approx(25.0)
    assert diff["smile"]["mean_diff"] == pytest.approx(-0.1)
    assert diff["background_hue"] == {"max_abs_diff_pp": None, "mean_diff": 0.0}
    with pytest.raises(KeyError, match="no column 'age'"):
        table_marginals(table, ["age"])


def test_attribute_marginals_with_classifier(classifier):
    images, table = render_batch(0, range(65000, 65032), 64)
    names = ["eyeglasses", "hair_style", "skin_tone"]
    pred = attribute_marginals(classifier, images, names, batch=10)
    truth = table_marginals(table, names)
    # near-perfect heads (test accuracy 0.997) on these 32 test renders agree exactly with the ground truth
    assert pred["eyeglasses"]["fraction"] == truth["eyeglasses"]["fraction"]
    assert pred["hair_style"]["histogram"] == truth["hair_style"]["histogram"]
    assert 0 <= pred["eyeglasses"]["mean_probability"] <= 1
    assert pred["skin_tone"]["mean"] == pytest.approx(truth["skin_tone"]["mean"], abs=0.05)
    with pytest.raises(KeyError, match="no head for"):
        attribute_marginals(classifier, images, ["moustache"])


def test_timer_and_median_seconds():
    with timer() as t:
        time.sleep(0.05)
    assert 0.05 <= t.seconds < 1.0
    durations = iter([0.5, 0.0, 0.3, 0.1])  # the first call is the untimed warm-up
    calls = []

    def fn():
        calls.append(1)
        time.sleep(next(durations))

    assert 0.1 <= median_seconds(fn, repeats=3, warmup=1) < 0.3
    assert len(calls) == 4
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        median_seconds(fn, repeats=0)


# -- the quality benchmark ------------------------------------------------------------------------------------
def _quality_module():
    spec = importlib.util.spec_from_file_location("generator_quality", REPO / "benchmarks" / "generator_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_quality_script(tmp_path):
    from idinvert_plugins import save_pretrained

    narrow = {str(2**k): 8 for k in range(2, 7)}  # 64 px for the real classifier, but cheap
    folder = save_pretrained(tiny_stylegan2(64, channels=narrow), tmp_path / "tiny-g64", kind="generator")
    quality = _quality_module()
    out = tmp_path / "quality"
    threads = torch.get_num_threads()
    try:  # one thread: small convolutions with 2 threads crawl when another process holds the other core
        results = quality.main(["--model", str(folder), "--n-fake", "24", "--n-real", "16", "--out", str(out),
                                "--batch", "8", "--swd-directions", "32", "--swd-repeats", "1", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "tiny-g64" and metrics["n_fake"] == 24
    assert metrics["dataset"]["test_indices"] == [65000, 65016]
    assert metrics["dataset"]["floor_indices"] == [64984, 65000]
    assert set(metrics["swd"]["generated_vs_test"]["levels"]) == {"64", "32", "16"}
    # a random network is far from the renders; train renders are close to the test renders
    assert metrics["swd"]["generated_vs_test"]["mean"] > 2 * metrics["swd"]["floor_train_vs_test"]["mean"]
    assert metrics["fd"]["generated_vs_test"] > 2 * metrics["fd"]["floor_train_vs_test"]
    attrs = metrics["attributes"]
    assert attrs["names"] == ["smile", "eyeglasses", "hair_color", "hair_style", "hair_length", "skin_tone",
                              "face_width", "yaw", "age", "background", "background_hue"]
    assert attrs["test_ground_truth"]["hair_style"]["kind"] == "categorical"
    assert results["fd"]["name"] == "FD-toyfaces-classifier"
    report = (out / "quality.md").read_text()
    assert "FD-toyfaces-classifier (not FID)" in report and "| hair_color |" in report
    assert Image.open(out / "samples.png").size == (8 * 66 + 2, 8 * 66 + 2)
    assert Image.open(out / "truncation.png").size == (6 * 66 + 2, 6 * 66 + 2)
    with pytest.raises(ValueError, match="--n-real must be between 2 and the test split size 5000"):
        quality.main(["--model", str(folder), "--n-real", "6000", "--out", str(out)])
