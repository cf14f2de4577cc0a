"""The studio in headless Chromium (Debian's package, driven by Python Playwright): every tab, a short
training to its end, a dragged latent slider, a translated example, a broken upload, and screenshots
for the README (docs/screenshots/).
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from browser import launch, open_translate, shot, studio_page, sync_api, tab  # skips the module without Chromium

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture()
def page(browser, studio):
    with studio_page(browser, studio) as pg:
        yield pg


def img_src(page, selector: str) -> str | None:
    loc = page.locator(f"{selector} img")
    return loc.first.get_attribute("src") if loc.count() else None


def wait_src_change(page, selector: str, old: str | None, timeout_s: float = 30) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        src = img_src(page, selector)
        if src and src != old:
            return src
        page.wait_for_timeout(100)
    raise AssertionError(f"{selector}: image did not change within {timeout_s}s")


def start(page) -> None:
    """Click Start and see the run start; otherwise fail with what the page says instead."""
    page.locator("#train-start").click()
    note = page.locator("#train-note")
    try:
        note.get_by_text("Started").wait_for(timeout=60_000)
    except sync_api.TimeoutError:
        raise AssertionError(f"the run did not start; the page says: {note.inner_text()!r}") from None


def upload(page, box: str, path) -> None:
    """Give the Train tab's upload box `box` a file once the box is shown, and see its name there. The choice
    that shows the box is a server round trip whose update may wipe a file given before it lands (on a
    loaded machine it can land after the box is visible): a person would give the file again, and so does
    this, up to three times."""
    page.locator(box).wait_for(state="visible")
    name = page.locator(box).get_by_text(Path(path).name)
    for attempt in range(3):
        page.locator(f"{box} input[type=file]").set_input_files(str(path))
        try:
            return name.wait_for(timeout=20_000)
        except sync_api.TimeoutError:
            if attempt == 2:
                raise


def test_every_tab_opens(page):
    for name in ["Train", "Explore", "Translate", "Masks", "Explain", "Export", "Models"]:
        tab(page, name).click()
        assert tab(page, name).get_attribute("aria-selected") == "true"
        assert tab(page, name).inner_text().strip() == name
    tab(page, "Models").click()
    sync_api.expect(page.locator("#models-table")).to_contain_text("tiny-dcgan")
    shot(page, "models")


def test_training_runs_to_its_end_and_shows_samples(page, studio):
    page.locator("#train-budget input").fill("10")
    start(page)
    # Ten steps may be over before the page polls, so "running" need not be seen; "finished" must.
    page.locator('#train-progress [data-status="finished"]').wait_for(timeout=180_000)
    grid = page.locator("#train-grid img")
    grid.wait_for()
    assert grid.get_attribute("src")
    page.get_by_text("finished after 10 steps").wait_for()
    shot(page, "train")
    # The new run is offered in Explore.
    tab(page, "Explore").click()
    page.locator("#explore-model input").click()
    page.get_by_role("option").filter(has_text="dcgan-").first.wait_for()
    page.keyboard.press("Escape")


def test_training_on_uploaded_pictures_shows_the_quality_curve_and_verdict(page, studio, tmp_path):
    from helpers import emoji_zip
    page.get_by_role("radio", name="My images (upload a .zip)").check()
    upload(page, "#train-upload", emoji_zip(tmp_path / "icons.zip"))
    page.locator("#train-budget input").fill("80")
    start(page)
    page.get_by_text("finished after 80 steps").wait_for(timeout=240_000)
    verdict = page.locator("#train-verdict .gs-verdict")
    verdict.wait_for()
    assert "KID" in verdict.inner_text()
    page.locator("#train-quality svg, #train-quality canvas").first.wait_for()
    shot(page, "train_quality")


def test_reload_shows_the_running_job_and_stop_saves_it(page, studio):
    page.locator("#train-budget input").fill("2")
    page.get_by_role("radio", name="minutes").check()
    page.locator("#train-start").click()
    page.locator('#train-progress [data-status="running"]').wait_for(timeout=60_000)
    # Reloading shows the run where it is; the Start button is off while it runs.
    page.reload()
    page.locator('#train-progress [data-status="running"]').wait_for(timeout=30_000)
    assert page.locator("#train-start").is_disabled()
    # (A second start through the API is refused with a message: tests/test_studio_api.py.)
    page.locator("#train-stop").click()
    page.locator('#train-progress [data-status="stopped"]').wait_for(timeout=120_000)


def test_latent_slider_drag_changes_the_image(page):
    tab(page, "Explore").click()
    before = wait_src_change(page, "#explore-image", None)
    shot(page, "explore-before", full=False)
    track = page.locator("#explore-dir-1 input[type=range]")
    box = track.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    for f in (0.6, 0.7, 0.8, 0.9):                  # a real drag: several input events
        page.mouse.move(box["x"] + box["width"] * f, y, steps=3)
        page.wait_for_timeout(50)
    page.mouse.up()
    wait_src_change(page, "#explore-image", before)
    shot(page, "explore")


def test_translate_a_bundled_example(page):
    """An example translates at once, and the directions keep the model's own words (an example brings back
    the choices the page was built with)."""
    open_translate(page)
    direction = page.locator("#translate-direction")
    sync_api.expect(direction).to_contain_text("Horse → zebra")
    sync_api.expect(direction).not_to_contain_text("A → B")
    page.locator("#translate-examples [data-testid=dataset-cell-0-0]").click()
    page.locator("#translate-output img").wait_for(timeout=60_000)
    page.locator("#translate-recon img").wait_for(timeout=60_000)
    sync_api.expect(direction).not_to_contain_text("A → B")
    shot(page, "translate")


def test_an_example_clicked_before_the_model_list_loads_is_translated_once_it_does(page, studio):
    # Hold back the requests that fill the Translate tab's model list, click an example, then let them through.
    fill = {d["id"] for d in studio.demo.config["dependencies"]
            if d["api_name"] in ("translate_models", "translate_models_on_load")}
    held = []

    def hold_the_model_list(route):
        if (route.request.post_data_json or {}).get("fn_index") in fill:
            held.append(route)
        else:
            route.continue_()

    page.route("**/queue/join*", hold_the_model_list)
    page.reload()
    tab(page, "Translate").click()
    page.locator("#translate-examples [data-testid=dataset-cell-0-0]").click()
    page.locator("#translate-input img").wait_for()
    page.wait_for_timeout(1000)
    assert held and page.locator("#translate-model input").input_value() == ""
    assert page.locator("#translate-output img").count() == 0
    for route in held:
        route.continue_()
    page.locator("#translate-output img").wait_for(timeout=60_000)
    sync_api.expect(page.locator("#translate-model input")).to_have_value("horse2zebra (shipped)")


def test_broken_upload_shows_a_friendly_message(page, tmp_path):
    broken = tmp_path / "holiday-photos.zip"
    broken.write_bytes(b"not a zip at all")
    page.get_by_role("radio", name="My images (upload a .zip)").check()
    upload(page, "#train-upload", broken)
    page.locator("#train-start").click()
    page.get_by_text("is not a readable zip file of images").wait_for()
    assert page.get_by_text("Traceback").count() == 0
    shot(page, "error", full=False)


def test_phone_width(browser, studio):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    pg = context.new_page()
    pg.goto(studio.url)
    tab(pg, "Explore").click()
    wait_src_change(pg, "#explore-image", None)
    # Nothing may stick out sideways on a phone.
    assert pg.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    shot(pg, "phone", full=False)
    context.close()


def train_a_translator(page, tmp_path, h2z, budget: str, unit: str) -> None:
    """Upload two sets of 64-px photos (horses and zebras) as a designer's pair, train CUT for `budget`
    `unit`, and see the samples change and the curve's verdict in words."""
    from helpers import photo_zip
    page.get_by_role("radio", name="CUT").check()
    upload(page, "#train-upload", photo_zip(tmp_path / "horses.zip", h2z, "testA"))
    upload(page, "#train-upload-b", photo_zip(tmp_path / "zebras.zip", h2z, "testB"))
    page.get_by_role("radio", name=unit).check()
    page.locator("#train-budget input").fill(budget)
    shown = img_src(page, "#train-grid")         # an earlier run's samples, if this visitor had one
    start(page)
    first = wait_src_change(page, "#train-grid", shown, timeout_s=120)
    page.locator('#train-progress [data-status="finished"]').wait_for(timeout=240_000)
    wait_src_change(page, "#train-grid", first, timeout_s=30)
    verdict = page.locator("#train-verdict .gs-verdict")
    verdict.wait_for()
    assert "KID" in verdict.inner_text() and "changes the photos by" in verdict.inner_text()


def test_two_picture_sets_train_a_translator_with_its_curve(page, studio, tmp_path, h2z):
    train_a_translator(page, tmp_path, h2z, "60", "steps")
    shot(page, "train_translator")


@pytest.mark.slow
def test_a_minute_on_two_picture_sets_changes_the_samples(page, studio, tmp_path, h2z):
    train_a_translator(page, tmp_path, h2z, "1", "minutes")
