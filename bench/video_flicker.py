"""Flicker of translated clips: plain per-frame translation against `gancore.video.Deflicker`, on clips made
from real photos (a slow pan and zoom over horse2zebra test photos, tests/clips.py).

Each clip is translated once per frame; the deflicker settings are then applied to those same outputs, so
the rows differ only by the blending. Figures, in 0..255 grey levels:
  flicker     mean |out_t - out_{t-1}| (lower is steadier)
  input       the same for the input frames (what the camera motion alone explains)
  vs plain    mean |out - plain per-frame out| (how far the blending moves away from the model's answer)

    python bench/video_flicker.py [--photos 3] [--seconds 2] [--checkpoint weights/horse2zebra.safetensors]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clips import pan_frames  # noqa: E402

from gancore.inference import load_model  # noqa: E402
from gancore.video import Deflicker, FrameTranslator, _to_frames, flicker  # noqa: E402

TEST_A = ROOT.parent / "shared" / "datasets" / "horse2zebra" / "testA"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=str(ROOT / "weights" / "horse2zebra.safetensors"))
    ap.add_argument("--photos", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--strengths", default="0,0.5,0.7,0.85")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_model(a.checkpoint)
    tr = FrameTranslator(model, "AB")
    strengths = [float(s) for s in a.strengths.split(",")]
    rows = {s: [] for s in strengths}
    inputs = []
    photos = sorted(TEST_A.glob("*.jpg"))[: a.photos]
    for photo in photos:
        frames = np.stack(list(pan_frames(photo, a.seconds)))
        x = tr.to_input(frames)
        with torch.no_grad():
            y = torch.cat([tr(x[i:i + 4]) for i in range(0, len(x), 4)])
        plain = _to_frames(y, frames.shape[1:3]).astype(np.float32)
        inputs.append(flicker(frames))
        for s in strengths:
            out = _to_frames(Deflicker(s)(x, y), frames.shape[1:3]).astype(np.float32) if s else plain
            rows[s].append((flicker(out), float(np.abs(out - plain).mean())))
    print(f"{len(photos)} pan clips of {a.seconds:g} s at 25 fps, 256 px, from {TEST_A.name} "
          f"({', '.join(p.name for p in photos)}); model {Path(a.checkpoint).name}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"input flicker (camera motion + noise): {np.mean(inputs):.2f}")
    print("| deflicker strength | output flicker | vs plain per-frame | flicker vs plain |")
    print("|---|---|---|---|")
    base = np.mean([f for f, _ in rows[strengths[0]]])
    for s in strengths:
        f = np.mean([r[0] for r in rows[s]])
        d = np.mean([r[1] for r in rows[s]])
        print(f"| {s:g}{' (plain)' if s == 0 else ''} | {f:.2f} | {d:.2f} | {f / base:.2f}x |")


if __name__ == "__main__":
    main()
