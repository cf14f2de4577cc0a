"""One training loop for every model, written as a generator of events.

    for event in Trainer(train_config).run():
        print(event.kind, event.step, event.losses)

The CLI prints the events, tests take the first few, the studio drains them in a background thread.
Closing the generator (or Ctrl-C) saves a resumable checkpoint; a NaN/inf loss stops the run with a clear
message and leaves the last good checkpoint untouched. Under `torchrun` the same loop runs with DDP and
a DistributedSampler; only rank 0 writes files and yields events with previews.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from gancore import checkpoint as ckpt
from gancore import imaging, registry
from gancore.analysis import quality
from gancore.config import from_dict, to_json
from gancore.data import SeededSampler, UnpairedDataset, collate, make_dataset
from gancore.devices import resolve_device
from gancore.errors import TrainingError
from gancore.inference import load_weights_into
from gancore.memory import MemoryCeiling, MemoryGuard, ceiling_bytes
from gancore.models.base import StepContext, eval_mode
from gancore.recipes import recommended, recommended_model_config  # noqa: F401  (callers import them from here)
from gancore.run_dirs import claim_out_dir, default_out_dir, release_out_dir
from gancore.train_config import TrainConfig


@dataclass
class Event:
    kind: str                        # "start", "step", "sample", "checkpoint", "end", "error"
    step: int = 0
    epoch: int = 0
    progress: float = 0.0            # 0..1 of the run's bound
    losses: dict = field(default_factory=dict)
    images_per_s: float = 0.0
    eta_s: float | None = None
    elapsed_s: float = 0.0
    grid: np.ndarray | None = None   # uint8 HWC preview grid
    path: str = ""
    message: str = ""
    metrics: dict = field(default_factory=dict)   # "quality": {"kid", "diversity", "step", ...}; "start": history


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "auto":
        amp = "fp16" if device.type == "cuda" else "off"
    if amp == "off":
        return None
    if amp == "fp16" and device.type != "cuda":
        raise TrainingError("fp16 mixed precision needs CUDA; use amp=bf16 on CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def make_grid(images: torch.Tensor, nrow: int) -> np.ndarray:
    """Preview images (N, C, H, W) in [-1, 1] -> one RGB uint8 grid."""
    return imaging.grid(images, cols=nrow)


@dataclass
class RunState:
    """Where a run is; saved in every checkpoint, so a resumed run continues exactly."""
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed_before: float = 0.0      # seconds spent in earlier processes of this run
    cpu_before: float = 0.0          # CPU seconds spent in earlier processes of this run
    t_start: float = field(default_factory=time.perf_counter)
    cpu_start: float = field(default_factory=time.process_time)
    failed: bool = False
    last_checkpoint: str = ""
    last_save_t: float = field(default_factory=time.perf_counter)
    quality: list = field(default_factory=list)    # [{"step", "kid", "diversity", "seconds"}], saved with the run
    next_quality: int = 0            # step of the next quality check

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t_start

    def cpu(self) -> float:
        return self.cpu_before + time.process_time() - self.cpu_start


@dataclass
class Setup:
    """What `Trainer.run` builds before the first step."""
    device: torch.device
    rank: int
    world: int
    model: object
    optimizers: dict
    ema: object
    ctx: StepContext
    dataset: object
    sampler: SeededSampler
    loader: object
    per_epoch: int
    total_steps: int
    meter: object = None             # analysis.quality.QualityMeter, or None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class Trainer:
    """for event in Trainer(config).run(): ...  `stop()` (any thread, or SIGTERM in the CLI) ends the run after
    the current step; it still saves and yields "end"."""

    # Settings a resumed run may change when asked explicitly (`resume_changes`): how it measures and saves,
    # and the schedule's end (e.g. constant rate until now, a decay over a longer bound from here).
    RESUME_CHANGES = ("quality", "quality_every_steps", "quality_samples", "lr_decay_start", "full_size_from",
                      "checkpoint_every_steps", "checkpoint_every_seconds", "log_every_steps", "sample_every_steps")

    def __init__(self, config: TrainConfig, model_config=None, resume: str | None = None, dataset=None,
                 resume_changes: dict | None = None):
        self.resume_tensors, self.resume_state = None, None
        if resume:
            config, model_config = self._load_resume(resume, config, resume_changes or {})
        self.config = config
        self.model_config = model_config or registry.get(config.model).config_cls()
        registry.check_training(config, self.model_config)     # NaN rates, negative sizes, configs too large to build
        self.dataset = dataset
        self.out_dir = Path(config.out_dir or default_out_dir(config.model))
        self.state = RunState()
        self._stop = threading.Event()
        self._previous = None            # CUDA: the previous step's losses (checked one step late)
        self._losses: dict = {}

    def _load_resume(self, resume: str, config: TrainConfig, changes: dict):
        tensors, meta = ckpt.load(resume)
        if "train_state" not in meta:
            raise ckpt.CheckpointError(f"{Path(resume).name}: holds weights only and cannot resume a run; "
                                       "use init_from to start a new run from it")
        state = json.loads(meta["train_state"])
        saved = from_dict(TrainConfig, state["train_config"])
        # The saved run's settings win, except for the bounds and where to write, which a resume may extend.
        # By default a resumed run writes beside the file it resumes.
        keep = {k: getattr(config, k) for k in ("steps", "epochs", "minutes", "cpu_minutes", "out_dir", "num_workers",
                                                "device", "memory_limit_gb")}
        keep["out_dir"] = keep["out_dir"] or str(Path(resume).parent)
        refused = sorted(set(changes) - set(self.RESUME_CHANGES))
        if refused:
            raise TrainingError(f"a resumed run keeps its settings; {', '.join(refused)} cannot change "
                                "(start a new run with init_from for that)")
        keep.update(changes)
        self.resume_tensors, self.resume_state = tensors, state
        return (from_dict(TrainConfig, {**asdict(saved), **keep}),
                registry.config_from_json(meta["model_type"], meta["model_config"]))

    def stop(self) -> None:
        """End the run after the current step (thread-safe); it saves and yields "end" as usual."""
        self._stop.set()

    @property
    def last_checkpoint(self) -> str:
        return self.state.last_checkpoint

    # ------------------------------------------------------------------------------------------------
    def run(self) -> Iterator[Event]:
        cfg, st = self.config, self.state
        s = self._setup()
        self.model = s.model
        if s.is_main:
            judged = (f"; quality checked against {s.meter.count} {s.meter.label}" if s.meter else "")
            yield Event("start", step=st.step, epoch=st.epoch, message=f"training {cfg.model} on {s.device}"
                        f"{f' x{s.world} processes' if s.world > 1 else ''}, {len(s.dataset)} images, "
                        f"{s.per_epoch} steps per epoch, writing to {self.out_dir}{judged}",
                        metrics={"quality": list(st.quality)})
        preview_batch, window = None, [time.perf_counter(), 0]
        guard, too_big = MemoryGuard(ceiling_bytes(cfg.memory_limit_gb)), ""
        try:
            guard.__enter__()
            done = self._progress(s) >= 1.0
            while not done:
                if self._enter_full_size(s):
                    preview_batch = None             # the grid shows pictures of one size
                s.sampler.set_epoch(st.epoch, skip=st.batch_in_epoch * cfg.batch_size)
                for batch in s.loader:
                    if self._stop.is_set():          # stop() between steps: no step half-done
                        done = True
                        if s.is_main and st.step > 0 and cfg.sample_every_steps:   # the saved generator's samples
                            yield self._sample_event(s, self._progress(s), preview_batch)
                        break
                    batch = _to_device(batch, s.device, cfg.channels_last)
                    preview_batch = _preview_pictures(preview_batch, batch)
                    try:
                        losses = self._train_step(s, batch)
                        guard.check()
                    except MemoryCeiling as e:        # the half-built step is dropped with `e`
                        too_big, done = f"training stopped at step {st.step}: {e}", True
                        break
                    error = self._check_finite(s, losses)
                    if error:
                        st.failed = True
                        if s.is_main:
                            yield Event("error", step=st.step, epoch=st.epoch, message=error, path=st.last_checkpoint)
                        return
                    frac = self._progress(s)
                    done = frac >= 1.0 or self._stop.is_set()
                    if s.is_main:
                        yield from self._events(s, frac, done, window, preview_batch)
                        if s.meter is not None and self._quality_due(done):
                            yield self._check_quality(s)
                    if not done and self._checkpoint_due():
                        path = self._save(s)
                        if s.is_main:
                            yield Event("checkpoint", step=st.step, epoch=st.epoch, progress=frac, path=path)
                    if done:
                        break
                else:
                    st.epoch += 1
                    st.batch_in_epoch = 0
                    done = done or self._stop.is_set()
        finally:
            guard.__exit__(None, None, None)
            # Normal end, stop(), Ctrl-C or the consumer closing the generator: save, unless the run went NaN.
            st.failed = st.failed or not _all_finite(s.model)
            if not st.failed:
                self._save(s, finished=self._progress(s) >= 1.0)
            if s.is_main:
                release_out_dir(self.out_dir)
            if s.world > 1 and dist.is_initialized():
                dist.barrier()
        if s.is_main and too_big and not st.failed:
            yield Event("error", step=st.step, epoch=st.epoch, path=st.last_checkpoint,
                        message=f"{too_big}. Saved {st.last_checkpoint}")
            return
        if s.is_main and not st.failed:
            stopped = f"stopped at step {st.step}; " if self._stop.is_set() and self._progress(s) < 1.0 else ""
            yield Event("end", step=st.step, epoch=st.epoch, progress=self._progress(s), path=st.last_checkpoint,
                        elapsed_s=st.elapsed(), message=f"{stopped}saved {st.last_checkpoint}")

    # ------------------------------------------------------------------------------------------------
    # Set-up

    def _setup(self) -> Setup:
        cfg = self.config
        if not (cfg.steps or cfg.epochs or cfg.minutes or cfg.cpu_minutes):
            raise TrainingError("give the run a bound: steps, epochs, minutes or cpu_minutes")
        device, rank, world = _init_distributed(resolve_device(cfg.device))
        if rank == 0:
            claim_out_dir(self.out_dir, resuming=self.resume_tensors is not None)
        _seed_everything(cfg, device)
        model = registry.build(cfg.model, self.model_config).to(device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        if cfg.init_from and self.resume_tensors is None:
            load_weights_into(model, cfg.init_from)
        groups = model.groups()
        betas = (cfg.beta1, cfg.beta2)
        optimizers = {"G": torch.optim.Adam(groups["G"].parameters(), lr=cfg.lr_g, betas=betas),
                      "D": torch.optim.Adam(groups["D"].parameters(), lr=cfg.lr_d, betas=betas)}
        ema = copy.deepcopy(groups["G"]).eval().requires_grad_(False) if cfg.ema_decay > 0 else None
        dtype = resolve_amp(cfg.amp, device)
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        if self.resume_tensors is not None:
            pos = ckpt.restore_training_state(self.resume_tensors, self.resume_state, model,
                                              _networks_of(ema, model) if ema is not None else {}, optimizers,
                                              scaler, device)
            st = self.state
            st.step, st.epoch, st.batch_in_epoch = pos["step"], pos["epoch"], pos["batch_in_epoch"]
            st.elapsed_before = pos["elapsed_s"] or 0.0
            st.cpu_before = pos["cpu_s"] or 0.0
            st.quality = list(self.resume_state.get("quality") or [])
            self.resume_tensors = None       # free the memory; nothing reads them again
        elif world > 1:
            torch.manual_seed(cfg.seed + rank)     # identical init on every rank; per-rank noise streams
        wrapped = dict(groups)
        if world > 1:
            ids = [device.index] if device.type == "cuda" else None
            wrapped = {k: DDP(m, device_ids=ids, broadcast_buffers=False) for k, m in groups.items()}
        autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype is not None else contextlib.nullcontext
        ctx = StepContext(optimizers=optimizers, wrapped=wrapped, autocast=autocast, scaler=scaler)
        dataset = self.dataset or make_dataset(cfg, self.model_config)
        sampler, loader, per_epoch = _make_loader(cfg, dataset, device, rank, world)
        bounds = [b for b in (cfg.steps, cfg.epochs * per_epoch if cfg.epochs else 0) if b]
        meter = None
        if rank == 0:
            with torch.random.fork_rng(devices=[]):     # building the judge (once per process) draws no training RNG
                meter = quality.meter_for(cfg, model, dataset)
        st = self.state
        st.next_quality = st.step + (cfg.quality_every_steps or 10)
        st.t_start = st.last_save_t = time.perf_counter()
        st.cpu_start = time.process_time()
        return Setup(device, rank, world, model, optimizers, ema, ctx, dataset, sampler, loader, per_epoch,
                     int(min(bounds)) if bounds else 0, meter)

    # ------------------------------------------------------------------------------------------------
    # One step and what follows it

    def _train_step(self, s: Setup, batch) -> dict:
        cfg, st = self.config, self.state
        # Learning rate: constant, then linear decay to zero (CycleGAN's schedule).
        if cfg.lr_decay_start < 1.0:
            scale = max(0.0, 1.0 - max(0.0, self._progress(s) - cfg.lr_decay_start) / (1.0 - cfg.lr_decay_start))
            for name, opt in s.optimizers.items():
                for g in opt.param_groups:
                    g["lr"] = (cfg.lr_g if name == "G" else cfg.lr_d) * scale
        s.model.train()
        losses = s.model.train_step(batch, s.ctx)
        st.step += 1
        st.batch_in_epoch += 1
        if s.ema is not None:
            _ema_update(s.ema, s.model.groups()["G"], cfg.ema_decay, st.step)
        return losses

    def _enter_full_size(self, s: Setup) -> bool:
        """The last phase of a translator's run (`full_size_from`): from that share of the run on, its crops are
        the size of the photos it translates, from loads at least that size (crops of smaller loads become whole
        photos). Checked at each epoch's start (and where a resumed run starts); the loader is built anew, since
        its workers hold the old crop size."""
        full, ds = getattr(self.model_config, "image_size", 0), s.dataset
        if (not isinstance(ds, UnpairedDataset) or ds.image_size == full
                or self._progress(s) < self.config.full_size_from or self.config.full_size_from >= 1.0):
            return False
        ds.image_size, ds.load_size = full, max(ds.load_size, full)
        s.sampler, s.loader, s.per_epoch = _make_loader(self.config, ds, s.device, s.rank, s.world)
        return True

    def _check_finite(self, s: Setup, losses: dict) -> str:
        """An error message when the step went NaN/inf, else "". On CUDA this reads the previous step's losses
        so the GPU never waits for the host; weights are checked before every save anyway."""
        stacked = torch.stack([v.detach().float() for v in losses.values()])
        self._losses = dict(zip(losses, stacked))
        check, self._previous = (self._previous, stacked) if s.device.type == "cuda" else (stacked, None)
        weights_bad = self._checkpoint_due() and not _all_finite(s.model)
        if (check is None or bool(torch.isfinite(check).all())) and not weights_bad:
            return ""
        values = check.tolist() if check is not None else []
        bad = [k for k, v in zip(losses, values) if not math.isfinite(v)] or ["weights"]
        kept = f" ({self.state.last_checkpoint})" if self.state.last_checkpoint else ""
        return (f"training stopped at step {self.state.step}: loss {', '.join(bad)} became NaN or infinite. "
                f"The last good checkpoint is kept{kept}. Try a lower learning rate or amp=off.")

    def _events(self, s: Setup, frac: float, done: bool, window: list, preview_batch):
        cfg, st = self.config, self.state
        window[1] += cfg.batch_size * s.world
        if st.step % cfg.log_every_steps == 0 or done:
            now = time.perf_counter()
            ips, window[0], window[1] = window[1] / max(now - window[0], 1e-9), now, 0
            el = st.elapsed()
            yield Event("step", step=st.step, epoch=st.epoch, progress=frac, images_per_s=ips, elapsed_s=el,
                        eta_s=el * (1 - frac) / frac if frac > 0 else None,
                        losses={k: float(v) for k, v in self._losses.items()})
        if cfg.sample_every_steps and (st.step % cfg.sample_every_steps == 0 or done):
            yield self._sample_event(s, frac, preview_batch)

    def _sample_event(self, s: Setup, frac: float, preview_batch) -> Event:
        st = self.state
        return Event("sample", step=st.step, epoch=st.epoch, progress=frac,
                     grid=self._preview(s.model, s.ema or s.model.groups()["G"], preview_batch))

    def _quality_due(self, done: bool) -> bool:
        """On schedule, and once at the end of a run (not on a stop): the run's final figure."""
        st = self.state
        if st.step >= st.next_quality:
            return True
        return done and not self._stop.is_set() and (not st.quality or st.quality[-1]["step"] != st.step)

    def _check_quality(self, s: Setup) -> Event:
        """Measure, schedule the next check, keep the best checkpoint (best.safetensors) by KID."""
        cfg, st = self.config, self.state
        t0 = time.perf_counter()
        point = {"step": st.step, **s.meter.measure(s.model, s.ema or s.model.groups()["G"])}
        st.quality.append(point)
        best = ""
        if quality.is_best(st.quality):
            best = self._save(s, path=self.out_dir / "best.safetensors")
        point["seconds"] = round(time.perf_counter() - t0, 3)          # the check's whole cost, saving included
        per_step = max(st.elapsed() - sum(p["seconds"] for p in st.quality), 1e-3) / max(st.step, 1)
        st.next_quality = quality.next_check(st.step, per_step, point["seconds"], cfg.quality_every_steps)
        return Event("quality", step=st.step, epoch=st.epoch, progress=self._progress(s), path=best,
                     metrics=point, message=quality.verdict(st.quality))

    def _checkpoint_due(self) -> bool:
        cfg, st = self.config, self.state
        by_steps = bool(cfg.checkpoint_every_steps) and st.step % cfg.checkpoint_every_steps == 0
        by_time = bool(cfg.checkpoint_every_seconds) and \
            time.perf_counter() - st.last_save_t >= cfg.checkpoint_every_seconds
        return by_steps or by_time

    def _progress(self, s: Setup) -> float:
        cfg, st = self.config, self.state
        fr = [st.step / s.total_steps] if s.total_steps else []
        if cfg.minutes:
            fr.append(st.elapsed() / (cfg.minutes * 60))
        if cfg.cpu_minutes:
            fr.append(st.cpu() / (cfg.cpu_minutes * 60))
        return min(1.0, max(fr)) if fr else 0.0

    def _preview(self, model, gen_group, batch) -> np.ndarray:
        with eval_mode(gen_group):
            images, cols = model.preview(8, gen_group, batch)
        return make_grid(images, nrow=cols)

    def _save(self, s: Setup, finished: bool = False, path: Path | None = None) -> str:
        """The resumable checkpoint (last.safetensors), or a copy of this moment at `path` (the best one)."""
        st = self.state
        last = path is None
        path = path or self.out_dir / "last.safetensors"
        if s.is_main:
            position = {"step": st.step, "epoch": st.epoch, "batch_in_epoch": st.batch_in_epoch,
                        "elapsed_s": st.elapsed(), "cpu_s": st.cpu(), "finished": finished, "quality": st.quality}
            ckpt.save_training_state(path, s.model, _networks_of(s.ema, s.model) if s.ema is not None else {},
                                     s.optimizers, s.ctx.scaler, position, asdict(self.config),
                                     to_json(s.model.config))
        if last:
            st.last_checkpoint, st.last_save_t = str(path), time.perf_counter()
        return str(path)


