"""The studio's training job: at most one run at a time, in a background thread that drains `Trainer.run()`.

The job keeps the run's state so a reloaded page shows where it is. Runs save a resumable checkpoint every
60 s and every 200 steps, and on stop; a studio that was killed or restarted lists the interrupted run
(`interrupted_runs`) and can resume it (`resume`). Uploaded zips are unpacked inside the run's folder and
removed when the run finishes. No gradio here.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from gancore import catalog
from gancore.errors import BadInput, Busy, TooLarge, first_line

log = logging.getLogger("studio")

MAX_LOSS_POINTS = 2000               # loss history kept for the plot; older points are thinned
CHECKPOINT_EVERY_STEPS = 200         # with CHECKPOINT_EVERY_SECONDS: a kill loses at most the larger of the two
CHECKPOINT_EVERY_SECONDS = 60
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
    collapsed: bool = False                          # the verdict is a collapse warning
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
        self._thread: threading.Thread | None = None
        self._trainer = None
        self._stop = threading.Event()
        self._starting = False
        self._mnist: dict = {}         # (image_size, channels) -> MNIST dataset, decoded once

    # ------------------------------------------------------------------------------------------------
    def state(self) -> dict:
        with self._lock:
            return self._state.snapshot()

    def is_running(self) -> bool:
        return self._starting or (self._thread is not None and self._thread.is_alive())

    def start(self, model: str = "dcgan", data: str = "mnist", data_b: str = "", upload: str = "",
              upload_b: str = "", steps: int = 0, minutes: float = 0, batch_size: int = 64,
              lr: float | None = None, image_size: int = 0, sample_every_steps: int = 0, run_name: str = "") -> str:
        """Validate settings and data, then start the run in a background thread. Returns the run name.

        Data problems (a broken zip, no images) raise DataError here, before anything starts.
        """
        from gancore import registry
        from gancore.config import ConfigError
        from gancore.data import DataError
        from gancore.training import recommended, recommended_model_config

        self._reserve()
        created = None                       # the run's folder, removed again if the run does not start
        try:
            entry = registry.get(model)
            steps, minutes = _budget(steps, minutes)
            if steps <= 0 and minutes <= 0:
                raise ConfigError("give the run a time budget: a number of minutes or of steps above 0")
            if minutes > 24 * 60 or steps > 10_000_000:
                raise ConfigError("that budget is too large for the studio; use the command line for long runs")
            batch_size = int(batch_size)
            if not 1 <= batch_size <= 1024:
                raise ConfigError("batch size must be between 1 and 1024")
            name = safe_run_name(run_name) or f"{model}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
            out_dir = self.runs_dir / name
            if out_dir.exists():
                raise ConfigError(f"a run named {name!r} already exists; choose another name")
            created = out_dir
            if entry.task == "translate" and data == "mnist":
                raise DataError(f"{entry.title.split(' (')[0]} learns between two sets of pictures: upload a zip for "
                                "each")
            data_a = self._unpack(data, upload, out_dir, "data")
            data_bb = self._unpack(data_b or "upload", upload_b, out_dir, "data_b") if entry.task == "translate" else ""
            model_cfg = recommended_model_config(model, data_a,
                                                 **catalog.studio_settings(model, data_a == "mnist", image_size))
            every = int(sample_every_steps or 0) or (max(5, min(100, steps // 10)) if steps else 50)
            cfg = recommended(model, data=data_a, data_b=data_bb, batch_size=batch_size,
                              lr_g=float(lr) if lr else None, lr_d=float(lr) if lr else None, steps=steps,
                              minutes=minutes, out_dir=str(out_dir),
                              log_every_steps=max(1, min(10, steps // 20)) if steps else 10,
                              sample_every_steps=every, checkpoint_every_steps=CHECKPOINT_EVERY_STEPS,
                              checkpoint_every_seconds=CHECKPOINT_EVERY_SECONDS, amp="off", device="auto")
            dataset = self._dataset(cfg, model_cfg, out_dir, upload, upload_b)
        except BaseException:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            with self._lock:
                self._starting = False
            raise
        self._launch(name, model, f"starting {entry.title} on {_describe_data(data_a)}",
                     dict(config=cfg, model_config=model_cfg, dataset=dataset))
        return name

    def resume(self, path: str) -> str:
        """Continue an interrupted run from its last checkpoint (same folder, same settings)."""
        from gancore.inference import header_summary
        self._reserve()
        try:
            p = Path(path).resolve()
            if self.runs_dir.resolve() not in p.parents or not p.is_file():
                raise BadInput("that run is not in the studio's runs folder")
            info = header_summary(p)
            cfg = info.get("train", {}).get("config") or {}
            name = p.parent.name
        except BaseException:
            with self._lock:
                self._starting = False
            raise
        self._launch(name, cfg.get("model", ""), f"resuming {name} from step {info['train']['step']}",
                     dict(resume=str(p)))
        return name

    def interrupted_runs(self) -> list[tuple[str, str]]:
        """(label, checkpoint) of runs whose last checkpoint did not reach the end (killed, restarted, stopped)."""
        out = []
        running = self._state.run_name if self.is_running() else None
        for p in sorted(self.runs_dir.glob("*/last.safetensors"), key=lambda q: q.stat().st_mtime, reverse=True):
            if p.parent.name == running:
                continue
            try:
                from gancore import checkpoint as ckpt
                st = json.loads(ckpt.read_header(p).get("train_state", "{}"))
            except Exception:          # a damaged file is the Models tab's business
                continue
            if st and not st.get("finished", True):
                out.append((f"{p.parent.name} (step {st.get('step', '?')})", str(p)))
        return out

    def stop(self) -> bool:
        """Ask the running job to stop; it saves its checkpoint. False when nothing runs."""
        if not self.is_running():
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
        """Stop and save before the process exits (SIGTERM, Ctrl-C)."""
        if self.stop():
            self.wait(timeout)

    # ------------------------------------------------------------------------------------------------
    def _reserve(self) -> None:
        with self._lock:
            if self.is_running():
                raise BusyError(f"a training run ({self._state.run_name}) is already going; stop it or wait "
                                "for it to finish before starting another")
            # Reserve the slot before releasing the lock, so two clicks cannot both start.
            self._starting = True

    def _launch(self, name: str, model: str, message: str, trainer_args: dict) -> None:
        with self._lock:
            self._stop.clear()
            self._state = TrainingState(status="running", model=model, run_name=name, started_at=time.time(),
                                        message=message)
            self._thread = threading.Thread(target=self._drain, args=(trainer_args,), name=f"train-{name}",
                                            daemon=True)
            self._thread.start()
            self._starting = False

    def _dataset(self, cfg, model_cfg, out_dir: Path, upload: str, upload_b: str):
        """Uploads are decoded now, so a broken zip is reported at once; MNIST (always fine, a few seconds
        to unpack) is prepared in the thread and kept for the next run."""
        from gancore.config import ConfigError
        from gancore.data import DataError, make_dataset
        if cfg.data == "mnist":
            return None
        try:
            dataset = make_dataset(cfg, model_cfg)
        except DataError as e:           # name the user's file, not the folder it was unpacked to
            shutil.rmtree(out_dir, ignore_errors=True)
            msg = str(e).replace(Path(cfg.data).name, Path(upload).name)
            if cfg.data_b:
                msg = msg.replace(Path(cfg.data_b).name, Path(upload_b).name)
            raise DataError(msg) from None
        except BaseException:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        if len(dataset) < cfg.batch_size:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise ConfigError(f"the data has {len(dataset)} images, fewer than one batch of {cfg.batch_size}; "
                              "lower the batch size or add images")
        return dataset

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
            if self._state.status == "finished":
                _remove_unpacked(Path(trainer.out_dir))
        except Exception as e:  # the thread must never die silently: the page shows the reason
            log.exception("training failed")
            with self._lock:
                self._state.status = "failed"
                self._state.message = first_line(e, 300)
        finally:
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
        from gancore.analysis.quality import collapsed, verdict
        s = self._state
        s.verdict = verdict(s.quality) if s.quality else ""
        s.collapsed = collapsed(s.quality)

    def _unpack(self, data: str, upload: str, out_dir: Path, tag: str) -> str:
        """MNIST, or an uploaded zip unpacked (images only, no path escapes) inside the run's folder."""
        from gancore.data import DataError, safe_extract_zip
        if data == "mnist" and tag == "data":
            return "mnist"
        if not upload:
            raise DataError("upload a .zip file of images first")
        src = Path(upload)
        if not src.is_file():
            raise DataError("the uploaded file is gone; upload it again")
        target = out_dir / f".{tag}"
        target.mkdir(parents=True, exist_ok=True)
        try:
            safe_extract_zip(src, target)
        except DataError as e:
            shutil.rmtree(out_dir, ignore_errors=True)
            if isinstance(e, TooLarge):      # say which cap, not just "unreadable"
                raise
            raise DataError(f"{src.name} is not a readable zip file of images") from None
        return str(target)


