"""What the browser tests share: Debian's Chromium, the flags it needs here, where screenshots go.

Import it first in a browser test module: it skips the module when Chromium or Playwright is missing.
"""
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
    """The Translate tab, once the page has filled its model list with the shipped translator (a person clicks
    after seeing it; a click before the list loads asks them to choose a model first)."""
    page.locator('button[role=tab][data-tab-id="translate"]').click()
    sync_api.expect(page.locator("#translate-model input")).to_have_value("horse2zebra (shipped)", timeout=60_000)
