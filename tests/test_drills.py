"""Nothing lost: stop, SIGTERM, kill -9 and restarts, in the CLI, the Trainer and the studio's training job.

Targets: work lost on any kill, SIGTERM or restart <= the larger of 60 s or 200 steps; two runs
never write into one folder; a restarted studio lists the interrupted run and can resume it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import tiny_config

from gancore import checkpoint as ckpt
from gancore.training import TrainConfig, Trainer, TrainingError, train

ROOT = Path(__file__).resolve().parents[1]


def _cfg(out_dir, steps=4, **kw) -> TrainConfig:
    return TrainConfig(model="dcgan", data="synthetic", steps=steps, batch_size=4, data_limit=16, seed=1,
                       out_dir=str(out_dir), sample_every_steps=0, log_every_steps=1, **kw)


def _state(path) -> dict:
    return json.loads(ckpt.read_header(path)["train_state"])


def test_stop_ends_the_run_normally_and_yields_end(tmp_path):
    trainer = Trainer(_cfg(tmp_path / "run", steps=10_000, checkpoint_every_steps=0), tiny_config("dcgan"))
    kinds = []
    for ev in trainer.run():
        kinds.append(ev.kind)
        if ev.kind == "step" and ev.step == 3:
            trainer.stop()
    assert kinds[0] == "start" and kinds[-1] == "end" and "error" not in kinds
    assert _state(trainer.last_checkpoint)["step"] == 3 and not _state(trainer.last_checkpoint)["finished"]
    # A finished run says so in its file (the studio offers only unfinished runs for resuming).
    done = train(_cfg(tmp_path / "done", steps=2), tiny_config("dcgan"))
    assert _state(done)["finished"]


def test_two_runs_never_share_a_folder(tmp_path):
    path = train(_cfg(tmp_path / "run"), tiny_config("dcgan"))
    with pytest.raises(TrainingError, match="already holds a run"):
        train(_cfg(tmp_path / "run"), tiny_config("dcgan"))
    # A live process holding the folder's lock keeps every other writer out, resumes included.
    (tmp_path / "run" / ".lock").write_text(str(os.getppid()))
    with pytest.raises(TrainingError, match="another training process"):
        train(_cfg(tmp_path / "run", steps=6), tiny_config("dcgan"), resume=path)
    # A lock left by a dead process is stale.
    (tmp_path / "run" / ".lock").write_text("999999999")
    assert _state(train(_cfg("", steps=6), resume=path))["step"] == 6   # writes beside `path`


def test_time_based_checkpoints(tmp_path):
    trainer = Trainer(_cfg(tmp_path / "run", steps=10_000, checkpoint_every_steps=0, checkpoint_every_seconds=0.2),
                      tiny_config("dcgan"))
    saved = []
    t0 = time.perf_counter()
    for ev in trainer.run():
        if ev.kind == "checkpoint":
            saved.append(time.perf_counter() - t0)
        if len(saved) == 2:
            trainer.stop()
    assert len(saved) == 2 and saved[1] - saved[0] >= 0.2


def _cli_train(out_dir: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gancore", "train", "--model", "dcgan", "--data", "synthetic", "--data-limit", "64",
           "--batch-size", "8", "--steps", "100000", "--sample-every-steps", "0", "--log-every-steps", "5",
           "--checkpoint-every-steps", "0", "--checkpoint-every-seconds", "1", "--out-dir", str(out_dir),
           "--set", "base_channels=4", "--set", "d_base_channels=4", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _wait_for_checkpoint(path: Path, timeout: float = 60) -> None:
    t = time.time()
    while not path.exists():
        assert time.time() - t < timeout, "no checkpoint appeared"
        time.sleep(0.2)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_cli_run_survives_signals(tmp_path, sig):
    """SIGTERM and Ctrl-C: the run stops after a step and saves; kill -9: the last checkpoint (<= 1 s old here,
    60 s by default) is intact and resumes (the saved files of the other two load whole: resuming is the same
    code). No traceback reaches the terminal."""
    last = tmp_path / "run" / "last.safetensors"
    proc = _cli_train(tmp_path / "run")
    _wait_for_checkpoint(last)
    time.sleep(1.5)
    killed_at = time.time()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and "terminate called" not in err
    state = _state(last)
    assert state["step"] > 0 and not state["finished"]
    if sig == signal.SIGKILL:
        assert proc.returncode == -9
        assert killed_at - last.stat().st_mtime <= 2.5          # work lost: at most the checkpoint interval
    else:
        assert proc.returncode == 128 + sig, err
        assert last.stat().st_mtime >= killed_at - 0.1          # saved on the way out
        assert "stopping after this step and saving" in err
    assert not list(last.parent.glob(".*.tmp")) or sig == signal.SIGKILL
    if sig != signal.SIGKILL:          # a whole, readable file; resuming one is the same code as below
        ckpt.load(last)
        return
    resumed = subprocess.run([sys.executable, "-m", "gancore", "train", "--resume", str(last),
                              "--steps", str(state["step"] + 2)], capture_output=True, text=True, cwd=ROOT,
                             env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert _state(last)["step"] == state["step"] + 2 and _state(last)["finished"]


def test_studio_job_saves_on_shutdown_and_a_restarted_studio_resumes_it(tmp_path):
    from studio.services import Services
    runs = tmp_path / "runs"
    first = Services(weights_dir=tmp_path / "weights", runs_dir=runs)
    first.start_training(model="dcgan", data="mnist", steps=100_000, batch_size=8, run_name="long")
    t = time.time()
    while first.training_state()["step"] < 5:
        assert time.time() - t < 120 and first.training_state()["status"] == "running", first.training_state()
        time.sleep(0.2)
    first.shutdown(timeout=60)                          # what SIGTERM / Ctrl-C do in the studio
    st = first.training_state()
    assert st["status"] == "stopped" and st["path"].endswith("last.safetensors"), st
    step = _state(st["path"])["step"]
    assert step >= 5

    again = Services(weights_dir=tmp_path / "weights", runs_dir=runs)   # the restarted studio
    (label, path), = again.interrupted_runs()
    assert label.startswith("long") and Path(path) == runs / "long" / "last.safetensors"
    again.resume_training(path)
    t = time.time()
    while again.training_state()["step"] <= step + 2:
        assert time.time() - t < 120 and again.training_state()["status"] == "running", again.training_state()
        time.sleep(0.2)
    again.shutdown(timeout=60)
    assert _state(path)["step"] > step
