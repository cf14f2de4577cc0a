"""Latency of one 256x256 translation on this machine's CPU: the shipped CycleGAN generator (the teacher) and
the mobile student (16 channels, depthwise-separable blocks) in PyTorch eager and ONNX Runtime (fp32), against
the paper-size generator (64 channels, 9 blocks) in the same run.

    python bench/translate_speed.py [--runs 20] [--threads 2] [--student weights/horse2zebra_student.safetensors]

Without a student file the student row times an untrained student of the same architecture (latency does
not depend on the weights; the row says so).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gancore.inference import load_model
from gancore.models.cyclegan import CycleGANConfig, ResnetGenerator

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "weights" / "horse2zebra.safetensors"
STUDENT = ROOT / "weights" / "horse2zebra_student.safetensors"


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
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--student", default=str(STUDENT))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    shipped = load_model(SHIPPED).generator("AB")
    paper = ResnetGenerator(CycleGANConfig(base_channels=64, res_blocks=9, upsample="transposed")).eval()
    if Path(a.student).is_file():
        student, student_name = load_model(a.student).generator("AB"), f"student {Path(a.student).name}"
    else:
        student = ResnetGenerator(CycleGANConfig(base_channels=16, block="depthwise")).eval()
        student_name = "student architecture (untrained; same cost)"
    rows = []
    with torch.no_grad():
        rows.append(("paper-size generator (64 ch, 9 blocks), PyTorch eager", *timed(lambda: paper(x), a.runs)))
        rows.append(("shipped teacher (32 ch, 9 blocks), PyTorch eager", *timed(lambda: shipped(x), a.runs)))
        rows.append((f"{student_name} (16 ch, 9 depthwise blocks), PyTorch eager",
                     *timed(lambda: student(x), a.runs)))
    try:
        from gancore.deploy.export import export_onnx
        from gancore.deploy.onnx_runtime import OnnxGenerator
        with tempfile.TemporaryDirectory() as d:
            export_onnx(str(SHIPPED), f"{d}/g.onnx", network="G_AB")
            ort = OnnxGenerator(f"{d}/g.onnx", threads=a.threads)
            xn = x.numpy()
            rows.append(("shipped teacher, ONNX Runtime fp32", *timed(lambda: ort.run(xn), a.runs)))
            if Path(a.student).is_file():
                export_onnx(a.student, f"{d}/s.onnx", network="G_AB")
                ort_s = OnnxGenerator(f"{d}/s.onnx", threads=a.threads)
                rows.append(("student, ONNX Runtime fp32", *timed(lambda: ort_s.run(xn), a.runs)))
    except ImportError as e:
        print(f"(ONNX Runtime row skipped: {e})")
    base = rows[0][1]
    print(f"256x256, batch 1, {a.threads} threads, {a.runs} runs after warm-up, load average {os.getloadavg()[0]:.1f}")
    teacher = rows[1][1]
    print("| generator | p50 ms | p95 ms | speed-up vs paper size (p50) | vs teacher (p50) |")
    print("|---|---|---|---|---|")
    for name, p50, p95 in rows:
        print(f"| {name} | {p50:.0f} | {p95:.0f} | {base / p50:.2f}x | {teacher / p50:.2f}x |")


if __name__ == "__main__":
    main()
