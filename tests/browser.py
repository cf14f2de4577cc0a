"""What the browser tests share: Debian's Chromium, the flags it needs here, where screenshots go.

Import it first in a browser test module: it skips the module when Chromium or Playwright is missing.
"""
import contextlib
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip("headless tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

SHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
# Without the background-networking flags Chromium keeps dialling out and this closed network refuses it.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def launch(playwright, extra_args=()):
    """Debian's Chromium with the flags this machine needs (and any test-specific ones)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS + list(extra_args))


def open_translate(page) -> None:
    """The Translate tab, once the page has filled its model list with the shipped translator."""
    page.locator('button[role=tab][data-tab-id="translate"]').click()
    sync_api.expect(page.locator("#translate-model input")).to_have_value("horse2zebra (shipped)", timeout=60_000)


@contextlib.contextmanager
def studio_page(browser, studio, height: int = 900):
    """A fresh page on the studio once no run trains, the Train tab shown."""
    studio.idle()
    context = browser.new_context(viewport={"width": 1280, "height": height})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(studio.url)
    tab(page, "Train").wait_for()
    try:
        yield page
    finally:
        context.close()


def tab(page, name: str):
    """A top-level tab by its id (plug-in tabs may hold inner tabs with the same titles)."""
    return page.locator(f'button[role=tab][data-tab-id="{name.lower()}"]')


def shot(page, name: str, element=None, full: bool = True) -> None:
    """A screenshot for the README (docs/screenshots/NAME.png): the whole page, or one element of it."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)                      # let transitions settle
    (element or page).screenshot(path=str(SHOTS / f"{name}.png"), **({} if element else {"full_page": full}))
