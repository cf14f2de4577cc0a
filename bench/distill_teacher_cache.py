"""Distillation: is it faster to cache the teacher's outputs once, or to run the teacher on every crop?

Times, in one process on the same threads, the three costs of a distillation step (gancore/distill.py) on real
training photos:
  teacher on a crop      what the on-the-fly step pays per image, every epoch
  student step           student forward + backward with the L1 and EfficientNet-Lite0 losses (both modes pay it)
  teacher on the photo   what a cache pays once per image (the whole photo at the teacher's load size, so any
                         crop of it can be cut out later)
and prints images/s of both modes and the number of epochs after which the cache has paid for itself.

    python bench/distill_teacher_cache.py [--threads 1] [--repeats 5] [--batch 4] [--crop 128] [--stat min]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gancore import registry
from gancore.distill import DistillConfig, PerceptualLoss, student_config
from gancore.imaging import to_tensor
from gancore.inference import load_model

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ROOT / "weights" / "horse2zebra.safetensors"
H2Z = ROOT.parent / "shared" / "datasets" / "horse2zebra"


def interleaved(fns: dict, repeats: int, stat) -> dict:
    """Seconds per call of each function, timed round-robin so that all see the same machine load."""
    for fn in fns.values():
        fn()                                        # warm-up
    ts = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            ts[k].append(time.perf_counter() - t)
    return {k: float(stat(v)) for k, v in ts.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--stat", choices=["min", "median"], default="min")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    teacher = load_model(TEACHER)
    load = teacher.config.load_size
    files = sorted((H2Z / "trainA").glob("*.jpg"))[: a.batch]
    photos = torch.stack([to_tensor(np.asarray(Image.open(f).convert("RGB").resize((load, load), Image.BICUBIC)))
                          for f in files])
    crops = photos[..., :a.crop, :a.crop].contiguous()
    student = registry.build("cyclegan", student_config(teacher.config, DistillConfig()))
    perceptual = PerceptualLoss()
    opt = torch.optim.Adam(student.G.parameters(), lr=1e-4)
    g_t, g_s = teacher.generator("AB"), student.generator("AB")

    def teacher_crop():
        with torch.no_grad():
            return g_t(crops)

    target = teacher_crop()

    def student_step():
        y = g_s(crops)
        loss = F.l1_loss(y, target) + 0.1 * perceptual(y, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def teacher_photo():
        with torch.no_grad():
            return g_t(photos[:1])

    # The minimum estimates the cost on an idle machine; the median is what a shared one gives.
    stat = np.min if a.stat == "min" else np.median
    t = interleaved({"crop": teacher_crop, "step": student_step, "photo": teacher_photo}, a.repeats, stat)
    t_crop, t_step, t_photo = t["crop"] / a.batch, t["step"] / a.batch, t["photo"]
    n_train = len(list((H2Z / "trainA").glob("*.jpg"))) + len(list((H2Z / "trainB").glob("*.jpg")))
    build_min = n_train * t_photo / 60
    print(f"{a.crop}-px crops of {load}-px photos, batch {a.batch}, {a.threads} thread(s), "
          f"{a.stat} of {a.repeats} interleaved runs, load average {os.getloadavg()[0]:.1f}")
    print("| cost per image | ms |")
    print("|---|---|")
    print(f"| teacher on a {a.crop}-px crop | {t_crop * 1000:.0f} |")
    print(f"| student step (forward, backward, L1 + perceptual) | {t_step * 1000:.0f} |")
    print(f"| teacher on the whole {load}-px photo (cache build) | {t_photo * 1000:.0f} |")
    print()
    print("| mode | images/s | up-front |")
    print("|---|---|---|")
    print(f"| teacher on the fly | {1 / (t_crop + t_step):.2f} | none |")
    print(f"| teacher cached | {1 / t_step:.2f} | {build_min:.0f} min for {n_train} photos |")
    print(f"\nthe cache pays for itself after {t_photo / t_crop:.1f} epochs "
          f"({n_train * t_photo / t_crop:.0f} images per direction-pair); a step is "
          f"{(t_crop + t_step) / t_step:.2f}x faster once it is built")


if __name__ == "__main__":
    main()
