"""The app's photo flow in a real browser (issue 16): headless Chromium ticks "the upload is a photo", uploads a
scene of two toy faces, sees the numbered faces, inverts face 0's crop, pastes it back and gets the full-size PNG.
With ``IDINVERT_SCREENSHOTS=DIR`` the page is saved as ``DIR/photo.png`` (docs/screenshots/photo.png)."""

from __future__ import annotations

import io
import os
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="the app needs gradio (the [demo] / [test] extra)")
from idinvert_plugins.app.browser import AppPage, browser_missing, chromium  # noqa: E402

_missing = browser_missing()
pytestmark = pytest.mark.skipif(_missing is not None, reason=f"browser test skipped: {_missing}")

from app_fixtures import free_port  # noqa: E402

from idinvert_plugins.app import build_app  # noqa: E402
from idinvert_plugins.app.models import ModelSpec  # noqa: E402
from idinvert_plugins.toyfaces.scenes import random_scene  # noqa: E402


def test_photo_flow_in_the_browser(tmp_path):
    import torch
    from selenium.webdriver.common.by import By

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    scene = random_scene(11, (420, 300), faces=2, side=(110, 170), angle=30, resolution=256)
    upload = tmp_path / "group-photo.png"
    Image.fromarray(scene.image).save(upload)
    demo = build_app([ModelSpec("toyfaces-stylegan2-64")], include_bundled=False)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with chromium(height=1600) as driver:
            page = AppPage(driver, f"http://127.0.0.1:{port}/")
            page.open_group("photo-panel")
            page.find("#photo-mode input[type=checkbox]").click()
            page.upload("input-image", str(upload))
            page.wait_new_image("faces-preview", None)
            deadline = time.monotonic() + 60
            while "face 0" not in page.find("#face-pick").get_attribute("innerHTML") and time.monotonic() < deadline:
                time.sleep(0.2)  # the face menu is filled
            page.choose("method", "Encoder")
            page.click("invert-button")
            page.wait_new_image("reconstruction", None)
            page.click("paste-button")
            link = None
            deadline = time.monotonic() + 60
            while link is None and time.monotonic() < deadline:
                found = driver.find_elements(By.CSS_SELECTOR, "#full-photo a")
                link = found[0] if found and found[0].get_attribute("href") else None
                time.sleep(0.2)
            assert link is not None, "no full-size photo offered for download"
            href = link.get_attribute("href")
            assert href.endswith(".png") and "KB" in link.text
            seen = Image.open(io.BytesIO(page.find("#faces-preview img").screenshot_as_png))
            assert seen.width > 100
            shots = os.environ.get("IDINVERT_SCREENSHOTS")
            if shots:
                page.scroll_to("photo-panel")
                Path(shots).mkdir(parents=True, exist_ok=True)
                Image.fromarray(page.screenshot()).save(Path(shots) / "photo.png")
        # what the link serves is the photo, full size, with face 0 replaced
        with urllib.request.urlopen(href, timeout=30) as r:
            data = r.read()
        result = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert result.shape == scene.image.shape
        assert np.abs(result.astype(int) - scene.image).sum() > 0
    finally:
        demo.close()
        torch.set_num_threads(threads)
