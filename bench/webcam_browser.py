"""Webcam frames per second end to end: headless Chromium's fake camera plays a slow pan over a real photo
into the studio's Translate tab, and we count the distinct translated frames that reach the page.

This includes everything a user's frame goes through: the browser grabbing and uploading it every 0.05 s (the tab's LIVE_SEND_EVERY_S),
Gradio's queue (newest frame wins), the translation, JPEG encoding and the page fetching the result.
Model: the shipped translator (the Translate tab's default), on the fast path the webcam uses.

    python bench/webcam_browser.py [--seconds 15] [--size 256]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from clips import pan_frames, write_y4m  # noqa: E402

PHOTO = ROOT.parent / "shared" / "datasets" / "horse2zebra" / "testA" / "n02381460_1000.jpg"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def measure(page, label: str, seconds: float, size: int) -> tuple[float, str]:
    page.reload()
    page.locator('button[role=tab][data-tab-id="translate"]').click()
    dd = page.locator("#translate-model input")
    dd.click()
    page.get_by_role("option", name=label).click()
    page.locator("#translate-live").get_by_text("Live: translate your webcam").click()
    page.locator("#live-size").get_by_text(f"{size} px").click()
    page.locator("#live-input").get_by_text("Click to Access Webcam").click()
    page.locator('#live-input button[aria-label="capture photo"]').click()
    out = page.locator("#live-output img")
    out.wait_for(timeout=60_000)
    page.wait_for_timeout(3000)                       # past the first frames (model loading, warm-up)
    # The page counts the distinct pictures it is given (a MutationObserver: no polling from here, which would
    # take CPU from the studio and the browser on a small machine).
    page.evaluate("""() => {
        window.__shown = new Set();
        const box = document.querySelector('#live-output');
        const note = () => box.querySelectorAll('img').forEach(im => im.src && window.__shown.add(im.src));
        new MutationObserver(note).observe(box, {subtree: true, childList: true, attributes: true,
                                                 attributeFilter: ['src']});
    }""")
    t0 = time.time()
    page.wait_for_timeout(seconds * 1000)
    shown = page.evaluate("() => window.__shown.size")
    return shown / (time.time() - t0), page.locator("#live-rate").inner_text()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--size", type=int, default=256, choices=[128, 192, 256])
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from studio.app import CSS, THEME, build_app
    from studio.services import Services
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        weights = d / "weights"
        weights.mkdir()
        shutil.copy(ROOT / "weights" / "horse2zebra.safetensors", weights)
        cam = write_y4m(d / "cam.y4m", pan_frames(PHOTO, 4, fps=25, size=320), fps=25)
        demo = build_app(Services(weights_dir=weights, runs_dir=d / "runs"))
        demo.launch(server_name="127.0.0.1", server_port=7941, prevent_thread_lock=True, quiet=True, theme=THEME,
                    css=CSS)
        print(f"{a.size} px working size, {a.seconds:g} s counted per model, camera 320x320 at 25 frames/s, "
              f"frames sent every 0.05 s")
        print("| model | frames/s reaching the page | the page's own figure | load |")
        print("|---|---|---|---|")
        try:
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path="/usr/bin/chromium",
                                      args=ARGS + [f"--use-file-for-fake-video-capture={cam}"])
                page = b.new_context(viewport={"width": 1280, "height": 1000}).new_page()
                page.set_default_timeout(30_000)
                page.goto("http://127.0.0.1:7941/")
                for label in ("horse2zebra (shipped)",):
                    fps, text = measure(page, label, a.seconds, a.size)
                    print(f"| {label} | {fps:.1f} | {text.strip()} | {os.getloadavg()[0]:.1f} |", flush=True)
                b.close()
        finally:
            demo.close()


if __name__ == "__main__":
    main()
