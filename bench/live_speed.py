"""Speed of the moving-picture features on this machine's CPU, with the load average beside each figure.

  live    webcam frames/s: `LiveTranslator` fed back-to-back with 320x320 frames of a pan over a real photo
          (frame in, translated frame out, as the stream handler does), at working sizes 256/192/128
  video   a 10-second 256-px 25 frames/s clip with sound (pan over a real photo) through `translate_clip`:
          wall time / clip length (target <= 4)

Model: the shipped translator (weights/horse2zebra.safetensors: FastCUT's mobile generator, 16 channels,
depthwise-separable blocks), in PyTorch eager and on the fast path the studio's webcam uses
(`gancore.deploy.fast`, ONNX Runtime where it is faster); clips run in PyTorch. Process CPU seconds are
printed too: on a machine shared with other jobs they say more than wall time about what the code costs.

    python bench/live_speed.py [--threads 2] [--frames 20] [--video-seconds 10]
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


def models(threads: int):
    """name -> (model, the generator to run it with: None for PyTorch eager, or a fast-path runner)."""
    os.environ["GANCORE_RUNTIME"] = "onnxruntime"          # built before the timing starts
    os.environ["GANCORE_CACHE"] = tempfile.mkdtemp(prefix="live-speed-")
    from gancore.deploy.fast import generator_runner
    path = ROOT / "weights" / "horse2zebra.safetensors"
    model = load_model(path)
    return {"shipped translator, PyTorch eager": (model, None),
            "shipped translator, fast path": (model, generator_runner(path, "AB", threads))}


def live(models_, n: int):
    frames = list(pan_frames(PHOTO, n / 25, fps=25, size=320))
    print("| model | working size | frames/s | ms per frame (p50) | CPU s per frame | load |")
    print("|---|---|---|---|---|---|")
    for name, (m, run) in models_.items():
        for size in (256, 192, 128):
            lt = LiveTranslator(m, "AB", work_size=size, run=run)
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


def video(models_, seconds: float):
    with tempfile.TemporaryDirectory() as d:
        clip = pan_clip(PHOTO, Path(d) / "pan.mp4", seconds=seconds, fps=25, size=256, audio=True)
        print(f"\nclip: {seconds:g} s, 25 frames/s, 256x256, AAC sound, pan over {PHOTO.name}")
        print("| model | frames | wall s | time / clip length | CPU s | load before → after |")
        print("|---|---|---|---|---|---|")
        for name, (m, run) in models_.items():
            if run is not None:               # clips are translated in PyTorch
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
    ap.add_argument("--only", choices=["live", "video"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"{a.threads} torch threads, {os.cpu_count()} cores visible, {load()}, {time.strftime('%H:%M UTC', time.gmtime())}")
    ms = models(a.threads)
    if a.only != "video":
        live(ms, a.frames)
    if a.only != "live":
        video(ms, a.video_seconds)


if __name__ == "__main__":
    main()
