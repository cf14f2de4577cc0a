"""Video and live translation (gancore.video) on clips made from real horse2zebra test photos."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from clips import pan_frames, write_clip
from conftest import ROOT

from gancore import video
from gancore.errors import BadInput, TooLarge, Unsupported
from gancore.inference import load_model, translate

SHIPPED = ROOT / "weights" / "horse2zebra.safetensors"


@pytest.fixture(scope="module")
def model():
    return load_model(SHIPPED)


@pytest.fixture(scope="module")
def photo(h2z):
    return sorted((h2z / "testA").glob("*.jpg"))[0]


@pytest.fixture(scope="module")
def clip(photo, tmp_path_factory):
    """0.8 s at 10 frames/s with a tone: 8 frames, cheap enough to translate in a test."""
    return write_clip(tmp_path_factory.mktemp("clips") / "pan.mp4", pan_frames(photo, 0.8, fps=10), fps=10,
                      audio_s=0.8)


def test_a_clip_comes_back_translated_with_its_frames_rate_and_sound(model, clip, tmp_path):
    calls = []
    r = video.translate_clip(model, clip, tmp_path / "out.mp4", deflicker=0.0, progress=lambda d, t: calls.append(d))
    info = video.probe(r["output"])
    assert (info.width, info.height, round(info.fps)) == (256, 256, 10)
    assert info.has_audio and r["audio"]
    assert r["frames"] == 8 and calls[-1] == 8
    frames = list(video.read_frames(r["output"]))
    assert len(frames) == 8
    # Without blending, the first frame is the photo translator's answer (up to H.264 loss) and not the input.
    first_in = next(video.read_frames(clip))
    expected = translate(model, first_in)["output"].astype(np.float32)
    assert np.abs(frames[0].astype(np.float32) - expected).mean() < 6
    assert np.abs(frames[0].astype(np.float32) - first_in.astype(np.float32)).mean() > 10


def test_a_silent_clip_just_works(model, photo, tmp_path):
    silent = write_clip(tmp_path / "silent.mp4", pan_frames(photo, 0.3, fps=10, size=128), fps=10)
    assert not video.probe(silent).has_audio
    r = video.translate_clip(model, silent, tmp_path / "out.mp4")
    assert r["frames"] == 3 and not r["audio"] and not video.probe(r["output"]).has_audio


def test_an_over_long_clip_is_refused_before_any_work(model, photo, tmp_path):
    long = write_clip(tmp_path / "long.mp4", pan_frames(photo, 3.0, fps=10, size=32), fps=10)
    with pytest.raises(TooLarge, match=r"3\.0 s long; the limit is 2 s"):
        video.translate_clip(model, long, tmp_path / "out.mp4", max_seconds=2)
    assert not (tmp_path / "out.mp4").exists()
    # A header that says nothing (or lies) is caught while decoding.
    with pytest.raises(TooLarge, match="limit"):
        list(video.read_frames(long, max_seconds=1))


def test_corrupt_clips_get_a_clear_message(model, clip, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(BadInput, match="junk.mp4: not a readable video"):
        video.translate_clip(model, junk, tmp_path / "out.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(Path(clip).read_bytes()[: Path(clip).stat().st_size // 3])   # an interrupted download
    with pytest.raises(BadInput, match="cut.mp4"):
        video.translate_clip(model, cut, tmp_path / "out.mp4")
    with pytest.raises(BadInput, match="no such file"):
        video.probe(tmp_path / "missing.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_blending_reduces_flicker_on_a_real_pan(model, photo):
    """Consecutive-frame difference of the outputs drops below plain per-frame translation, while the
    outputs stay close to the model's own answer (128 px to keep the test cheap)."""
    frames = np.stack(list(pan_frames(photo, 1.2, fps=10, size=128)))
    tr = video.FrameTranslator(model, "AB", work_size=128)
    plain = np.stack(list(video.translate_frames(tr, frames, deflicker=0.0)))
    steady = np.stack(list(video.translate_frames(tr, frames, deflicker=0.7)))
    assert video.flicker(steady) < 0.9 * video.flicker(plain)
    # ...and moves the picture less than one frame of the plain translation changes it.
    assert np.abs(steady.astype(np.float32) - plain.astype(np.float32)).mean() < 0.8 * video.flicker(plain)


def test_flicker_is_the_mean_consecutive_difference():
    a = np.zeros((4, 4, 3), np.uint8)
    assert video.flicker([a, a + 10, a + 10]) == pytest.approx(5.0)


def test_live_translator_keeps_the_shape_and_counts_frames(model, photo):
    live = video.LiveTranslator(model, "AB", work_size=128, deflicker=0.5)
    for f in pan_frames(photo, 0.3, fps=10, size=160):
        rgba = np.concatenate([f, np.full(f.shape[:2] + (1,), 255, np.uint8)], axis=2)   # a browser frame
        out = live(rgba)
        assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    assert live.fps > 0 and live.last_ms > 0
    with pytest.raises(BadInput):
        live(np.zeros((4, 4), np.uint8))


