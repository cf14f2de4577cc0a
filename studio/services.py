"""The studio's state, behind one object the tabs share (no gradio here).

It lists checkpoints in the shipped `weights/` folder and the user's runs folder, loads models (the engine
caches them), runs at most one training job in a background thread that drains `Trainer.run()` events,
and keeps that job's state so a reloaded page shows where the run is. Like StyleGAN3's renderer it holds
the long-lived things and the UI only asks it questions.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
import importlib.util
from pathlib import Path
from gancore.errors import BadInput, Busy, TooLarge

log = logging.getLogger("studio")

ROOT = Path(__file__).resolve().parent.parent
# Example photos ship with the engine (export calibrates on them too); found without importing gancore.
EXAMPLES_DIR = Path(importlib.util.find_spec("gancore").origin).parent / "assets" / "examples"
TASKS = ("noise", "translate", "inpaint")
MODEL_TASKS = {"mlp": "noise", "dcgan": "noise", "cyclegan": "translate", "maskrec": "inpaint"}
MAX_LOSS_POINTS = 2000               # loss history kept for the plot; older points are thinned


class BusyError(Busy):
    """A second training job was asked for while one runs."""


class PathError(BadInput):
    """A file name or path that points outside the studio's folders."""


def _is_checkpoint(p: Path) -> bool:
    return p.is_file() and p.suffix == ".safetensors" and not p.name.endswith(".directions.safetensors")


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
    path: str = ""
    message: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0

    def snapshot(self) -> dict:
        d = dict(self.__dict__)
        d["losses"] = list(self.losses)
        return d


