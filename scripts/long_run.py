"""The long translation run: trains in the background on one thread, pauses with a saved file, resumes later.

    python scripts/long_run.py h2z --from runs/translate_recipes/cut/last.safetensors   # first time
    python scripts/long_run.py h2z      # every time after: on to the end of the schedule it was started with
    python scripts/long_run.py z2h --recipe fastcut --cpu-minutes 300 --decay-from 0.6  # a new run, its schedule
    python scripts/long_run.py h2z --full-size-from 0.9   # its last tenth on whole photos (a resume may set it)
    python scripts/long_run.py h2z --name h2z-load192 --recipe fastcut-load192 --cpu-minutes 300  # a second run

The run's resumable file lives in experiments/<name>/last.safetensors (one file, overwritten at each pause;
<name> is the direction unless `--name` gives another) beside its best checkpoint by the held-out curve
(best.safetensors) and its log (log.md). It trains until SIGTERM / Ctrl-C or `--cpu-minutes` more
CPU-minutes, then saves, judges the best checkpoint on the test split (Inception FID and KID x100 against the
other domain's test photos: the CUT paper's protocol; the run never sees these photos) and appends a line with
the CPU-hours so far and those figures to the log. When the held-out curve says "No longer improving", the
direction is done.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from translate_recipes import DATA, WAYS, train_command  # noqa: E402
from translate_recipes import judge as judge_photos  # noqa: E402

# Long-run schedule: constant rate; the decay to 0 comes with a bound set for the last stretch.
CURVE = ["--quality", "true", "--checkpoint-every-seconds", "60"]


def train(args, work: Path) -> int:
    last = work / "last.safetensors"
    cmd = [sys.executable, "-m", "gancore", "train", "--cpu-minutes", str(args.total_minutes)] + CURVE
    if not last.exists() and args.start_from:
        shutil.copyfile(args.start_from, last)
    if last.exists():
        cmd += ["--resume", str(last)]
    elif args.recipe:
        fresh = train_command(args.recipe, work, args.total_minutes, DATA, 0, args.way)
        cmd = fresh[:fresh.index("--quiet")] + fresh[fresh.index("--quiet") + 1:]
        cmd = [c for c in cmd if c not in ("--quality", "false")] + CURVE
    else:
        raise SystemExit(f"{last} does not exist: give --from CHECKPOINT or --recipe NAME to start")
    if args.decay_from is not None:
        cmd += ["--lr-decay-start", str(args.decay_from)]
    if args.full_size_from is not None:
        cmd += ["--full-size-from", str(args.full_size_from)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(work / "train.log", "a") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)
            return proc.wait()


def judge(work: Path, way: str) -> dict:
    from gancore import checkpoint as ckpt
    from gancore.analysis.evaluation import InceptionFeatures, _read_folder
    _, _, test_src, test_dst, *_ = WAYS[way]
    state = json.loads(ckpt.read_header(work / "last.safetensors")["train_state"])
    best = work / "best.safetensors"
    figures, panel = {}, None
    if best.exists():
        ext = InceptionFeatures()
        figures, panel = judge_photos(best, DATA, ext, ext(_read_folder(DATA / test_dst)), test_src)
        best_step = json.loads(ckpt.read_header(best)["train_state"])["step"]
        figures["best_step"] = best_step
    history = state.get("quality") or []
    from gancore.analysis.quality import verdict
    row = {"date": time.strftime("%Y-%m-%d %H:%M"), "step": state["step"],
           "cpu_hours": round((state.get("cpu_s") or 0) / 3600, 2), **figures,
           "held_out_kid": history[-1]["kid"] if history else None, "curve": verdict(history)}
    if panel is not None:
        from PIL import Image
        Image.fromarray(panel).save(work / "panel.png")
    return row


def planned_bound(last: Path, args) -> float:
    """The run's CPU-minute bound: what it has done plus `--cpu-minutes`, or, without that flag, the bound the
    run was started with while it is still ahead (so a resume keeps the planned schedule and its decay)."""
    from gancore import checkpoint as ckpt
    source = last if last.exists() else args.start_from
    state = json.loads(ckpt.read_header(source)["train_state"]) if source else {}
    done = (state.get("cpu_s") or 0.0) / 60
    planned = (state.get("train_config") or {}).get("cpu_minutes") or 0.0
    if args.cpu_minutes is None:
        return planned if last.exists() and planned > done + 1 else round(done + 60, 1)
    return round(done + args.cpu_minutes, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("way", choices=sorted(WAYS))
    ap.add_argument("--from", dest="start_from", help="a recipe bench run's last.safetensors to continue")
    ap.add_argument("--recipe", help="start a new run with this recipe of bench/translate_recipes.py")
    ap.add_argument("--cpu-minutes", type=float, help="CPU-minutes to train this time (default: on to the end of "
                    "the schedule the run was started with, or 60 more)")
    ap.add_argument("--decay-from", type=float, help="lr decay start as a share of the whole run's bound")
    ap.add_argument("--full-size-from", type=float, help="share of the whole run's bound after which it trains "
                    "on whole photos instead of crops (kept by later resumes)")
    ap.add_argument("--name", help="the run's folder under experiments/ (default: the direction)")
    ap.add_argument("--judge-only", action="store_true")
    args = ap.parse_args()
    work = ROOT / "experiments" / (args.name or args.way)
    work.mkdir(parents=True, exist_ok=True)
    if not args.judge_only:
        args.total_minutes = planned_bound(work / "last.safetensors", args)
        print(f"training {args.way} to {args.total_minutes} CPU-minutes in all", flush=True)
        train(args, work)
    row = judge(work, args.way)
    # best.safetensors stays on the machine that trained it: with none here, the best is one judged before
    best = (f"best checkpoint (step {row['best_step']}): test FID {row['fid']}, KID x100 {row['kid_x100']}"
            if "best_step" in row else "no better checkpoint than those judged at earlier pauses")
    with open(work / "log.md", "a") as fh:
        fh.write(f"- {row['date']}: step {row['step']}, {row['cpu_hours']} CPU-hours; {best}; "
                 f"held-out curve: {row['curve']}\n")
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
