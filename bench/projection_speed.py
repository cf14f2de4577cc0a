"""Drawing into a model: time per projection and how close it gets, against the nearest of 1000 random samples.

Targets: real MNIST test digits (never trained on) and three drawn sketches (strokes on a transparent
canvas, as the studio's sketchpad sends them). Pixel MSE in [-1, 1] units; "nearest random" is the best of
1000 samples from seeds the projection does not use. One warm-up projection first (the first call in a
process pays for oneDNN's set-up).

    python bench/projection_speed.py [--checkpoint weights/dcgan_mnist.safetensors] [--digits 20] [--threads 2]
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

from test_projection import sketch  # noqa: E402

from gancore.analysis.projection import project  # noqa: E402
from gancore.data import load_mnist  # noqa: E402
from gancore.inference import load_model, sample  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=str(ROOT / "weights" / "dcgan_mnist.safetensors"))
    ap.add_argument("--digits", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_model(a.checkpoint)
    rnd = sample(model, n=1000, seed=12345).astype(np.float32) / 127.5 - 1
    images, labels = load_mnist("test")
    project(model, images[-1])                                        # warm-up
    rows = [(f"digit {labels[i]} (test #{i})", images[i]) for i in range(a.digits)]
    rows += [(f"sketch '{k}'", sketch(k)) for k in ("zero", "seven")]
    times, wins, ratios = [], 0, []
    print(f"{Path(a.checkpoint).name}, {a.threads} threads, load average {os.getloadavg()[0]:.1f}")
    print("| target | seconds | steps | MSE | nearest of 1000 random | PSNR dB |")
    print("|---|---|---|---|---|---|")
    for name, target in rows:
        p = project(model, target)
        t = p.target.astype(np.float32) / 127.5 - 1
        near = float(((rnd - t) ** 2).reshape(1000, -1).mean(1).min())
        times.append(p.elapsed_s)
        wins += p.mse < near
        ratios.append(p.mse / near)
        print(f"| {name} | {p.elapsed_s:.2f} | {p.steps} | {p.mse:.4f} | {near:.4f} | {p.psnr_db:.1f} |", flush=True)
    print(f"\n{len(rows)} targets: median {np.median(times):.2f} s, max {max(times):.2f} s; closer than the nearest "
          f"random sample {wins}/{len(rows)}; median MSE ratio to it {np.median(ratios):.2f}; "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
