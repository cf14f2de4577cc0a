"""What the quality curve costs: the same run with and without it, side by side, steps reached in equal time.

    python bench/quality_overhead.py --data data/emoji64 [--minutes 3] [--threads 1] [--image-size 32]
    python bench/quality_overhead.py --data mnist

Two processes (curve on, curve off) train the recommended recipe for the data at the same time, one per core
with `--threads` torch threads each, for the same wall-clock minutes. Throughput = steps reached; the curve's
cost is 1 - steps(on) / steps(off). Also prints how many checks ran and their mean time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile


def run_one(data: str, minutes: float, quality: bool, threads: int, image_size: int) -> dict:
    import torch
    torch.set_num_threads(threads)
    from gancore.training import Trainer, recommended, recommended_model_config
    with tempfile.TemporaryDirectory() as d:
        cfg = recommended("dcgan", data=data, minutes=minutes, out_dir=d, quality=quality, sample_every_steps=0,
                          checkpoint_every_steps=0, checkpoint_every_seconds=0, log_every_steps=50)
        # The data's recipe decides size and channels (digits 28 px grey, pictures 64 px RGB) unless given.
        trainer = Trainer(cfg, recommended_model_config("dcgan", data, image_size=image_size or None))
        for ev in trainer.run():
            pass
        checks = trainer.state.quality
        return {"quality": quality, "steps": trainer.state.step, "checks": len(checks),
                "check_s": round(sum(p["seconds"] for p in checks) / max(len(checks), 1), 2),
                "last_kid": checks[-1]["kid"] if checks else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--minutes", type=float, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--image-size", type=int, default=0, help="0: the recipe's (28 digits, 64 pictures)")
    ap.add_argument("--one", choices=["on", "off"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(run_one(a.data, a.minutes, a.one == "on", a.threads, a.image_size)), flush=True)
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    procs = [subprocess.Popen([sys.executable, __file__, "--one", arm, "--data", a.data, "--minutes", str(a.minutes),
                               "--threads", str(a.threads), "--image-size", str(a.image_size)],
                              stdout=subprocess.PIPE, text=True, env=env) for arm in ("on", "off")]
    on, off = (json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs)
    print(f"load average at end: {os.getloadavg()[0]:.1f}; {a.threads} thread(s) per run, {a.minutes:g} min each")
    print("| data | curve | steps in equal time | checks | mean check | cost |")
    print("|---|---|---|---|---|---|")
    print(f"| {os.path.basename(a.data)} | off | {off['steps']} | - | - | - |")
    print(f"| {os.path.basename(a.data)} | on | {on['steps']} | {on['checks']} | {on['check_s']} s | "
          f"{100 * (1 - on['steps'] / off['steps']):.1f} % |")


if __name__ == "__main__":
    main()
