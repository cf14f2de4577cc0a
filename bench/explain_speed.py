"""Explainer timings: every method on a 64x64 photo (horse2zebra's PatchGAN D_B) and a 28x28 digit (maskrec D).

    .venv/bin/python bench/explain_speed.py [--threads 1]

Targets: any gradient method <= 1 s on a 64x64 image on 2 CPU cores; the learned mask with
defaults (50 epochs, lr 0.01) <= 5 s. Median of 5 runs after one warm-up.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from gancore.analysis import explain as ex
from gancore.data import load_mnist, to_tensor
from gancore.inference import load_model

METHODS = ("saliency", "integrated_gradients", "occlusion", "learned_mask")


def timed(D, x, method, runs=5):
    ex.explain(D, x, method)
    times, info = [], {}
    for _ in range(runs):
        t = time.perf_counter()
        info = ex.explain(D, x, method).info
        times.append(time.perf_counter() - t)
    return statistics.median(times), info


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = [("horse2zebra D_B, 64x64", load_model("weights/horse2zebra.safetensors").discriminator("AB"),
              torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1),
             ("maskrec D, 28x28", load_model("weights/maskrec_mnist.safetensors").D,
              to_tensor(load_mnist("test")[0][0]).unsqueeze(0))]
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"{'case':24} {'method':22} {'median s':>8}  notes")
    for name, D, x in cases:
        for m in METHODS:
            s, info = timed(D, x, m)
            note = ""
            if "relative_delta" in info:
                note = f"IG completeness delta {info['delta']:.2e} ({info['relative_delta'] * 100:.2f} % of the score gap)"
            if "kept_share" in info:
                note = f"keeps {info['kept_share'] * 100:.0f} % of the image, decision kept: {info['decision_kept']}"
            print(f"{name:24} {m:22} {s:8.3f}  {note}")


if __name__ == "__main__":
    main()
