"""A visitor's disk on a shared studio: a zip bomb (a small zip that unpacks to 150 MB) started and stopped
round after round never makes the visitor's folder outgrow their quota, and a bomb larger than what is left
of the quota is refused before it fills the disk, in one line that says what to do."""
from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import emoji_pictures

from studio.services import Services
from studio.visitors import QuotaError

ROUNDS = 1                 # the default suite; `-m slow` runs the 20-round loop


def bomb_zip(path: Path, flat_sides: int = 5000, flats: int = 2) -> Path:
    """64 emoji and `flats` flat BMPs of flat_sides² pixels: about 0.2 MB zipped, 150 MB unpacked."""
    from PIL import Image
    flat = path.parent / "flat.bmp"
    Image.fromarray(np.full((flat_sides, flat_sides, 3), 200, np.uint8)).save(flat)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for f in sorted(emoji_pictures(path.parent / "emoji", 64).iterdir()):
            zf.write(f, f"icons/{f.name}")
        for i in range(flats):
            zf.write(flat, f"icons/flat{i}.bmp")
    flat.unlink()
    return path


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


@pytest.fixture
def space(tmp_path):
    """A shared studio's services (no page needed: the same calls the page makes), serving visitor A."""
    services = Services(weights_dir=tmp_path / "weights", runs_dir=tmp_path / "runs", shared=True)
    services.session = lambda: "visitor-a"
    services.visitors.max_bytes = 200_000_000
    yield services
    services.shutdown(60)


def start_stop_rounds(services: Services, bomb: Path, rounds: int) -> tuple[int, int]:
    """Start a run on the bomb and stop it, `rounds` times; when the quota says no, delete the oldest run and
    start again, as the message tells the visitor to. Returns (largest size seen, final size) of A's folder."""
    home, peak = services.runs_dir, 0
    for i in range(rounds):
        settings = dict(data="upload", upload=str(bomb), minutes=10, batch_size=16, image_size=32, run_name=f"bomb-{i}")
        try:
            services.start_training("dcgan", **settings)
        except QuotaError:
            oldest = min(home.glob("*/last.safetensors"), key=lambda p: p.stat().st_mtime)
            services.delete(str(oldest))
            services.start_training("dcgan", **settings)
        peak = max(peak, folder_bytes(home))
        time.sleep(0.5)
        services.stop_training()
        services.wait(60)
        peak = max(peak, folder_bytes(home))
    return peak, folder_bytes(home)


def check_rounds(space, tmp_path, rounds: int) -> None:
    bomb = bomb_zip(tmp_path / "bomb.zip")
    assert bomb.stat().st_size < 1_000_000
    peak, end = start_stop_rounds(space, bomb, rounds)
    quota = space.visitors.max_bytes
    print(f"{rounds} rounds: largest {peak / 1e6:.0f} MB, at the end {end / 1e6:.1f} MB, quota {quota / 1e6:.0f} MB")
    assert peak > 100_000_000, "the bomb was never unpacked: the loop tested nothing"
    assert peak <= quota and end <= quota, (peak, end, quota)
    assert not list(space.runs_dir.rglob(".data")), "a stopped run kept its unpacked pictures"


def test_a_zip_bomb_started_and_stopped_stays_within_the_quota(space, tmp_path):
    check_rounds(space, tmp_path, ROUNDS)


@pytest.mark.slow
def test_twenty_rounds_of_a_zip_bomb_stay_within_the_quota(space, tmp_path):
    check_rounds(space, tmp_path, 20)


def test_a_bomb_over_what_is_left_of_the_quota_is_refused_before_it_fills_the_disk(space, tmp_path):
    space.visitors.max_bytes = 100_000_000
    bomb = bomb_zip(tmp_path / "bomb.zip")
    with pytest.raises(QuotaError) as refused:
        space.start_training("dcgan", data="upload", upload=str(bomb), minutes=1, batch_size=16, image_size=32)
    message = str(refused.value)
    assert "bomb.zip" in message and "100 MB left" in message and "delete a run" in message, message
    assert "\n" not in message and str(tmp_path) not in message
    assert folder_bytes(space.runs_dir) == 0 and not space.is_training()


def test_one_upload_request_is_capped_as_a_whole_not_per_file():
    """Gradio caps each file; a request carrying many files is capped by the studio as a whole (413 before it
    is parsed), and a single file under the cap still goes through."""
    import gradio as gr
    import httpx
    from conftest import _free_port

    from studio.app import request_limit
    with gr.Blocks() as demo:
        gr.File()
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, max_file_size="2mb",
                app_kwargs={"middleware": [request_limit("2mb")]})
    try:
        upload = f"http://127.0.0.1:{port}/gradio_api/upload"
        part = b"\0" * (1536 * 1024)                                   # 1.5 MB: under the per-file cap
        with httpx.Client(timeout=60) as http:
            many = http.post(upload, files=[("files", (f"p{i}.zip", part)) for i in range(4)])
            assert many.status_code == 413 and "at most 2 MB, all its files together" in many.json()["detail"], many.text
            one = http.post(upload, files=[("files", ("p.zip", part))])
            assert one.status_code == 200, one.text
    finally:
        demo.close()
