"""Drive the app in a headless Chromium (selenium): used by the browser test and the screenshot script.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (or any Chrome + chromedriver on the PATH) and
``pip install selenium`` (in the ``test`` extra). :func:`browser_missing` says what is absent.
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from PIL import Image

# The rectangle where an <img> actually paints its picture: its content box, shrunk as CSS object-fit says.
_PICTURE_BOX_JS = """
const img = document.querySelector(arguments[0]);
const r = img.getBoundingClientRect(), cs = getComputedStyle(img);
const px = (v) => parseFloat(v) || 0;
let left = r.left + px(cs.paddingLeft) + px(cs.borderLeftWidth);
let top = r.top + px(cs.paddingTop) + px(cs.borderTopWidth);
let w = r.width - px(cs.paddingLeft) - px(cs.paddingRight) - px(cs.borderLeftWidth) - px(cs.borderRightWidth);
let h = r.height - px(cs.paddingTop) - px(cs.paddingBottom) - px(cs.borderTopWidth) - px(cs.borderBottomWidth);
const nw = img.naturalWidth, nh = img.naturalHeight, fit = cs.objectFit;
if (nw && nh && fit !== 'fill') {
  let s = Math.min(w / nw, h / nh);
  if (fit === 'scale-down') s = Math.min(s, 1);
  if (fit === 'none') s = 1;
  left += (w - nw * s) / 2; top += (h - nh * s) / 2; w = nw * s; h = nh * s;
}
return [left, top, w, h, window.devicePixelRatio];
"""
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)


def _which(names: tuple[str, ...]) -> str | None:
    return next((p for p in (shutil.which(n) for n in names) if p), None)


def browser_missing() -> str | None:
    """Why the browser cannot run here (None when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium, or the project's [test] extra)"
    if _which(CHROMIUM_NAMES) is None:
        return "no chromium binary on the PATH (apt-get install -y chromium chromium-driver)"
    if _which(DRIVER_NAMES) is None:
        return "no chromedriver on the PATH (apt-get install -y chromium-driver)"
    return None


@contextmanager
def chromium(width: int = 1280, height: int = 1400) -> Iterator[Any]:
    """A headless Chromium webdriver with a fixed window size, quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    reason = browser_missing()
    if reason:
        raise RuntimeError(reason)
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--force-device-scale-factor=1", "--hide-scrollbars"):
        options.add_argument(arg)
    options.binary_location = _which(CHROMIUM_NAMES)
    driver = webdriver.Chrome(service=Service(_which(DRIVER_NAMES)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class AppPage:
    """The app's page in a webdriver, addressed by the ``elem_id`` s the UI sets."""

    def __init__(self, driver: Any, url: str, timeout: float = 60.0) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.timeout = timeout
        self.wait = WebDriverWait(driver, timeout)
        driver.get(url)
        self.find("#input-image")

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC

        return self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))

    def tab(self, tab_id: str) -> None:
        """Open a tab by its id (``invert``, ``edit``, ``interpolate``, ``diffuse``, ``style-mix``, ``more``)."""
        self.find(f"#tab-{tab_id}-button").click()
        time.sleep(0.3)

    def upload(self, elem_id: str, path: str) -> None:
        self.find(f"#{elem_id} input[type=file]").send_keys(str(path))
        self.find(f"#{elem_id} img")

    def choose(self, elem_id: str, label_text: str) -> None:
        """Click the radio option whose label contains ``label_text``."""
        from selenium.webdriver.common.by import By

        self.find(f"#{elem_id}")
        self.driver.find_element(By.XPATH, f"//*[@id='{elem_id}']//label[contains(., '{label_text}')]").click()

    def set_number(self, elem_id: str, value: float) -> None:
        """Type a value into a slider's (or number box's) number field and confirm it, as a user does."""
        from selenium.webdriver.common.keys import Keys

        box = self.find(f"#{elem_id} input[type=number]")
        box.clear()
        box.send_keys(str(value))
        box.send_keys(Keys.ENTER)

    def click(self, elem_id: str) -> None:
        self.find(f"#{elem_id}").click()

    def open_group(self, elem_id: str) -> None:
        """Open the collapsible group (accordion) ``elem_id`` unless it is open; its contents are drawn then."""
        header = self.find(f"#{elem_id} button.label-wrap")
        if "open" not in (header.get_attribute("class") or "").split():
            header.click()
            time.sleep(0.5)

    def image_src(self, elem_id: str) -> str | None:
        from selenium.webdriver.common.by import By

        found = self.driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} img")
        return found[0].get_attribute("src") if found else None

    def wait_new_image(self, elem_id: str, old_src: str | None) -> str:
        """Wait until the image of ``elem_id`` shows something other than ``old_src``; return the new src."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            src = self.image_src(elem_id)
            if src and src != old_src:
                return src
            time.sleep(0.1)
        raise TimeoutError(f"#{elem_id} showed no new image within {self.timeout:.0f} s")

    def text(self, elem_id: str) -> str:
        return self.find(f"#{elem_id}").text

    def screenshot(self) -> np.ndarray:
        """The viewport as an ``HxWx3`` uint8 array."""
        png = self.driver.get_screenshot_as_png()
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def image_box(self, elem_id: str) -> tuple[int, int, int, int]:
        """``(left, top, width, height)`` of the picture drawn inside ``elem_id``'s image element, in screenshot
        pixels (the element may be larger than the picture: CSS ``object-fit`` centres it)."""
        rect = self.driver.execute_script(_PICTURE_BOX_JS, f"#{elem_id} img")
        scale = rect[4] or 1.0
        return tuple(int(round(v * scale)) for v in rect[:4])  # type: ignore[return-value]

    def scroll_to(self, elem_id: str) -> None:
        self.driver.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'center'});",
                                   f"#{elem_id}")
        time.sleep(0.2)


def crop(shot: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    left, top, width, height = box
    return shot[max(top, 0) : top + height, max(left, 0) : left + width]


__all__ = ["AppPage", "browser_missing", "chromium", "crop"]
