"""Screenshots of every tab of the web app, taken in headless Chromium (the browser test's harness).

    python benchmarks/app_screenshots.py [--model toyfaces-stylegan2-64] [--out docs/screenshots]

Launches the app on the model, drives each tab as a user would (upload an example, invert, move a slider,
interpolate, diffuse, mix, apply a plugin editor) and writes ``invert.png``, ``edit.png``, ``interpolate.png``,
``diffuse.png``, ``style-mix.png`` and ``more-editors.png``. Needs chromium + chromium-driver and selenium.

``edit.png`` is the Edit tab as a user leaves it: every direction group listed (collapsed, with its counts of
clean / weak / not measured directions), the attributes group open, and the group of the edited direction
(``--edit``, default ``sefa_00``: deep in the list) opened and its slider moved. ``edit-all-groups.png`` has every
group open, so every slider's label can be read.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from idinvert_plugins.app import ModelSpec, build_app, launch_options  # noqa: E402
from idinvert_plugins.app.browser import AppPage, browser_missing, chromium  # noqa: E402
from idinvert_plugins.app.examples import example_images  # noqa: E402
from idinvert_plugins.app.models import AUTO, DEFAULT_MODEL  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def full_page(page: AppPage, path: Path, width: int = 1280) -> None:
    """Resize the window to the page's height and save the screenshot."""
    height = page.driver.execute_script("return document.documentElement.scrollHeight")
    page.driver.set_window_size(width, max(800, int(height) + 40))
    time.sleep(0.5)
    page.driver.save_screenshot(str(path))
    print(f"wrote {path}", flush=True)


TABS = ("edit", "more")  # where --stop-after may stop: after the Edit tab, or after all of them


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--encoder", default=AUTO)
    parser.add_argument("--directions", action="append", default=[])
    parser.add_argument("--steps", type=int, default=None, help="inversion iterations (default: the app's)")
    parser.add_argument("--diffuse-steps", type=int, default=None, help="diffusion steps (default: the editor's)")
    parser.add_argument("--edit", default="sefa_00=2", metavar="NAME=STRENGTH",
                        help="the direction moved on the Edit tab (default: sefa_00=2)")
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshots"))
    parser.add_argument("--stop-after", choices=TABS, default=TABS[-1],
                        help="the last tab to drive and shoot (the tabs run in page order; default: all)")
    args = parser.parse_args(argv)
    missing = browser_missing()
    if missing:
        print(f"cannot take screenshots: {missing}", file=sys.stderr)
        return 2
    from selenium.webdriver.common.by import By

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = ModelSpec(args.model, encoder=args.encoder, directions=tuple(args.directions))
    demo = build_app([spec], include_bundled=False)
    bundle = demo.registry.get(None)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True, **launch_options())
    examples = [p for p, _ in example_images(bundle.resolution)]
    try:
        with chromium(1280, 1400) as driver:
            page = AppPage(driver, url, timeout=600)
            page.upload("input-image", examples[0])
            if args.steps is not None:
                page.set_number("steps", args.steps)
            page.click("invert-button")
            page.wait_new_image("reconstruction", None)
            full_page(page, out / "invert.png")

            page.tab("edit")
            if bundle.directions:
                name, _, strength = args.edit.partition("=")
                slots = demo.direction_slots()
                if name not in slots:
                    print(f"--edit: {name!r} is not a direction of {args.model}; it has "
                          f"{sorted(n for n in slots if n)}", file=sys.stderr)
                    return 2
                slider = f"direction-{slots.index(name)}"
                page.open_group(f"direction-group-{slots.index(name) // demo.direction_plan.per_group}")
                before = page.image_src("edit-result")
                page.set_number(slider, float(strength or 2))
                page.wait_new_image("edit-result", before)
            page.driver.execute_script("window.scrollTo(0, 0)")
            full_page(page, out / "edit.png")
            if bundle.directions:
                for group in page.driver.find_elements(By.CSS_SELECTOR, "[id^=direction-group-]"):
                    if group.is_displayed():
                        page.open_group(group.get_attribute("id"))
                page.driver.execute_script("window.scrollTo(0, 0)")
                full_page(page, out / "edit-all-groups.png")
                page.driver.set_window_size(1280, 1400)
            if args.stop_after == "edit":
                return 0

            page.tab("interpolate")
            page.upload("second-image", examples[7])
            page.click("invert-second-button")
            page.wait_new_image("second-reconstruction", None)
            page.click("interpolate-button")
            page.wait_new_image("strip", None)
            full_page(page, out / "interpolate.png")

            page.tab("diffuse")
            page.upload("diffuse-target", examples[3])
            if args.diffuse_steps is not None:
                page.set_number("diffuse-steps", args.diffuse_steps)
            page.click("diffuse-button")
            page.wait_new_image("diffuse-result", None)
            full_page(page, out / "diffuse.png")

            page.tab("style-mix")
            page.click("style-mix-button")
            page.wait_new_image("style-mix-result", None)
            full_page(page, out / "style-mix.png")

            page.tab("more")
            page.click("toward-average-button")
            page.wait_new_image("toward-average-result", None)
            full_page(page, out / "more-editors.png")
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
