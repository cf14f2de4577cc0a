"""A training run's folder: its default name, and the `.lock` that keeps two writers out of one folder.

A `.lock` file holds the writer's PID while a run goes; a lock whose process is gone is stale. A new run
never starts over another run's checkpoint; a resumed one writes beside the file it resumes.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from gancore import checkpoint as ckpt
from gancore.errors import TrainingError


def default_out_dir(model: str) -> str:
    """runs/<model>-<date>-<time>: every run its own folder unless told otherwise."""
    return f"runs/{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def claim_out_dir(out_dir: Path, resuming: bool) -> None:
    """Refuse to start a new run over another run's checkpoint, or while another process writes there.

    Temporary files a killed writer left behind are removed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if not resuming and (out_dir / "last.safetensors").exists():
        raise TrainingError(f"{out_dir} already holds a run (last.safetensors); resume it with --resume "
                            f"{out_dir / 'last.safetensors'} or choose another output folder")
    lock = out_dir / ".lock"
    try:
        pid = int(lock.read_text().strip() or 0)
    except (OSError, ValueError):
        pid = 0
    if pid and pid != os.getpid() and ckpt.process_alive(pid):
        raise TrainingError(f"another training process (PID {pid}) is writing to {out_dir}; "
                            "wait for it or choose another output folder")
    lock.write_text(str(os.getpid()))
    ckpt.clean_orphans(out_dir / "last.safetensors")


def release_out_dir(out_dir: Path) -> None:
    """Remove the lock if this process holds it (a lock another process took over is left alone)."""
    lock = Path(out_dir) / ".lock"
    try:
        if lock.read_text().strip() == str(os.getpid()):
            lock.unlink()
    except OSError:
        pass
