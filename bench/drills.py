"""Fault drills: kill -9 and SIGTERM during training and during checkpoint writes, two runs into
one folder, a read-only and a full output disk (small tmpfs mounts; needs root), a studio killed and
restarted in the middle of a run. Prints one table: drill, tries, clean outcomes, crashes, work lost.

    python bench/drills.py [--tries 8]

"Clean" means: a one-line message and the right exit code, or a checkpoint that loads and resumes; a crash
is a traceback, a file that does not load, or a lost run. Work lost is measured from the kill to the last
checkpoint the resumed run starts from.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False"}
TRAIN = [sys.executable, "-m", "gancore", "train", "--model", "dcgan", "--data", "synthetic", "--data-limit", "64",
         "--batch-size", "8", "--steps", "1000000", "--sample-every-steps", "0", "--log-every-steps", "5",
         "--checkpoint-every-steps", "0", "--set", "base_channels=8", "--set", "d_base_channels=8"]


def state(path: Path) -> dict:
    from gancore import checkpoint as ckpt
    ckpt.load(path)                                  # every tensor readable and finite
    return json.loads(ckpt.read_header(path)["train_state"])


def wait_for(path: Path, timeout: float = 120) -> None:
    t = time.time()
    while not path.exists():
        if time.time() - t > timeout:
            raise TimeoutError(f"no {path}")
        time.sleep(0.1)


def kill_drill(sig: int, every_s: float, tries: int) -> dict:
    """Kill a CLI run at a random moment; checkpoints every `every_s` (small: kills land inside writes)."""
    row = {"tries": tries, "clean": 0, "crashes": 0, "lost_s": []}
    for i in range(tries):
        d = Path(tempfile.mkdtemp(prefix="drill-"))
        last = d / "run" / "last.safetensors"
        p = subprocess.Popen(TRAIN + ["--out-dir", str(d / "run"), "--checkpoint-every-seconds", str(every_s)],
                             env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for(last)
        time.sleep(random.uniform(0.5, 3.0))
        t_kill = time.time()
        p.send_signal(sig)
        err = p.communicate(timeout=120)[1]
        try:
            st = state(last)
            r = subprocess.run([sys.executable, "-m", "gancore", "train", "--resume", str(last), "--steps",
                                str(st["step"] + 2)], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
            ok = r.returncode == 0 and "Traceback" not in err + r.stderr and state(last)["step"] == st["step"] + 2
            ok = ok and not list(last.parent.glob(".*.tmp"))           # a killed writer's temp file is gone
        except Exception as e:          # noqa: BLE001 - a drill reports, it does not stop
            print(f"  {signal.Signals(sig).name} try {i}: {e.__class__.__name__}: {e}")
            ok = False
        row["clean" if ok else "crashes"] += 1
        row["lost_s"].append(max(0.0, t_kill - last.stat().st_mtime) if sig == signal.SIGKILL else 0.0)
    return row


def two_runs_drill(tries: int) -> dict:
    row = {"tries": tries, "clean": 0, "crashes": 0, "lost_s": [0.0]}
    for _ in range(tries):
        d = Path(tempfile.mkdtemp(prefix="drill-"))
        a = subprocess.Popen(TRAIN + ["--out-dir", str(d)], env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        wait_for(d / ".lock")
        b = subprocess.run(TRAIN + ["--out-dir", str(d)], env=ENV, cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
        a.send_signal(signal.SIGTERM)
        a_err = a.communicate(timeout=120)[1]
        ok = (b.returncode == 2 and len(b.stderr.strip().splitlines()) == 1 and "another training process" in b.stderr
              and a.returncode == 143 and "Traceback" not in a_err and state(d / "last.safetensors")["step"] > 0)
        row["clean" if ok else "crashes"] += 1
    return row


def disk_drill(kind: str, tries: int) -> dict:
    """A run whose output folder is read-only, or fills up (a 256 kB tmpfs): one line, exit 2, no traceback."""
    row = {"tries": tries, "clean": 0, "crashes": 0, "lost_s": [0.0]}
    for _ in range(tries):
        mnt = Path(tempfile.mkdtemp(prefix="drill-mnt-"))
        opts = "ro,size=1m" if kind == "read-only" else "size=256k"
        if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)]).returncode:
            return {"tries": 0, "clean": 0, "crashes": 0, "lost_s": [0.0], "note": "mount refused (needs root)"}
        try:
            r = subprocess.run(TRAIN[:TRAIN.index("--steps") + 1] + ["20"] + TRAIN[TRAIN.index("--steps") + 2:]
                               + ["--out-dir", str(mnt / "run")], env=ENV, cwd=ROOT, capture_output=True, text=True,
                               timeout=300)
            ok = r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2
            if not ok:
                print(f"  {kind}: rc {r.returncode}: {r.stderr.strip()[-300:]}")
        finally:
            subprocess.run(["umount", str(mnt)])
        row["clean" if ok else "crashes"] += 1
    return row


def studio_restart_drill(tries: int) -> dict:
    """kill -9 the studio in the middle of a run; restart it; the run is offered and resumes."""
    import httpx
    from gradio_client import Client
    row = {"tries": tries, "clean": 0, "crashes": 0, "lost_s": []}
    for i in range(tries):
        runs = Path(tempfile.mkdtemp(prefix="drill-runs-"))
        env = {**ENV, "GANSTUDIO_RUNS": str(runs)}
        port = 7950 + i

        def start():
            p = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], env=env, cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            t = time.time()
            while time.time() - t < 120:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                        return p, Client(f"http://127.0.0.1:{port}/", verbose=False)
                except httpx.HTTPError:
                    time.sleep(0.3)
            raise TimeoutError("studio did not start")
        p, c = start()
        c.predict("dcgan", "mnist", None, None, "steps", 100000, 64, 0.008, 0, "drill", api_name="/train_start")
        last = runs / "drill" / "last.safetensors"
        wait_for(last, 300)
        time.sleep(random.uniform(1, 20))
        t_kill = time.time()
        p.kill()
        p.communicate()
        try:
            lost = t_kill - last.stat().st_mtime
            before = state(last)["step"]
            p, c = start()
            offered = c.predict(None, api_name="/train_unfinished")
            ok = str(last) in [v for _, v in offered["choices"]]
            c.predict(str(last), api_name="/train_resume")
            t = time.time()
            while state(last)["step"] <= before and time.time() - t < 200:
                time.sleep(1)
            ok = ok and state(last)["step"] > before
            c.predict(api_name="/train_stop")
            row["lost_s"].append(lost)
        except Exception as e:          # noqa: BLE001
            print(f"  studio restart try {i}: {e.__class__.__name__}: {e}")
            ok = False
        finally:
            p.send_signal(signal.SIGTERM)
            err = p.communicate(timeout=120)[1]
        ok = ok and "Traceback" not in err and "terminate called" not in err
        row["clean" if ok else "crashes"] += 1
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tries", type=int, default=8)
    ap.add_argument("--only", nargs="*", help="drill names to run")
    a = ap.parse_args()
    drills = {
        "kill -9 during training (checkpoint every 60 s)": lambda: kill_drill(signal.SIGKILL, 60, max(2, a.tries // 4)),
        "kill -9 during checkpoint writes (every 0.2 s)": lambda: kill_drill(signal.SIGKILL, 0.2, a.tries),
        "SIGTERM during training": lambda: kill_drill(signal.SIGTERM, 60, a.tries),
        "Ctrl-C (SIGINT) during training": lambda: kill_drill(signal.SIGINT, 60, max(2, a.tries // 2)),
        "two runs into one folder": lambda: two_runs_drill(max(2, a.tries // 2)),
        "read-only output disk": lambda: disk_drill("read-only", 2),
        "full output disk (256 kB tmpfs)": lambda: disk_drill("full", 2),
        "studio kill -9 and restart mid-run": lambda: studio_restart_drill(max(1, a.tries // 4)),
    }
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("| drill | tries | clean | crashes | work lost (max) |")
    print("|---|---|---|---|---|")
    for name, fn in drills.items():
        if a.only and not any(o in name for o in a.only):
            continue
        r = fn()
        lost = f"{max(r['lost_s']):.1f} s" if r["lost_s"] else "-"
        print(f"| {name} | {r['tries']} | {r['clean']} | {r['crashes']} | {lost}{' ' + r['note'] if 'note' in r else ''} |",
              flush=True)


if __name__ == "__main__":
    main()
