"""Debian's Chromium driven by Playwright (nothing downloaded), for the pages' tests: launch,
screenshots a person can open, the axe-core accessibility check, and a watch on the pages'
Content-Security-Policy (conftest.py's `browser` fixture fails every page test whose pages it
refused anything)."""
import contextlib
import http.server
import os
import re
import shutil
import threading

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright import sync_api as playwright

from tests.support import REPOSITORY

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# On a laptop without Debian's chromium the page tests skip; CI (which installs it) runs them.
needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"), reason="Debian's chromium is not installed"
)
# Written by the tests, ignored by git: look at them after a run.
SCREENSHOTS = REPOSITORY / "screenshots"
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


# In every frame of every page, before the page's own scripts: what the page's CSP refused.
CSP_LISTENER = """
window.addEventListener("securitypolicyviolation", event => window.__cspViolation({
  directive: event.effectiveDirective, blocked: event.blockedURI, source: event.sourceFile,
  line: event.lineNumber, sample: event.sample, page: event.documentURI,
}), true);
"""


class CspWatch:
    """Collects what the pages' Content-Security-Policy refused: each `securitypolicyviolation`
    event a page saw and each console message of Chromium's that names the policy (a refusal
    no page sees, such as a frame-ancestors one, is only logged)."""

    def __init__(self):
        self.reports = []

    def watch(self, context):
        context.expose_binding("__cspViolation", lambda source, report: self.reports.append(f"violation: {report}"))
        context.add_init_script(CSP_LISTENER)
        context.on("console", self._console)

    def _console(self, message):
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.reports.append(f"console {message.type}: {message.text}")

    def take(self):
        """The reports so far, forgotten: a test that provokes a refusal checks and takes it."""
        reports, self.reports = self.reports, []
        return reports

    def flush(self, browser):
        """A round trip to each open page, so that a report already sent is received."""
        for context in browser.contexts:
            for page in context.pages:
                try:
                    page.evaluate("0")
                except playwright.Error:
                    pass  # closed, or navigating: nothing to wait for


class WatchedBrowser:
    """Chromium whose every context, and so every page, is watched by `csp`. Otherwise the
    Browser it wraps (new_page makes a context of its own, closed with the browser)."""

    def __init__(self, browser):
        self._browser = browser
        self.csp = CspWatch()

    def new_context(self, **options):
        context = self._browser.new_context(**options)
        self.csp.watch(context)
        return context

    def new_page(self, **options):
        return self.new_context(**options).new_page()

    def __getattr__(self, name):
        return getattr(self._browser, name)


@contextlib.contextmanager
def another_origin(html):
    """A page of another site (another port of this machine): its URL, serving `html` at /."""
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


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
