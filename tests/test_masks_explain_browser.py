"""The Masks and Explain tabs in headless Chromium (Debian's package, driven by Python Playwright), with
screenshots for the README (docs/screenshots/masks.png, explain.png). Shares the session's `studio`."""
from __future__ import annotations

import pytest
from browser import launch, shot, sync_api, tab  # skips the module without Chromium

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(studio):
    with sync_api.sync_playwright() as p:
        b = launch(p)
        context = b.new_context(viewport={"width": 1280, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        pg.goto(studio.url)
        yield pg
        context.close()
        b.close()


def pick_model(page, elem_id: str, text: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.click()
    page.locator("ul[role=listbox] li", has_text=text).first.click()


def test_masks_tab_reconstructs_an_example(page):
    tab(page, "Masks").click()
    pick_model(page, "masks-model", "maskrec")
    page.locator("#masks-run").click()
    sync_api.expect(page.locator("#masks-psnr")).to_contain_text("PSNR on the hidden pixels", timeout=60_000)
    shot(page, "masks")


def test_explain_tab_shows_a_heatmap(page):
    tab(page, "Explain").click()
    pick_model(page, "explain-model", "maskrec")
    page.get_by_role("button", name="Example digit").click()
    page.locator("#explain-image img").wait_for()
    page.locator("#explain-run").click()
    sync_api.expect(page.locator("#explain-caption")).to_contain_text("D score", timeout=60_000)
    page.locator("#explain-overlay img").wait_for()
    shot(page, "explain")