# ----------------------------------------------------------------------------------------------------
# Set-up helpers

def _init_distributed(device: torch.device) -> tuple[torch.device, int, int]:
    """Under torchrun (WORLD_SIZE > 1): one process group, this rank's GPU. Returns (device, rank, world)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device, 0, 1
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, dist.get_rank(), dist.get_world_size()


def _seed_everything(cfg: TrainConfig, device: torch.device) -> None:
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def _make_loader(cfg: TrainConfig, dataset, device, rank: int, world: int):
    sampler = SeededSampler(dataset, seed=cfg.seed, rank=rank, world_size=world)
    per_epoch = len(sampler) // cfg.batch_size
    if per_epoch == 0:
        raise TrainingError(f"the dataset has {len(dataset)} items, fewer than one batch of {cfg.batch_size}")
    if cfg.data_on_device and hasattr(dataset, "device_batch"):
        dataset.to_device(device)
        return sampler, DeviceBatches(dataset, sampler, cfg.batch_size), per_epoch
    kwargs = dict(batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate, drop_last=True,
                  num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                  persistent_workers=cfg.num_workers > 0,
                  # Its own generator, so creating a loader never draws from the global RNG.
                  generator=torch.Generator().manual_seed(cfg.seed))
    if cfg.num_workers > 0:
        kwargs["prefetch_factor"] = 4
    return sampler, DataLoader(dataset, **kwargs), per_epoch


def _all_finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _networks_of(group_copy, model) -> dict:
    """The generator networks inside a copy of the generator group (EMA), by their model names."""
    names = model.generator_networks()
    if names == ["G"]:
        return {"G": group_copy}
    return {n: getattr(group_copy, n) for n in names}


@torch.no_grad()
def _ema_update(ema, net, decay: float, step: int) -> None:
    # Warm-up (as in many GAN codebases): early on the average follows the weights closely.
    d = min(decay, (1 + step) / (10 + step))
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in net.parameters()], 1 - d)
    for be, b in zip(ema.buffers(), net.buffers()):
        be.copy_(b)


class DeviceBatches:
    """Batches drawn from a dataset's on-device copy in the sampler's order (see `data_on_device`)."""

    def __init__(self, dataset, sampler, batch_size: int):
        self.dataset, self.sampler, self.batch_size = dataset, sampler, batch_size

    def __iter__(self):
        items = list(self.sampler)
        for i in range(0, len(items) - self.batch_size + 1, self.batch_size):
            yield self.dataset.device_batch(items[i:i + self.batch_size])


def _preview_pictures(kept, batch, n: int = 8):
    """The pictures the preview grid shows: the first batches' until there are `n` (runs of one photo a step
    would otherwise show one)."""
    if kept is None:
        return batch
    if isinstance(kept, (tuple, list)):
        if len(kept[0]) >= n:
            return kept
        return tuple(torch.cat([k, b])[:n] for k, b in zip(kept, batch))
    return kept if len(kept) >= n else torch.cat([kept, batch])[:n]


def _to_device(batch, device, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if isinstance(batch, (tuple, list)):
        return tuple(b.to(device, non_blocking=True, memory_format=fmt) if b.ndim == 4 else b.to(device) for b in batch)
    return batch.to(device, non_blocking=True, memory_format=fmt) if batch.ndim == 4 else batch.to(device)


def train(config: TrainConfig, model_config=None, resume=None, on_event=None) -> str:
    """Run to the end; return the checkpoint path. Raises TrainingError on a NaN stop. `on_event(event)`, if
    given, sees every event (the CLI prints them with `gancore.cli.format_event`)."""
    trainer = Trainer(config, model_config, resume=resume)
    last = None
    for ev in trainer.run():
        if ev.kind == "error":
            raise TrainingError(ev.message)
        if on_event is not None:
            on_event(ev)
        last = ev
    return last.path if last else ""
