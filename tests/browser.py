"""Debian's Chromium driven by Playwright (nothing downloaded), for the pages' tests: launch,
screenshots a person can open, and the axe-core accessibility check."""
import os
import pathlib
import re
import shutil

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright import sync_api as playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# On a laptop without Debian's chromium the page tests skip; CI (which installs it) runs them.
needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"), reason="Debian's chromium is not installed"
)
# Written by the tests, ignored by git: look at them after a run.
SCREENSHOTS = pathlib.Path(__file__).resolve().parent.parent / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# What axe may report: "minor" and "moderate" findings are listed in the failure of a serious one.
BLOCKING = {"serious", "critical"}


def launch(p, *args):
    """Chromium, headless, with the flags this machine needs and any more `args`."""
    return p.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync", *args],
    )


@pytest.fixture
def browser():
    with playwright.sync_playwright() as p:
        browser = launch(p)
        yield browser
        browser.close()


def screenshot(page, name):
    """The page at desktop and at phone width, and at desktop in the dark scheme, in
    screenshots/ (the viewport and the scheme are put back)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    size = page.viewport_size
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    for label, viewport, scheme in (("desktop", DESKTOP, "light"), ("phone", PHONE, "light"),
                                    ("desktop-dark", DESKTOP, "dark")):
        page.set_viewport_size(viewport)
        page.emulate_media(color_scheme=scheme)
        page.wait_for_timeout(150)
        page.screenshot(path=str(SCREENSHOTS / f"{slug}-{label}.png"), full_page=True)
    page.set_viewport_size(size)
    page.emulate_media(color_scheme="light")


_axe = Axe()


def assert_accessible(page, name):
    """No serious or critical axe-core violation on the page as it is now, in the light and in
    the dark scheme (colour contrast differs)."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        violations = _axe.run(page).response["violations"]
        blocking = [v for v in violations if v.get("impact") in BLOCKING]
        assert not blocking, f"{name} ({scheme}): " + "; ".join(
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in blocking
        )
    page.emulate_media(color_scheme="light")
