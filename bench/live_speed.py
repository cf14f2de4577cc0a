"""Speed of the moving-picture features on this machine's CPU, with the load average beside each figure.

  live    webcam frames/s: `LiveTranslator` fed back-to-back with 320x320 frames of a pan over a real photo
          (frame in, translated frame out, as the stream handler does), at working sizes 256/192/128
  video   a 10-second 256-px 25 frames/s clip with sound (pan over a real photo) through `translate_clip`:
          wall time / clip length (target <= 4)

Models: the shipped horse2zebra teacher (32 channels) and the shipped mobile student
(weights/horse2zebra_student.safetensors: 16 channels, depthwise-separable blocks; the Translate tab's
default). Process CPU seconds are printed too: on a machine shared with other jobs they say more than wall
time about what the code itself costs.

    python bench/live_speed.py [--threads 2] [--frames 20] [--video-seconds 10] [--skip-video-32]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clips import pan_clip, pan_frames  # noqa: E402

from gancore.inference import load_model  # noqa: E402
from gancore.video import LiveTranslator, translate_clip  # noqa: E402

PHOTO = ROOT.parent / "shared" / "datasets" / "horse2zebra" / "testA" / "n02381460_1000.jpg"


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def models():
    return {"shipped horse2zebra (32 ch)": load_model(ROOT / "weights" / "horse2zebra.safetensors"),
            "shipped student (16 ch, depthwise)": load_model(ROOT / "weights" / "horse2zebra_student.safetensors")}


def live(models_, n: int):
    frames = list(pan_frames(PHOTO, n / 25, fps=25, size=320))
    print("| model | working size | frames/s | ms per frame (p50) | CPU s per frame | load |")
    print("|---|---|---|---|---|---|")
    for name, m in models_.items():
        for size in (256, 192, 128):
            lt = LiveTranslator(m, "AB", work_size=size)
            for f in frames[:3]:                       # warm-up
                lt(f)
            ms, c0, t0 = [], time.process_time(), time.perf_counter()
            for f in frames:
                lt(f)
                ms.append(lt.last_ms)
            wall = time.perf_counter() - t0
            cpu = (time.process_time() - c0) / len(frames)
            print(f"| {name} | {size} | {len(frames) / wall:.1f} | {np.median(ms):.0f} | {cpu:.2f} | {load()} |",
                  flush=True)


def video(models_, seconds: float, skip: set):
    with tempfile.TemporaryDirectory() as d:
        clip = pan_clip(PHOTO, Path(d) / "pan.mp4", seconds=seconds, fps=25, size=256, audio=True)
        print(f"\nclip: {seconds:g} s, 25 frames/s, 256x256, AAC sound, pan over {PHOTO.name}")
        print("| model | frames | wall s | time / clip length | CPU s | load before → after |")
        print("|---|---|---|---|---|---|")
        for name, m in models_.items():
            if name in skip:
                continue
            before, c0 = load(), time.process_time()
            r = translate_clip(m, clip, Path(d) / "out.mp4", max_seconds=60)
            cpu = time.process_time() - c0
            print(f"| {name} | {r['frames']} | {r['elapsed_s']:.1f} | {r['time_ratio']:.2f}x | {cpu:.0f} | "
                  f"{before} → {load()} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--video-seconds", type=float, default=10.0)
    ap.add_argument("--skip-video-32", action="store_true", help="the 32-channel clip takes minutes on a busy machine")
    ap.add_argument("--only", choices=["live", "video"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"{a.threads} torch threads, {os.cpu_count()} cores visible, {load()}, {time.strftime('%H:%M UTC', time.gmtime())}")
    ms = models()
    if a.only != "video":
        live(ms, a.frames)
    if a.only != "live":
        video(ms, a.video_seconds, {"shipped horse2zebra (32 ch)"} if a.skip_video_32 else set())


if __name__ == "__main__":
    main()
