"""The studio's training job: at most one run at a time, in a background thread that drains `Trainer.run()`.

The job keeps the run's state so a reloaded page shows where it is. On a studio shared by strangers each run
has an owner (`studio.visitors`): only they see its progress, stop or resume it; others are told the trainer
is busy and their place in line. A run's unpacked pictures are removed when it ends, however it ends.

Runs save a resumable checkpoint every 60 s and every 200 steps, and on stop; a studio that was killed or
restarted lists the interrupted run (`interrupted_runs`) and can resume it (`resume`). The form becomes
settings in `studio.train_settings`; uploaded zips are unpacked and decoded by `studio.uploads`. No gradio
here.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from gancore import catalog
from gancore.config import ConfigError, from_dict
from gancore.errors import BadInput, Busy, first_line
from gancore.train_config import TrainConfig
from studio import train_settings, uploads

log = logging.getLogger("studio")

WAITING_S = 300                      # a visitor turned away keeps their place in line this long
MAX_LOSS_POINTS = 2000               # loss history kept for the plot; older points are thinned
# torch threads for the job: all cores but one, which serves the pages (two busy torch pools on two cores run
# many times slower than one each; bench/slider_latency.py --during-training).
TRAIN_THREADS = max(1, (os.cpu_count() or 2) - 1)


class BusyError(Busy):
    """A second training job was asked for while one runs."""


@dataclass
class TrainingState:
    """What the Train tab shows; a snapshot is copied out under the lock."""
    status: str = "idle"             # idle, running, stopping, finished, stopped, failed
    model: str = ""
    run_name: str = ""
    step: int = 0
    progress: float = 0.0
    eta_s: float | None = None
    images_per_s: float = 0.0
    elapsed_s: float = 0.0
    losses: list = field(default_factory=list)      # [{"step": int, "loss": name, "value": float}]
    grid: object = None                              # uint8 HWC or None
    quality: list = field(default_factory=list)     # [{"step", "kid", "diversity", "seconds"}]
    verdict: str = ""                                # the quality history in words
    verdict_kind: str = "wait"                        # "warn" (collapse), "wait" (no result yet) or "ok"
    path: str = ""
    message: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0

    def snapshot(self) -> dict:
        d = dict(self.__dict__)
        d["losses"] = list(self.losses)
        d["quality"] = list(self.quality)
        return d


class TrainingJob:
    def __init__(self, runs_dir: Path):
        self.runs_dir = Path(runs_dir)
        self._lock = threading.Lock()
        self._state = TrainingState()
        self._owner = ""               # who started the current or last run ("" for the single local user)
        self._waiting: dict[str, float] = {}   # owner -> when they last found the trainer busy
        self._thread: threading.Thread | None = None
        self._trainer = None
        self._stop = threading.Event()
        self._starting = False
        self._run_dir: Path | None = None
        self._mnist: dict = {}         # (image_size, channels) -> MNIST dataset, decoded once

    # ------------------------------------------------------------------------------------------------
    def state(self, owner: str = "") -> dict:
        """The run's state for its owner; anyone else sees an idle trainer (and whether it is busy)."""
        with self._lock:
            if owner == self._owner:
                return self._own_snapshot()
            st = TrainingState()
            if self.is_running():
                st.message = self._busy_message(owner)
            return st.snapshot()

    def _own_snapshot(self) -> dict:
        """The state with paths in messages made relative to the owner's folder (never the server's layout)."""
        d = self._state.snapshot()
        if self._run_dir is not None:
            d["message"] = d["message"].replace(str(self._run_dir.parent) + os.sep, "")
        return d

    def run_dir(self) -> Path | None:
        """The running run's folder, None when nothing runs."""
        return self._run_dir if self.is_running() else None

    def is_running(self) -> bool:
        return self._starting or (self._thread is not None and self._thread.is_alive())

    def start(self, model: str = "dcgan", data: str = "mnist", data_b: str = "", upload: str = "",
              upload_b: str = "", steps: int = 0, minutes: float = 0, batch_size: int = 64,
              lr: float | None = None, image_size: int = 0, sample_every_steps: int = 0, run_name: str = "",
              owner: str = "", runs_dir: Path | None = None, room: int | None = None) -> str:
        """Validate settings and data, then start the run in a background thread. Returns the run name.

        Data problems (a broken zip, no images) raise DataError here, before anything starts. The run goes to
        `runs_dir` (the owner's folder; the job's own by default); its unpacked pictures may take at most
        `room` bytes (a visitor's share on a shared studio; None: the zip caps only).
        """
        from gancore import registry

        self._reserve(owner)
        created = None                       # the run's folder, removed again if the run does not start
        try:
            entry = registry.get(model)
            steps, minutes, batch_size = train_settings.checked_budget(steps, minutes, batch_size)
            name = train_settings.run_name(run_name, model)
            out_dir = Path(runs_dir or self.runs_dir) / name
            if out_dir.exists():
                raise ConfigError(f"a run named {name!r} already exists; choose another name")
            created = out_dir
            train_settings.check_data_source(entry, data)
            data_a = uploads.unpack(data, upload, out_dir, "data", room)
            data_bb = (uploads.unpack(data_b or "upload", upload_b, out_dir, "data_b", room)
                       if entry.task == "translate" else "")
            cfg, model_cfg = train_settings.run_settings(model, data_a, data_bb, out_dir, steps, minutes, batch_size,
                                                         lr, image_size, sample_every_steps)
            dataset = uploads.decode(cfg, model_cfg, out_dir, upload, upload_b)
        except BaseException:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            with self._lock:
                self._starting = False
            raise
        self._launch(name, model, f"starting {entry.title} on {train_settings.describe_data(data_a)}",
                     dict(config=cfg, model_config=model_cfg, dataset=dataset), owner, out_dir)
        return name

    def resume(self, path: str, owner: str = "", runs_dir: Path | None = None) -> str:
        """Continue an interrupted run from its last checkpoint (same folder, same settings); it must lie in
        `runs_dir` (the owner's folder)."""
        from gancore.inference import header_summary
        self._reserve(owner)
        try:
            p = Path(path or "").resolve()
            if Path(runs_dir or self.runs_dir).resolve() not in p.parents or not p.is_file():
                raise BadInput("that run is not in your runs folder")
            _check_pictures_kept(p)
            info = header_summary(p)
            cfg = info.get("train", {}).get("config") or {}
            name = p.parent.name
        except BaseException:
            with self._lock:
                self._starting = False
            raise
        self._launch(name, cfg.get("model", ""), f"resuming {name} from step {info['train']['step']}",
                     dict(resume=str(p)), owner, p.parent)
        return name

    def interrupted_runs(self, runs_dir: Path | None = None) -> list[tuple[str, str]]:
        """(label, checkpoint) of runs in `runs_dir` (the owner's folder) whose last checkpoint did not reach the
        end (killed, restarted, stopped)."""
        out = []
        running = self._state.run_name if self.is_running() else None
        for p in sorted(Path(runs_dir or self.runs_dir).glob("*/last.safetensors"), key=lambda q: q.stat().st_mtime, reverse=True):
            if p.parent.name == running:
                continue
            try:
                from gancore import checkpoint as ckpt
                st = json.loads(ckpt.read_header(p).get("train_state", "{}"))
            except Exception:          # a damaged file is the Models tab's business
                continue
            if st and not st.get("finished", True) and not _pictures_gone(st):
                out.append((f"{p.parent.name} (step {st.get('step', '?')})", str(p)))
        return out

    def stop(self, owner: str = "") -> bool:
        """Ask the running job to stop; it saves its checkpoint. False when nothing of this owner's runs."""
        if not self.is_running() or owner != self._owner:
            return False
        self._stop.set()
        if self._trainer is not None:
            self._trainer.stop()
        with self._lock:
            if self._state.status == "running":
                self._state.status = "stopping"
                self._state.message = "stopping after the current step, then saving"
        return True

    def wait(self, timeout: float | None = None) -> None:
        t = self._thread
        if t is not None:
            t.join(timeout)

    def shutdown(self, timeout: float = 30) -> None:
        """Stop and save before the process exits (SIGTERM, Ctrl-C), whoever owns the run."""
        if self.stop(self._owner):
            self.wait(timeout)

    # ------------------------------------------------------------------------------------------------
    def _reserve(self, owner: str) -> None:
        with self._lock:
            if self.is_running():
                if owner == self._owner:
                    raise BusyError(f"a training run ({self._state.run_name}) is already going; stop it or wait "
                                    "for it to finish before starting another")
                raise BusyError(self._busy_message(owner, join=True))
            # Reserve the slot before releasing the lock, so two clicks cannot both start.
            self._starting = True
            self._waiting.pop(owner, None)

    def _busy_message(self, owner: str, join: bool = False) -> str:
        """"The trainer is busy" with this visitor's place in line (held for WAITING_S after they last asked)."""
        now = time.time()
        self._waiting = {o: t for o, t in self._waiting.items() if now - t < WAITING_S}
        if join:
            self._waiting[owner] = self._waiting.get(owner, now)
        place = list(self._waiting).index(owner) + 1 if owner in self._waiting else len(self._waiting) + 1
        eta = self._state.eta_s
        left = f"; its run has about {max(1, round(eta / 60))} min left" if eta else ""
        return (f"the trainer is busy with another visitor's run{left}. You are number {place} in line; "
                "press Start again when it is free")

    def _launch(self, name: str, model: str, message: str, trainer_args: dict, owner: str, run_dir: Path) -> None:
        with self._lock:
            self._owner, self._run_dir = owner, Path(run_dir)
            self._stop.clear()
            self._state = TrainingState(status="running", model=model, run_name=name, started_at=time.time(),
                                        message=message)
            self._thread = threading.Thread(target=self._drain, args=(trainer_args,), name=f"train-{name}",
                                            daemon=True)
            self._thread.start()
            self._starting = False

    def _drain(self, trainer_args: dict) -> None:
        import torch

        from gancore.training import Trainer
        torch.set_num_threads(TRAIN_THREADS)     # this thread only: inference keeps the other core
        try:
            if "resume" in trainer_args:
                trainer = Trainer(_resume_config(trainer_args["resume"]), resume=trainer_args["resume"])
            else:
                dataset = trainer_args["dataset"]
                if dataset is None:
                    cfg, mcfg = trainer_args["config"], trainer_args["model_config"]
                    key = (mcfg.image_size, mcfg.image_channels)
                    if key not in self._mnist:
                        from gancore.data import make_dataset
                        self._mnist[key] = make_dataset(cfg, mcfg)
                    dataset = self._mnist[key]
                trainer = Trainer(trainer_args["config"], trainer_args["model_config"], dataset=dataset)
            self._trainer = trainer
            if self._stop.is_set():
                trainer.stop()
            for ev in trainer.run():
                with self._lock:
                    self._apply(ev)
        except Exception as e:  # the thread must never die without a word: the page shows the reason
            log.exception("training failed")
            with self._lock:
                self._state.status = "failed"
                self._state.message = first_line(e, 300)
        finally:
            uploads.remove_unpacked(self._run_dir)      # finished, stopped or failed: the pictures go
            self._trainer = None
            with self._lock:
                self._state.finished_at = time.time()
                if self._state.status in ("running", "stopping"):
                    self._state.status = "finished" if self._state.path else "failed"

    def _apply(self, ev) -> None:
        s = self._state
        s.step = ev.step
        if ev.kind in ("step", "sample", "checkpoint", "end"):
            s.progress = max(s.progress, ev.progress)
        if ev.kind == "step":
            s.eta_s, s.images_per_s, s.elapsed_s = ev.eta_s, ev.images_per_s, ev.elapsed_s
            s.losses.extend({"step": ev.step, "loss": k, "value": round(v, 4)} for k, v in ev.losses.items())
            if len(s.losses) > MAX_LOSS_POINTS:
                s.losses = s.losses[::2]
        elif ev.kind == "sample" and ev.grid is not None:
            s.grid = ev.grid
        elif ev.kind == "checkpoint":
            s.path = ev.path
        elif ev.kind == "quality":
            s.quality.append(ev.metrics)
            self._judge()
        elif ev.kind == "start":
            s.message = ev.message
            s.quality = list(ev.metrics.get("quality", []))        # a resumed run brings its curve back
            self._judge()
        elif ev.kind == "end":
            s.path, s.elapsed_s = ev.path, ev.elapsed_s
            if ev.progress < 1.0:
                s.status, s.message = "stopped", f"stopped at step {ev.step}; saved — resume it from the Train tab"
            else:
                s.status, s.progress, s.eta_s = "finished", 1.0, 0.0
                where = {"noise": "Explore", "translate": "Translate", "inpaint": "Masks"}.get(
                    catalog.task_of(s.model), "Models")
                s.message = f"finished after {ev.step} steps; the model is now in the {where} tab"
        elif ev.kind == "error":
            s.status, s.message, s.path = "failed", ev.message, ev.path

    def _judge(self) -> None:
        from gancore.analysis.quality import verdict, verdict_kind
        s = self._state
        s.verdict = verdict(s.quality) if s.quality else ""
        s.verdict_kind = verdict_kind(s.quality)


def _pictures_gone(train_state: dict) -> bool:
    """A run on uploaded pictures cannot go on once they are removed (when it stopped)."""
    cfg = train_state.get("train_config", {})
    return any(d and d not in ("mnist", "synthetic") and not Path(d).exists() for d in (cfg.get("data"), cfg.get("data_b")))


def _check_pictures_kept(path: Path) -> None:
    from gancore import checkpoint as ckpt
    if _pictures_gone(json.loads(ckpt.read_header(path).get("train_state", "{}"))):
        raise BadInput("this run's pictures were removed when it stopped, to keep the disk small; start a "
                       "new run with the same .zip instead")


def _resume_config(path: str) -> TrainConfig:
    """The bounds and folder of a resumed studio run: its saved settings (the trainer reads the rest)."""
    from gancore import checkpoint as ckpt
    return from_dict(TrainConfig, json.loads(ckpt.read_header(path)["train_state"])["train_config"])