def test_noise_models_cannot_translate_video():
    with pytest.raises(Unsupported):
        video.FrameTranslator(load_model(ROOT / "weights" / "dcgan_mnist.safetensors"))


def test_cli_translates_a_clip(clip, tmp_path):
    """`gancore translate CKPT clip.mp4 --out DIR` writes DIR/pan_AB.mp4 beside any photos."""
    out = tmp_path / "out"
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "gancore", "translate", str(SHIPPED), str(clip), "--out", str(out),
                        "--max-seconds", "5"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (out / "pan_AB.mp4").is_file() and video.probe(out / "pan_AB.mp4").has_audio
    assert "8 frames" in r.stdout
    long = subprocess.run([sys.executable, "-m", "gancore", "translate", str(SHIPPED), str(clip), "--out", str(out),
                           "--max-seconds", "0.5"], capture_output=True, text=True, env=env, timeout=300)
    assert long.returncode != 0 and "limit is 0.5 s" in long.stdout + long.stderr


# ----------------------------------------------------------------------------------------------------
# Bounded media: frames meet the photos' size rules; clips are capped in frames, rate and decoded pixels

def _flat_frames(n: int, w: int, h: int):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_a_strip_clip_is_refused_in_one_line_before_any_scaling(model, tmp_path):
    strip = write_clip(tmp_path / "strip.mp4", _flat_frames(2, 4096, 8), fps=10)
    for attempt in (lambda: video.translate_clip(model, strip, tmp_path / "out.mp4"),
                    lambda: list(video.read_frames(strip))):
        with pytest.raises(BadInput, match=r"^strip\.mp4: a frame is too elongated \(4096x8\)") as e:
            attempt()
        assert "\n" not in str(e.value)
    assert not (tmp_path / "out.mp4").exists()


def test_a_strip_camera_frame_is_refused_not_scaled_to_256x131072(model):
    live = video.LiveTranslator(model, "AB", work_size=64)
    with pytest.raises(BadInput, match=r"a camera frame is too elongated \(4096x8\)"):
        live(np.zeros((8, 4096, 3), np.uint8))
    with pytest.raises(TooLarge, match="too large"):
        live(np.zeros((8000, 8000, 3), np.uint8)[:, :, :3])      # 64 megapixels: over the photos' cap too
    tr = video.FrameTranslator(model, "AB", work_size=64)
    with pytest.raises(BadInput, match=r"a frame is too elongated \(8x4096\)"):
        tr.to_input(np.zeros((1, 4096, 8, 3), np.uint8))


def test_a_1000_fps_clip_is_resampled_or_refused_within_seconds(model, tmp_path):
    fast = write_clip(tmp_path / "fast.mp4", _flat_frames(1500, 32, 32), fps=1000)     # 1.5 s at 1000 fps
    t = time.perf_counter()
    frames = list(video.read_frames(fast))
    assert len(frames) <= 1.5 * video.MAX_FPS + 1 and time.perf_counter() - t < 10
    r = video.translate_clip(model, fast, tmp_path / "out.mp4", work_size=32, keep_audio=False)
    assert r["fps"] == video.MAX_FPS and r["frames"] == len(frames)
    t = time.perf_counter()
    with pytest.raises(TooLarge, match=r"fast\.mp4: the clip holds 1500 frames"):     # from the header
        video.translate_clip(model, fast, tmp_path / "out2.mp4", max_seconds=2)
    with pytest.raises(TooLarge, match=r"fast\.mp4: the clip holds more than \d+ frames"):   # while decoding
        list(video.read_frames(fast, max_seconds=2))
    assert time.perf_counter() - t < 10


def test_decoded_pixels_and_memory_are_capped_with_the_clip_name(model, tmp_path, monkeypatch):
    clip = write_clip(tmp_path / "small.mp4", _flat_frames(6, 64, 48), fps=10)
    monkeypatch.setattr(video, "MAX_DECODED_PIXELS", 64 * 48 * 3)
    with pytest.raises(TooLarge, match=r"small\.mp4: the clip decodes to .* gigapixels"):
        video.translate_clip(model, clip, tmp_path / "out.mp4")
    with pytest.raises(TooLarge, match=r"small\.mp4: the clip decodes to more than"):
        list(video.read_frames(clip))
    monkeypatch.setattr(video, "MAX_DECODED_PIXELS", 10**12)

    def no_memory(frame):
        raise MemoryError
    monkeypatch.setattr(video, "_rgb", no_memory)
    with pytest.raises(TooLarge, match=r"small\.mp4: the clip is too large to decode"):
        video.translate_clip(model, clip, tmp_path / "out.mp4")
