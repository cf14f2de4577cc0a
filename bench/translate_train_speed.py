"""Training steps a CPU-second of a translation recipe (FastCUT by default) in fp32, bf16 autocast and
channels-last memory, one torch thread, same process, interleaved; the ratios are against fp32.

    python bench/translate_train_speed.py [--recipe fastcut] [--steps 150] [--repeats 2]
        [--modes fp32 bf16 channels-last] [--data ../shared/datasets/horse2zebra]

A step is one 128-px crop of a horse and one of a zebra (the recipe's own settings); the first 10 steps of
each run are not timed. CPU time (time.process_time) is what the recipe bench budgets, so it is the figure;
wall time is printed beside it. bf16 can pay only where the CPU has bf16 arithmetic (AVX-512 BF16 or AMX), so
the flags that say so are printed first.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from translate_recipes import DATA, RECIPES

from gancore import registry
from gancore.training import TrainConfig, Trainer

MODES = {"fp32": {}, "bf16": {"amp": "bf16"}, "channels-last": {"channels_last": True}}
WARM = 10


def cpu_flags() -> str:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(f for f in flags if f.startswith(("avx2", "avx512", "amx"))) or "no AVX2"


def steps_per_second(recipe: str, mode: str, steps: int, data: Path) -> tuple[float, float]:
    """(steps a CPU-second, steps a wall second) over `steps` steps after the warm-up."""
    model, settings = RECIPES[recipe]
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(model=model, data=str(data / "trainA"), data_b=str(data / "trainB"), steps=steps + WARM,
                          batch_size=1, seed=0, out_dir=out, log_every_steps=1, sample_every_steps=0,
                          checkpoint_every_steps=0, quality=False, **MODES[mode])
        t0 = None
        for ev in Trainer(cfg, registry.get(model).config_cls(**settings)).run():
            if ev.kind == "step" and ev.step == WARM:
                t0 = time.process_time(), time.perf_counter()
            if ev.kind == "step" and ev.step == steps + WARM:
                return steps / (time.process_time() - t0[0]), steps / (time.perf_counter() - t0[1])
    raise RuntimeError("the run ended early")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="fastcut", choices=sorted(RECIPES))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--data", type=Path, default=DATA)
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(f"CPU flags: {cpu_flags()}")
    best = {m: (0.0, 0.0) for m in a.modes}
    for _ in range(a.repeats):          # interleaved, best of N: robust to a busy neighbour
        for m in a.modes:
            cpu, wall = steps_per_second(a.recipe, m, a.steps, a.data)
            best[m] = max(best[m], (cpu, wall))
    base = best[a.modes[0]][0]
    print(f"{a.recipe}, {a.steps} steps after {WARM}, 1 thread, best of {a.repeats}")
    print(f"| mode | steps / CPU-second | steps / wall second | vs {a.modes[0]} |")
    print("|---|---|---|---|")
    for m, (cpu, wall) in best.items():
        print(f"| {m} | {cpu:.2f} | {wall:.2f} | {cpu / base:.2f}x |")


if __name__ == "__main__":
    main()