def _resume_config(path: str):
    """The bounds and folder of a resumed studio run: its saved settings (the trainer reads the rest)."""
    from gancore import checkpoint as ckpt
    from gancore.config import from_dict
    from gancore.training import TrainConfig
    saved = from_dict(TrainConfig, json.loads(ckpt.read_header(path)["train_state"])["train_config"])
    return saved


def _remove_unpacked(run_dir: Path) -> None:
    for tag in (".data", ".data_b"):
        shutil.rmtree(run_dir / tag, ignore_errors=True)


def safe_run_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        return ""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,60}", name) or ".." in name:
        from gancore.config import ConfigError
        raise ConfigError("a run name may use letters, digits, '-', '_' and '.', up to 60 characters")
    return name


def _budget(steps, minutes) -> tuple[int, float]:
    """A run's budget from a form or the API: finite, not negative (Infinity and NaN are refused)."""
    import math

    from gancore.config import ConfigError
    try:
        minutes = float(minutes or 0)
        steps = float(steps or 0)
    except (TypeError, ValueError):
        raise ConfigError("the budget must be a number of minutes or of steps") from None
    if not (math.isfinite(minutes) and math.isfinite(steps)) or minutes < 0 or steps < 0:
        raise ConfigError("the budget must be a finite number of minutes or of steps, 0 or more")
    if steps != int(steps) or steps > 10_000_000:
        raise ConfigError("steps must be a whole number up to 10000000")
    return int(steps), minutes


def _describe_data(data: str) -> str:
    return "MNIST digits" if data == "mnist" else "your images"
