"""Latency of one 256x256 translation on this machine's CPU: the shipped translator's horse -> zebra generator
in PyTorch eager and in ONNX Runtime (fp32), and the whole photo path the Translate tab, the service and the
CLI time (`translate_fast`: decode-free uint8 in, uint8 out, on the backend `gancore.deploy.fast` picks),
against the paper-size CycleGAN generator (64 channels, 9 blocks) in the same run.

    python bench/translate_speed.py [--runs 20] [--threads 2] [--model weights/horse2zebra.safetensors]
                                    [--widths 24,32]

`--widths` also times the shipped generator's architecture at other widths (untrained: the same cost), to
see whether a wider translator would still be interactive on this machine.

The "engine" rows are the figure the Translate tab shows beside each translation.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gancore.inference import load_model, translate
from gancore.models.cyclegan import CycleGANConfig, ResnetGenerator

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "weights" / "horse2zebra.safetensors"
PHOTO = ROOT / "gancore" / "assets" / "examples" / "horse_1.jpg"


def timed(fn, runs: int, warmup: int = 3) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return float(np.percentile(ts, 50)), float(np.percentile(ts, 95))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=str(SHIPPED))
    ap.add_argument("--widths", default="", help="comma list of generator widths to time beside the shipped one")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.environ["GANCORE_CACHE"] = tempfile.mkdtemp(prefix="translate-speed-")
    os.environ["GANCORE_RUNTIME"] = "onnxruntime"            # the graph is built before the timing starts
    from gancore.deploy.fast import generator_runner, translate_fast
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    photo = np.asarray(Image.open(PHOTO).convert("RGB").resize((256, 256)))
    model = load_model(a.model)
    shipped = model.generator("AB")
    ort = generator_runner(a.model, "AB", a.threads)
    paper = ResnetGenerator(CycleGANConfig(base_channels=64, res_blocks=9, upsample="transposed")).eval()
    name = Path(a.model).stem
    rows = []
    with torch.no_grad():
        rows.append(("paper-size CycleGAN generator (64 ch, 9 blocks), PyTorch eager", *timed(lambda: paper(x), a.runs)))
        rows.append((f"{name} generator, PyTorch eager", *timed(lambda: shipped(x), a.runs)))
        rows.append((f"{name} generator, ONNX Runtime fp32 ({ort.backend})", *timed(lambda: ort(x), a.runs)))
        for width in [int(w) for w in a.widths.split(",") if w]:
            wide = type(model)(dataclasses.replace(model.config, base_channels=width)).eval().generator("AB")
            rows.append((f"{name} generator at {width} channels (untrained), PyTorch eager",
                         *timed(lambda: wide(x), a.runs)))
        rows.append((f"{name} photo path, PyTorch (engine: uint8 photo in and out)",
                     *timed(lambda: translate(model, photo, "AB"), a.runs)))
        rows.append((f"{name} photo path, ONNX Runtime (engine, as the Translate tab)",
                     *timed(lambda: translate_fast(a.model, photo, "AB", threads=a.threads), a.runs)))
    base, eager = rows[0][1], rows[1][1]
    print(f"256x256, batch 1, {a.threads} threads, {a.runs} runs after warm-up, load average {os.getloadavg()[0]:.1f}")
    print("| what | p50 ms | p95 ms | speed-up vs paper size (p50) | vs eager generator (p50) |")
    print("|---|---|---|---|---|")
    for what, p50, p95 in rows:
        print(f"| {what} | {p50:.1f} | {p95:.1f} | {base / p50:.2f}x | {eager / p50:.2f}x |")


if __name__ == "__main__":
    main()