class Services:
    def __init__(self, weights_dir: str | os.PathLike | None = None, runs_dir: str | os.PathLike | None = None):
        self.weights_dir = Path(weights_dir or ROOT / "weights").resolve()
        self.runs_dir = Path(runs_dir or os.environ.get("GANSTUDIO_RUNS", "runs")).resolve()
        self._header_cache: dict[tuple[str, int], dict] = {}
        self._directions: dict[tuple[str, int, int], object] = {}
        self._lock = threading.Lock()
        self._state = TrainingState()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._starting = False
        self._mnist: dict = {}         # (image_size, channels) -> MNIST dataset, decoded once

    # ------------------------------------------------------------------------------------------------
    # Checkpoints

    def roots(self) -> list[Path]:
        return [self.weights_dir, self.runs_dir]

    def _files(self) -> list[Path]:
        files = []
        if self.weights_dir.is_dir():
            files += sorted(p for p in self.weights_dir.glob("*.safetensors") if _is_checkpoint(p))
        if self.runs_dir.is_dir():
            runs = [p for p in self.runs_dir.rglob("*.safetensors") if _is_checkpoint(p)]
            files += sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)   # newest run first
        return files

    def header(self, path: str | os.PathLike) -> dict:
        """Header summary (cached by path and mtime); raises CheckpointError for a damaged file."""
        from gancore.inference import header_summary
        p = Path(path)
        key = (str(p), p.stat().st_mtime_ns)
        if key not in self._header_cache:
            self._header_cache[key] = header_summary(p)
        return self._header_cache[key]

    def label(self, path: Path) -> str:
        path = Path(path)
        if self.weights_dir in path.parents:
            return f"{path.stem} (shipped)"
        try:
            rel = path.relative_to(self.runs_dir)
        except ValueError:
            return path.name
        return str(rel.parent / rel.stem) if rel.parent != Path(".") else rel.stem

    def list_checkpoints(self, task: str | None = None) -> list[tuple[str, str]]:
        """(label, path) for every readable checkpoint, optionally only those of one task."""
        if task is not None and task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}")
        out = []
        for p in self._files():
            try:
                model_type = self.header(p).get("model_type", "")
            except Exception as e:      # one bad file is skipped (and shown as unreadable in the Models table)
                _log_unexpected(p, e)
                continue
            if task is None or MODEL_TASKS.get(model_type) == task:
                out.append((self.label(p), str(p)))
        return out

    def load(self, path: str | os.PathLike):
        """The model a checkpoint holds (eval mode, cached by the engine)."""
        from gancore.inference import load_model
        return load_model(self.resolve(path))

    def directions(self, path: str | os.PathLike, k: int):
        """SeFa directions (k, latent_dim) for a noise checkpoint, computed once and cached."""
        from gancore.latent import load_or_compute_directions
        p = self.resolve(path)
        key = (str(p), p.stat().st_mtime_ns, k)
        if key not in self._directions:
            self._directions[key] = load_or_compute_directions(p, self.load(p).G, k)
        return self._directions[key]

    # ------------------------------------------------------------------------------------------------
    # Inference for the tabs: engine calls only, numpy uint8 out

    def _noise_model(self, path):
        model = self.load(path)
        if model.task != "noise":
            raise ValueError(f"{Path(path).name} is a {model.model_type} model; choose a generator from noise")
        return model

    def edited_sample(self, path: str, seed: int, truncation: float = 1.0, alphas=()):
        """One image (H, W, C) from seed's latent, scaled by truncation, moved along SeFa directions."""
        import torch
        from gancore.inference import sample
        from gancore.latent import edit
        model = self._noise_model(path)
        z = model.noise(1, generator=torch.Generator().manual_seed(int(seed))) * float(truncation)
        alphas = [float(a) for a in alphas]
        if any(alphas):
            z = edit(z, self.directions(path, len(alphas)), alphas)
        return sample(model, z=z)[0]

    def interpolation(self, path: str, seed_a: int, seed_b: int, frames: int = 16, truncation: float = 1.0):
        """(frames, H, W, C) along the slerp path between the two seeds' latents."""
        import torch
        from gancore.inference import sample
        from gancore.latent import interpolate
        model = self._noise_model(path)
        frames = int(frames)
        if not 2 <= frames <= 64:
            raise ValueError("frames must be between 2 and 64")
        za, zb = (model.noise(1, generator=torch.Generator().manual_seed(int(s))) for s in (seed_a, seed_b))
        return sample(model, z=interpolate(za, zb, frames) * float(truncation))

    def samples(self, path: str, n: int = 16, seed: int = 0, truncation: float = 1.0):
        from gancore.inference import sample
        n = int(n)
        if not 1 <= n <= 64:
            raise ValueError("the grid holds 1 to 64 images")
        return sample(self._noise_model(path), n=n, seed=int(seed), truncation=float(truncation))

    def translate(self, path: str, image, direction: str = "AB", cycle: bool = True) -> dict:
        from gancore.inference import translate
        if image is None:
            raise BadInput("add a photo first: upload, paste, use the webcam or click an example")
        return translate(self.load(path), image, direction=direction, cycle=bool(cycle))

    def resolve(self, path: str | os.PathLike) -> Path:
        """An existing checkpoint inside weights/ or the runs folder, or PathError."""
        if not path:
            raise PathError("choose a model first")
        p = Path(path).resolve()
        if not any(root in p.parents for root in self.roots()):
            raise PathError("that file is not in the studio's weights or runs folder")
        if not _is_checkpoint(p):
            raise PathError(f"{p.name}: no such checkpoint")
        return p

    def models_table(self) -> list[dict]:
        rows = []
        for p in self._files():
            row = {"name": self.label(p), "folder": "shipped" if self.weights_dir in p.parents else "runs",
                   "path": str(p), "size_mb": round(p.stat().st_size / 1e6, 1)}
            try:
                h = self.header(p)
            except Exception as e:          # listed as unreadable, with the reason; the rest still show
                _log_unexpected(p, e)
                rows.append({**row, "model": "unreadable", "task": "", "created": "", "steps": "",
                             "metrics": str(e)[:80]})
                continue
            trained = h.get("train")
            metrics = h.get("metrics") or {}
            rows.append({**row, "model": h.get("model_type", "?"), "task": MODEL_TASKS.get(h.get("model_type"), "?"),
                         "created": str(h.get("created", ""))[:16].replace("T", " "),
                         "steps": trained.get("step", "") if trained else "",
                         "metrics": ", ".join(f"{k}={_fmt(v)}" for k, v in metrics.items())})
        return rows

    def rename(self, path: str, new_name: str) -> str:
        """Rename a checkpoint inside the runs folder (same folder, new file name). Returns the new path."""
        p = self._user_file(path)
        name = (new_name or "").strip()
        if name.endswith(".safetensors"):
            name = name[: -len(".safetensors")]
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,80}", name) or ".." in name or name.endswith(".directions"):
            raise PathError("a new name may use letters, digits, spaces, '-', '_' and '.', up to 80 characters")
        dst = p.with_name(name + ".safetensors")
        if dst.exists():
            raise PathError(f"{dst.name} already exists in that folder")
        os.replace(p, dst)
        self._move_directions(p, dst)
        return str(dst)

    def delete(self, path: str) -> None:
        p = self._user_file(path)
        p.unlink()
        self._move_directions(p, None)

    def _user_file(self, path: str) -> Path:
        """A checkpoint the user may change: only inside the runs folder; shipped weights stay as they are."""
        p = self.resolve(path)
        if self.runs_dir not in p.parents:
            raise PathError("shipped models cannot be renamed or deleted; copy them to your runs folder instead")
        return p

    @staticmethod
    def _move_directions(src: Path, dst: Path | None) -> None:
        from gancore.latent import directions_path
        cache = directions_path(src)
        if cache.is_file():
            if dst is None:
                cache.unlink()
            else:
                os.replace(cache, directions_path(dst))

    # ------------------------------------------------------------------------------------------------
    # Training: one job at a time, in a thread

    def training_state(self) -> dict:
        with self._lock:
            return self._state.snapshot()

    def is_training(self) -> bool:
        return self._starting or (self._thread is not None and self._thread.is_alive())

    def start_training(self, model: str = "dcgan", data: str = "mnist", data_b: str = "", upload: str = "",
                       upload_b: str = "", steps: int = 0, minutes: float = 0, batch_size: int = 64,
                       lr: float | None = None, image_size: int = 0, sample_every_steps: int = 0,
                       run_name: str = "") -> str:
        """Validate settings and data, then start the run in a background thread. Returns the run name.

        Data problems (a broken zip, no images) raise DataError here, before anything starts.
        """
        from gancore import registry
        from gancore.config import ConfigError
        from gancore.data import DataError, make_dataset
        from gancore.training import recommended

        with self._lock:
            if self.is_training():
                raise BusyError(f"a training run ({self._state.run_name}) is already going; stop it or wait "
                                "for it to finish before starting another")
            # Reserve the slot before releasing the lock, so two clicks cannot both start.
            self._starting = True
        data_a = data_bb = ""
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
            name = _safe_run_name(run_name) or f"{model}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
            out_dir = self.runs_dir / name
            if out_dir.exists():
                raise ConfigError(f"a run named {name!r} already exists; choose another name")
            if entry.task == "translate" and data == "mnist":
                raise DataError("CycleGAN learns between two sets of photos: upload a zip for each domain")
            data_a = self._data_source(data, upload, out_dir, "data")
            data_bb = self._data_source(data_b or "upload", upload_b, out_dir, "data_b") if entry.task == "translate" else ""
            model_cfg = self._model_config(model, entry, data_a, image_size)
            every = int(sample_every_steps or 0) or (max(5, min(100, steps // 10)) if steps else 50)
            cfg = recommended(model, data=data_a, data_b=data_bb, batch_size=batch_size,
                              lr_g=float(lr) if lr else None, lr_d=float(lr) if lr else None, steps=steps, minutes=minutes, out_dir=str(out_dir),
                              log_every_steps=max(1, min(10, steps // 20)) if steps else 10,
                              sample_every_steps=every,
                              checkpoint_every_steps=0, amp="off", device="auto")
            # Uploads are decoded now, so a broken zip is reported at once; MNIST (always fine, but a few
            # seconds to unpack) is prepared in the thread and kept for the next run.
            try:
                dataset = None if data_a == "mnist" else make_dataset(cfg, model_cfg)
            except Exception as e:
                for d in (data_a, data_bb):
                    if d and d != "mnist":
                        shutil.rmtree(d, ignore_errors=True)
                if isinstance(e, DataError):     # name the user's file, not the scratch folder it went to
                    msg = str(e).replace(Path(data_a).name, Path(upload).name)
                    if data_bb:
                        msg = msg.replace(Path(data_bb).name, Path(upload_b).name)
                    raise DataError(msg) from None
                raise
            if dataset is not None and entry.task == "noise":
                shutil.rmtree(data_a, ignore_errors=True)    # image folders are decoded up front; free the disk
            if dataset is not None and len(dataset) < batch_size:
                raise ConfigError(f"the data has {len(dataset)} images, fewer than one batch of {batch_size}; "
                                  "lower the batch size or add images")
        except BaseException:
            self._remove_unpacked(data_a, data_bb)
            with self._lock:
                self._starting = False
            raise
        with self._lock:
            self._stop.clear()
            self._state = TrainingState(status="running", model=model, run_name=name, started_at=time.time(),
                                        message=f"starting {entry.title} on {_describe_data(data_a)}")
            self._thread = threading.Thread(target=self._drain, args=(cfg, model_cfg, dataset),
                                            name=f"train-{name}", daemon=True)
            self._thread.start()
            self._starting = False
        return name

    def stop_training(self) -> bool:
        """Ask the running job to stop; it saves its checkpoint. False when nothing runs."""
        if not self.is_training():
            return False
        self._stop.set()
        with self._lock:
            if self._state.status == "running":
                self._state.status = "stopping"
                self._state.message = "stopping after the current step, then saving"
        return True

    def wait(self, timeout: float | None = None) -> None:
        t = self._thread
        if t is not None:
            t.join(timeout)

    def _drain(self, cfg, model_cfg, dataset) -> None:
        from gancore.training import Trainer
        try:
            if dataset is None:
                key = (model_cfg.image_size, model_cfg.image_channels)
                if key not in self._mnist:
                    self._mnist[key] = make_dataset(cfg, model_cfg)
                dataset = self._mnist[key]
            trainer = Trainer(cfg, model_cfg, dataset=dataset)
            gen = trainer.run()
            for ev in gen:
                with self._lock:
                    self._apply(ev)
                if self._stop.is_set():
                    gen.close()        # the trainer saves its checkpoint on close
                    path = getattr(trainer, "last_checkpoint", "") or ""
                    grid = self._final_preview(path, cfg.model)
                    with self._lock:
                        self._state.status = "stopped"
                        self._state.path = path
                        self._state.message = f"stopped at step {self._state.step}; saved" if path else "stopped"
                        if grid is not None:
                            self._state.grid = grid
                    break
        except Exception as e:  # the thread must never die silently: the page shows the reason
            log.exception("training failed")
            with self._lock:
                self._state.status = "failed"
                self._state.message = _short(e)
        finally:
            with self._lock:
                self._state.finished_at = time.time()
                if self._state.status in ("running", "stopping"):
                    self._state.status = "finished" if self._state.path else "failed"
                done = self._state.status in ("finished", "failed")
            if done:                 # a stopped run keeps its unpacked data (it may be resumed)
                self._remove_unpacked(cfg.data, cfg.data_b)

    @staticmethod
    def _final_preview(path: str, model: str):
        """Samples from a stopped run's saved generator, so the page shows where it got to."""
        if not path or MODEL_TASKS.get(model) != "noise":
            return None
        try:
            from gancore.inference import load_model, sample
            return tile(sample(load_model(path), n=64, seed=1234), cols=8)
        except Exception:  # a preview is a nicety; the run itself is saved
            log.exception("no preview for %s", path)
            return None

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
        elif ev.kind == "start":
            s.message = ev.message
        elif ev.kind == "end":
            s.status, s.path, s.progress, s.eta_s = "finished", ev.path, 1.0, 0.0
            s.elapsed_s = ev.elapsed_s
            where = {"noise": "Explore", "translate": "Translate", "inpaint": "Masks"}.get(MODEL_TASKS.get(s.model), "Models")
            s.message = f"finished after {ev.step} steps; the model is now in the {where} tab"
        elif ev.kind == "error":
            s.status, s.message, s.path = "failed", ev.message, ev.path

    def _data_source(self, data: str, upload: str, out_dir: Path, tag: str) -> str:
        from gancore.data import DataError, safe_extract_zip
        if data == "mnist" and tag == "data":
            return "mnist"
        if not upload:
            raise DataError("upload a .zip file of images first")
        src = Path(upload)
        if not src.is_file():
            raise DataError("the uploaded file is gone; upload it again")
        # Unpack (images only, no path escapes) into the runs folder, never next to Gradio's temp upload.
        target = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=self._scratch()))
        try:
            safe_extract_zip(src, target)
        except DataError as e:
            shutil.rmtree(target, ignore_errors=True)
            if isinstance(e, TooLarge):      # say which cap, not just "unreadable"
                raise
            raise DataError(f"{src.name} is not a readable zip file of images") from None
        return str(target)

    def _remove_unpacked(self, *folders: str) -> None:
        """Unpacked uploads live in runs/.uploads; remove those of a run that is over."""
        for d in folders:
            if d and d != "mnist" and Path(d).parent == self.runs_dir / ".uploads":
                shutil.rmtree(d, ignore_errors=True)

    def _scratch(self) -> Path:
        d = self.runs_dir / ".uploads"
        d.mkdir(parents=True, exist_ok=True)
        return d

    @staticmethod
    def _model_config(model: str, entry, data: str, image_size: int):
        """Small configs that train in minutes on a laptop CPU; MNIST is 28 px grey, uploads RGB."""
        mnist = data == "mnist"
        channels = 1 if mnist else 3
        if model == "dcgan":
            size = int(image_size) if image_size in (28, 32, 64) else (28 if mnist else 32)
            return entry.config_cls(image_size=size, image_channels=channels)
        if model == "mlp":
            return entry.config_cls(image_size=int(image_size) or 28, image_channels=channels)
        if model == "cyclegan":
            size = int(image_size) or 64
            return entry.config_cls(image_size=size, load_size=size + size // 8, base_channels=16, res_blocks=4,
                                    d_base_channels=32)
        return entry.config_cls()


def make_dataset(cfg, model_cfg):
    from gancore.data import make_dataset as _make
    return _make(cfg, model_cfg)


def _safe_run_name(name: str) -> str:
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


def _log_unexpected(path: Path, e: BaseException) -> None:
    from gancore.errors import GanStudioError
    if not isinstance(e, (GanStudioError, OSError)):
        log.error("cannot read the header of %s", path, exc_info=e)


def _describe_data(data: str) -> str:
    return "MNIST digits" if data == "mnist" else "your images"


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
    return msg[:300]


def tile(images, cols: int | None = None, pad: int = 2):
    """(N, H, W, C) uint8 -> one grid image with white gaps; grey images become RGB."""
    import numpy as np
    n, h, w, c = images.shape
    if c == 1:
        images = images.repeat(3, axis=3)
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, col = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = im
    return out
