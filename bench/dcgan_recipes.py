"""DCGAN recipe search on MNIST at an equal wall-clock budget: each recipe trains for the same minutes on the
same number of threads, then the EMA generator is scored with the shipped classifier (FID in its feature
space, Inception Score, class coverage). The baseline is the recipe shipped before this search.

    python bench/dcgan_recipes.py --minutes 5 --threads 2 [--only NAME ...] [--samples 5000]

Two processes of one thread each (half the recipes each, `--only`) run side by side at about half the
budget of one two-thread run each; the final choice is confirmed by `bench/quality_per_minute.py`.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from gancore.analysis.evaluation import digit_metrics, generate_images, real_digit_reference
from gancore.checkpoint import read_header
from gancore.inference import load_model
from gancore.models.dcgan import DCGANConfig
from gancore.training import TrainConfig, train

BASE = dict(model="dcgan", data="mnist", batch_size=64, ema_decay=0.999, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
            beta2=0.999, sample_every_steps=0, checkpoint_every_steps=0, log_every_steps=100)
CLASSIC = dict(loss="bce", d_minibatch_std=False, d_spectral_norm=False)   # the recipe shipped before the search
MBSTD = dict(d_minibatch_std=True)
RECIPES = {   # name: (train settings, model settings)
    "baseline": ({}, {}),
    "mbstd": ({}, MBSTD),
    "mbstd_hinge_sn": ({"beta1": 0.0, "beta2": 0.9}, dict(MBSTD, loss="hinge", d_spectral_norm=True)),
    "mbstd_ttur": ({"lr_d": 4e-4, "lr_g": 1e-4}, MBSTD),
    "mbstd_lr5e-4": ({"lr_d": 5e-4, "lr_g": 5e-4}, MBSTD),
    "mbstd_b32": ({"batch_size": 32}, MBSTD),
    "mbstd_wideG": ({}, dict(MBSTD, base_channels=64)),
    "mbstd_b128_lr4e-4": ({"batch_size": 128, "lr_d": 4e-4, "lr_g": 4e-4}, MBSTD),
    "mbstd_ema0.995": ({"ema_decay": 0.995}, MBSTD),
    # round 2: faster learning helped (lr 5e-4 > 2e-4 > TTUR with G at 1e-4)
    "mbstd_lr1e-3": ({"lr_d": 1e-3, "lr_g": 1e-3}, MBSTD),
    "hsm_lr5e-4": ({"lr_d": 5e-4, "lr_g": 5e-4, "beta1": 0.0, "beta2": 0.9},
                   dict(MBSTD, loss="hinge", d_spectral_norm=True)),
    "hsm_lr1e-3": ({"lr_d": 1e-3, "lr_g": 1e-3, "beta1": 0.0, "beta2": 0.9},
                   dict(MBSTD, loss="hinge", d_spectral_norm=True)),
    "mbstd_lr2e-3": ({"lr_d": 2e-3, "lr_g": 2e-3}, MBSTD),
    # round 3: hinge + spectral norm + minibatch std with Adam(0, 0.9) was best at 1e-3
    "hsm_lr2e-3": ({"lr_d": 2e-3, "lr_g": 2e-3, "beta1": 0.0, "beta2": 0.9},
                   dict(MBSTD, loss="hinge", d_spectral_norm=True)),
    "hsm_lr1e-3_wide": ({"lr_d": 1e-3, "lr_g": 1e-3, "beta1": 0.0, "beta2": 0.9},
                        dict(MBSTD, loss="hinge", d_spectral_norm=True, base_channels=64, d_base_channels=64)),
    "hsm_lr1e-3_b32": ({"lr_d": 1e-3, "lr_g": 1e-3, "beta1": 0.0, "beta2": 0.9, "batch_size": 32},
                       dict(MBSTD, loss="hinge", d_spectral_norm=True)),
    "hsm_g2e-3_d1e-3": ({"lr_d": 1e-3, "lr_g": 2e-3, "beta1": 0.0, "beta2": 0.9},
                        dict(MBSTD, loss="hinge", d_spectral_norm=True)),
    # round 4
    "hsm_lr4e-3": ({"lr_d": 4e-3, "lr_g": 4e-3, "beta1": 0.0, "beta2": 0.9},
                   dict(MBSTD, loss="hinge", d_spectral_norm=True)),
    "hsm_lr2e-3_decay": ({"lr_d": 2e-3, "lr_g": 2e-3, "beta1": 0.0, "beta2": 0.9, "lr_decay_start": 0.5},
                         dict(MBSTD, loss="hinge", d_spectral_norm=True)),
    "hsm_lr2e-3_b32": ({"lr_d": 2e-3, "lr_g": 2e-3, "beta1": 0.0, "beta2": 0.9, "batch_size": 32},
                       dict(MBSTD, loss="hinge", d_spectral_norm=True)),
    "hsm_g4e-3_d2e-3": ({"lr_d": 2e-3, "lr_g": 4e-3, "beta1": 0.0, "beta2": 0.9},
                        dict(MBSTD, loss="hinge", d_spectral_norm=True)),
    "hsm_lr8e-3": ({"lr_d": 8e-3, "lr_g": 8e-3, "beta1": 0.0, "beta2": 0.9},
                   dict(MBSTD, loss="hinge", d_spectral_norm=True)),
    "hsm_lr4e-3_b32_decay": ({"lr_d": 4e-3, "lr_g": 4e-3, "beta1": 0.0, "beta2": 0.9, "batch_size": 32,
                              "lr_decay_start": 0.5}, dict(MBSTD, loss="hinge", d_spectral_norm=True)),
    "hsm_lr8e-3_b32": ({"lr_d": 8e-3, "lr_g": 8e-3, "beta1": 0.0, "beta2": 0.9, "batch_size": 32},
                       dict(MBSTD, loss="hinge", d_spectral_norm=True)),
    # round 5: the architecture (one 3x3 conv after each upsampling of G)
    "hsm_lr8e-3_gconv": ({"lr_d": 8e-3, "lr_g": 8e-3, "beta1": 0.0, "beta2": 0.9},
                         dict(MBSTD, loss="hinge", d_spectral_norm=True, g_extra_convs=1)),
    "mbstd_lr5e-4_wide": ({"lr_d": 5e-4, "lr_g": 5e-4}, dict(MBSTD, base_channels=64, d_base_channels=64)),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--only", nargs="*", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ref = real_digit_reference()["classifier_fid"]
    for name in a.only or RECIPES:
        train_kw, model_kw = RECIPES[name]
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            path = train(TrainConfig(minutes=a.minutes, out_dir=d, **{**BASE, **train_kw}),
                         model_config=DCGANConfig(**{**CLASSIC, **model_kw}))
            step = json.loads(read_header(path)["train_state"])["step"]
            m = digit_metrics(generate_images(load_model(path), a.samples).cpu())
        print(f"| {name} | {a.minutes:g} min x {a.threads} thr | {step} | {m['classifier_fid']:.1f} "
              f"({m['classifier_fid'] / ref:.0f}x) | {m['inception_score']:.2f} | {m['classes_present']}/10 | "
              f"{m['min_class_share']:.3f} | {time.perf_counter() - t0:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
