"""Webcam, video clip and drawing in headless Chromium, with screenshots in docs/screenshots/.

The webcam is Chromium's fake camera playing a slow pan over a horse2zebra test photo
(--use-file-for-fake-video-capture), so the stream carries a real photo through the real page; the test
counts the translated frames that reach the page per second.
"""
from __future__ import annotations

import time

import pytest
from browser import launch, open_translate, shot, studio_page, sync_api, tab  # skips the module without Chromium
from clips import pan_frames, write_clip, write_y4m

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def camera_file(h2z, tmp_path_factory):
    photo = sorted((h2z / "testA").glob("*.jpg"))[0]
    return write_y4m(tmp_path_factory.mktemp("cam") / "pan.y4m", pan_frames(photo, 4, fps=25, size=320), fps=25)


@pytest.fixture(scope="module")
def browser(camera_file):
    args = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                   f"--use-file-for-fake-video-capture={camera_file}"]
    with sync_api.sync_playwright() as p:
        b = launch(p, args)
        yield b
        b.close()


@pytest.fixture()
def page(browser, studio):
    with studio_page(browser, studio, height=1000) as pg:
        yield pg


def test_webcam_stream_is_translated_live(page):
    open_translate(page)
    page.locator("#translate-model input").wait_for()
    page.locator("#translate-live").get_by_text("Live: translate your webcam").click()
    page.locator("#live-input").get_by_text("Click to Access Webcam").click()
    page.locator('#live-input button[aria-label="capture photo"]').click()        # start streaming
    out = page.locator("#live-output img")
    out.wait_for(timeout=60_000)
    # Count distinct frames that reach the page over a few seconds.
    seen, t0 = set(), time.time()
    while time.time() - t0 < 8:
        src = out.get_attribute("src")
        if src:
            seen.add(src)
        page.wait_for_timeout(20)
    fps = len(seen) / (time.time() - t0)
    print(f"webcam frames reaching the page: {fps:.1f}/s; page says: {page.locator('#live-rate').inner_text()}")
    assert len(seen) >= 3                                   # the picture keeps changing
    page.locator("#live-rate").get_by_text("frames/s").wait_for()
    shot(page, "live-webcam", page.locator("#translate-live"))


def test_a_clip_is_translated_with_a_progress_bar(page, h2z, tmp_path):
    photo = sorted((h2z / "testA").glob("*.jpg"))[2]
    clip = write_clip(tmp_path / "horse-pan.mp4", pan_frames(photo, 1.0, fps=10), fps=10, audio_s=1.0)
    open_translate(page)
    page.locator("#translate-video").get_by_text("Video: translate a clip").click()
    page.locator("#video-input input[type=file]").set_input_files(str(clip))
    page.locator("#video-input video").wait_for()
    page.locator("#video-go").click()
    page.locator("#video-output").get_by_text("frames", exact=False).or_(
        page.locator("#video-output .progress-text")).first.wait_for(timeout=30_000)   # the progress bar
    page.locator("#video-note").get_by_text("sound kept").wait_for(timeout=180_000)
    page.locator("#video-output video").wait_for()
    assert page.get_by_text("Traceback").count() == 0
    shot(page, "video", page.locator("#translate-video"))


def test_a_corrupt_clip_gets_a_one_line_message(page, tmp_path):
    junk = tmp_path / "holiday.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42 broken" * 50)
    open_translate(page)
    page.locator("#translate-video").get_by_text("Video: translate a clip").click()
    page.locator("#video-input input[type=file]").set_input_files(str(junk))
    page.locator("#video-go").click()
    page.get_by_text("not a readable video").first.wait_for(timeout=60_000)
    assert page.get_by_text("Traceback").count() == 0


def draw(page, points) -> None:
    canvas = page.locator("#draw-pad canvas").first
    box = canvas.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + points[0][0] * w, y0 + points[0][1] * h)
    page.mouse.down()
    for fx, fy in points[1:]:
        page.mouse.move(x0 + fx * w, y0 + fy * h, steps=12)
    page.mouse.up()


def test_draw_a_digit_find_it_and_edit_it(page):
    tab(page, "Explore").click()
    page.locator("#explore-model input").wait_for()
    page.locator("#explore-draw").get_by_text("Draw into the model").click()
    page.locator("#draw-pad canvas").first.wait_for()
    page.locator("#draw-go").click()                                  # nothing drawn yet
    page.get_by_text("the drawing is empty").first.wait_for(timeout=60_000)
    page.locator('#draw-pad button[aria-label="Brush"]').click()
    draw(page, [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)])               # a seven
    page.locator("#draw-go").click()
    page.locator("#draw-note").get_by_text("dB").wait_for(timeout=60_000)
    page.locator("#draw-pair img").wait_for()
    before = page.locator("#draw-edited img").get_attribute("src")
    track = page.locator("#explore-dir-1 input[type=range]")
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.85, y, steps=6)
    page.mouse.up()
    deadline = time.time() + 30
    while page.locator("#draw-edited img").get_attribute("src") == before and time.time() < deadline:
        page.wait_for_timeout(100)
    assert page.locator("#draw-edited img").get_attribute("src") != before
    assert "latent" in page.locator("#draw-latent").inner_text()          # the code, ready to download
    shot(page, "draw", page.locator("#explore-draw"))
