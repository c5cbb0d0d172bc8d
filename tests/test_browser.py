"""The app in a real browser: headless Chromium uploads an image, inverts it, moves a slider, downloads the code,
and the screenshot shows the edited face where the page says it is."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

pytest.importorskip("gradio", reason="the app needs gradio (the [demo] / [test] extra)")
from idinvert_plugins.app.browser import AppPage, browser_missing, chromium, crop  # noqa: E402

_missing = browser_missing()
pytestmark = pytest.mark.skipif(_missing is not None, reason=f"browser test skipped: {_missing}")

from app_fixtures import make_tiny_model, running_app  # noqa: E402

from idinvert_plugins.app.examples import example_images  # noqa: E402
from idinvert_plugins.app.models import ModelSpec, load_bundle  # noqa: E402
from idinvert_plugins.app.session import display  # noqa: E402
from idinvert_plugins.editors.directions import Direction  # noqa: E402


def wait_download(folder: Path, known: set[Path], timeout: float = 30.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p not in known and not p.name.endswith(".crdownload")]
        if done:
            return done[0]
        time.sleep(0.1)
    raise TimeoutError(f"no download arrived in {folder}")


def test_upload_invert_edit_download_and_screenshot(tmp_path):
    model = make_tiny_model(tmp_path / "model")
    w_dim = Direction.load(model / "directions" / "age.safetensors").w_dim
    torch.manual_seed(3)  # a direction in a group of its own, which starts collapsed
    Direction(torch.randn(w_dim), name="sefa_00", source="sefa").save(model / "directions" / "sefa_00.safetensors")
    bundle = load_bundle(ModelSpec(str(model)))
    G, age, sefa = bundle.generator, bundle.directions["age"].vector, bundle.directions["sefa_00"].vector
    face = example_images(16)[0][0]
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with running_app(model) as (demo, url), chromium() as driver:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        page = AppPage(driver, url)
        page.upload("input-image", face)
        page.set_number("steps", 3)
        page.click("invert-button")
        page.wait_new_image("reconstruction", None)
        assert "MSE" in page.text("metrics") and "3 iterations" in page.text("metrics")
        page.click("download-code")
        code0 = load_file(str(wait_download(downloads, set())))["code"]

        page.tab("edit")
        before = page.image_src("edit-result")
        page.set_number("direction-0", 3)  # the "age" slider
        page.wait_new_image("edit-result", before)
        known = set(downloads.iterdir())
        page.click("download-code")
        code1 = load_file(str(wait_download(downloads, known)))["code"]
        assert torch.allclose(code1, code0 + 3.0 * age, atol=1e-5)

        # a slider in a collapsed group: open the group, move it, and the sliders add up
        slot = demo.direction_slots().index("sefa_00")
        assert "Unsupervised" in page.text(f"direction-group-{slot // demo.direction_plan.per_group}")
        page.open_group(f"direction-group-{slot // demo.direction_plan.per_group}")
        before = page.image_src("edit-result")
        page.set_number(f"direction-{slot}", 2)
        page.wait_new_image("edit-result", before)
        known = set(downloads.iterdir())
        page.click("download-code")
        code2 = load_file(str(wait_download(downloads, known)))["code"]
        assert torch.allclose(code2, code0 + 3.0 * age + 2.0 * sefa, atol=1e-5)
        before = page.image_src("edit-result")
        page.set_number(f"direction-{slot}", 0)  # back to the age edit alone for the screenshot check
        page.wait_new_image("edit-result", before)

        time.sleep(0.5)  # let the image finish painting
        shot = page.screenshot()
        Image.fromarray(shot).save(tmp_path / "edit-tab.png")
        edited = crop(shot, page.image_box("edit-result"))
        recon = crop(shot, page.image_box("edit-before"))

    with torch.no_grad():
        expected = display(G.synthesis(code1[None], noise_mode="const")[0])
    shown = np.asarray(Image.fromarray(edited).resize(expected.shape[:2][::-1], Image.Resampling.NEAREST))
    assert shown.std() > 10, "the result region of the screenshot is blank"
    error = np.abs(shown.astype(float) - expected).mean()
    assert error < 12, f"the screenshot's result region differs from the edited image (mean |diff| {error:.1f})"
    unedited = np.asarray(Image.fromarray(recon).resize(expected.shape[:2][::-1], Image.Resampling.NEAREST))
    assert np.abs(unedited.astype(float) - expected).mean() > error + 5  # and it is the edit, not the original
