"""The README's pictures of the studio, remade from the studio itself: ``imgjax pictures``.

Starts ``python app.py`` (or uses a running studio's URL), opens it in headless chromium at desktop
size and saves each picture in ``PICTURES``: the Generate tab as it arrives (a grid of sneakers and
a walk between two ankle boots), the Edit tab as it arrives (a test-set coat projected into the
GAN, its style in every class, the sliders), and the Lab tab after a GAN trained for its recipe's
budget. Needs Debian's chromium and Playwright (``pip install -e ".[test]"``); about four minutes
on 2 cores, most of it the Lab's GAN.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from .bench import CHROMIUM_FLAGS, ROOT, running_app

# Each picture: its file under docs/, and what it shows (the README's caption says the same).
PICTURES = {"studio.png": "the Generate tab as it arrives", "edit.png": "the Edit tab as it arrives",
            "lab.png": "the Lab tab after a GAN trained for its recipe's budget"}
VIEWPORT = {"width": 1280, "height": 1350}


def make_pictures(out: Path = ROOT / "docs", url: str | None = None, lab_seconds: float | None = None,
                  log=print) -> list[Path]:
    """Save every picture of ``PICTURES`` in ``out`` from the studio at ``url`` (default: one started
    here, with a compilation cache of its own); ``lab_seconds``: the Lab GAN's budget (default: its
    recipe's). Returns the files written."""
    from playwright.sync_api import sync_playwright

    from .lab import recipe
    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("imgjax pictures needs Debian's chromium (apt install chromium)")
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if url is None:
            cache = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="imgjax-pictures-")))
            _, port = stack.enter_context(running_app(cache))
            url = f"http://127.0.0.1:{port}/"
        browser = stack.enter_context(sync_playwright()).chromium.launch(executable_path=chromium,
                                                                         args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url)
        page.locator("#generated img").wait_for(timeout=120_000)
        page.locator("#frames img").wait_for(timeout=120_000)
        page.screenshot(path=out / "studio.png")
        log(f"{out / 'studio.png'}: {PICTURES['studio.png']}")

        page.get_by_role("tab", name="Edit").click()
        page.locator("#all-classes img").wait_for(timeout=300_000)  # after the Edit tab's background compile
        page.locator("#edited img").wait_for(timeout=60_000)
        page.screenshot(path=out / "edit.png")
        log(f"{out / 'edit.png'}: {PICTURES['edit.png']}")

        page.get_by_role("tab", name="Lab").click()
        page.get_by_label("GAN (generator)").check()
        page.wait_for_timeout(300)  # the family's recipe fills the knobs
        seconds = lab_seconds or recipe("gan").budget_s
        budget = page.locator("#lab-budget input[type=number]")
        budget.fill(f"{seconds:g}")
        budget.press("Tab")
        page.get_by_role("button", name="Start", exact=True).click()
        page.locator("#lab-result", has_text="your model").wait_for(timeout=(seconds + 300) * 1000)
        page.screenshot(path=out / "lab.png")
        log(f"{out / 'lab.png'}: {PICTURES['lab.png']}")
    return [out / name for name in PICTURES]
