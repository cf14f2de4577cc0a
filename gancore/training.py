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
from gancore import registry
from gancore.config import from_dict, override, to_json
from gancore.data import SeededSampler, collate, make_dataset, to_uint8
from gancore.models.base import StepContext
from gancore.recipes import TRAIN_DEFAULTS
from gancore.errors import GanStudioError


class TrainingError(GanStudioError, RuntimeError):
    pass


@dataclass(frozen=True)
class TrainConfig:
    model: str = "dcgan"
    data: str = "mnist"              # "mnist", "synthetic", or a folder / .zip of images (domain A)
    data_b: str = ""                 # domain B folder / .zip for translation models
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    steps: int = 0                   # bounds: the run stops at whichever comes first; 0 = unbounded
    epochs: float = 0
    minutes: float = 0
    lr_decay_start: float = 1.0      # fraction of the run after which lr falls linearly to 0 (1.0 = constant)
    ema_decay: float = 0.999         # EMA of the generator weights (0 = off)
    d_steps_per_g: int = 1
    amp: str = "off"                 # "off", "bf16", "fp16" (CUDA, with GradScaler), "auto"
    channels_last: bool = False
    device: str = "auto"
    seed: int = 0
    deterministic: bool = False
    num_workers: int = 0
    data_on_device: bool = False     # keep decoded images on the device, crop there (unpaired data; GPU runs)
    log_every_steps: int = 10
    sample_every_steps: int = 200
    checkpoint_every_steps: int = 1000
    out_dir: str = "runs/run"
    init_from: str = ""              # warm start: weights only (e.g. a shipped checkpoint)
    data_limit: int = 0              # use only the first N training items (0 = all)


def recommended(model: str = "dcgan", **changes) -> TrainConfig:
    """A TrainConfig with the settings measured best for `model` (gancore/recipes.py), then `changes`.

    `changes` set to None are ignored (unset command-line flags).
    """
    registry.get(model)                       # an unknown model name fails here, with the list of known ones
    return override(TrainConfig(model=model, **TRAIN_DEFAULTS.get(model, {})), **changes)


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError("CUDA was requested but no GPU is available; use device=cpu or auto")
    return torch.device(name)


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "auto":
        amp = "fp16" if device.type == "cuda" else "off"
    if amp == "off":
        return None
    if amp == "fp16" and device.type != "cuda":
        raise TrainingError("fp16 mixed precision needs CUDA; use amp=bf16 on CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def make_grid(images: torch.Tensor, nrow: int) -> np.ndarray:
    from torchvision.utils import make_grid as tv_grid
    grid = tv_grid(images.detach().float().cpu(), nrow=nrow, padding=2, pad_value=1.0)
    return to_uint8(grid)


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    py = random.getstate()
    np_state = np.random.get_state()
    tensors = {"rng.torch": torch.get_rng_state(), "rng.numpy": torch.from_numpy(np_state[1].astype(np.int64))}
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    meta = {"python": [py[0], list(py[1]), py[2]], "numpy_pos": int(np_state[2])}
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    np.random.set_state(("MT19937", tensors["rng.numpy"].numpy().astype(np.uint32), meta["numpy_pos"], 0, 0.0))
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


class Trainer:
    def __init__(self, config: TrainConfig, model_config=None, resume: str | None = None, dataset=None):
        self.resume_tensors, self.resume_state = None, None
        if resume:
            tensors, meta = ckpt.load(resume)
            if "train_state" not in meta:
                raise ckpt.CheckpointError(f"{Path(resume).name}: holds weights only and cannot resume a run; "
                                           "use init_from to start a new run from it")
            state = json.loads(meta["train_state"])
            saved = from_dict(TrainConfig, state["train_config"])
            # The saved run's settings win, except for the bounds and where to write, which a resume may extend.
            keep = {k: getattr(config, k) for k in ("steps", "epochs", "minutes", "out_dir", "num_workers", "device")}
            config = from_dict(TrainConfig, {**asdict(saved), **keep})
            model_config = registry.config_from_json(meta["model_type"], meta["model_config"])
            self.resume_tensors, self.resume_state = tensors, state
        self.config = config
        entry = registry.get(config.model)
        self.model_config = model_config or entry.config_cls()
        from gancore.validate import check_training
        check_training(config, self.model_config)     # NaN rates, negative sizes, configs too large to build
        self.dataset = dataset
        self.out_dir = Path(config.out_dir)

    # ------------------------------------------------------------------------------------------------
    def run(self) -> Iterator[Event]:
        cfg = self.config
        distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        rank, world = 0, 1
        device = resolve_device(cfg.device)
        if distributed:
            if device.type == "cuda":
                device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
                torch.cuda.set_device(device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            rank, world = dist.get_rank(), dist.get_world_size()
        is_main = rank == 0

        # Seeds: identical model init on every rank; per-rank streams for noise.
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        model = registry.build(cfg.model, self.model_config)
        self.model = model
        model.to(device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        if cfg.init_from and self.resume_tensors is None:
            from gancore.inference import load_weights_into
            load_weights_into(model, cfg.init_from)
        groups = model.groups()
        betas = (cfg.beta1, cfg.beta2)
        optimizers = {"G": torch.optim.Adam(groups["G"].parameters(), lr=cfg.lr_g, betas=betas),
                      "D": torch.optim.Adam(groups["D"].parameters(), lr=cfg.lr_d, betas=betas)}
        base_lrs = {"G": cfg.lr_g, "D": cfg.lr_d}
        ema = copy.deepcopy(groups["G"]).eval().requires_grad_(False) if cfg.ema_decay > 0 else None

        step, epoch, batch_in_epoch, elapsed_before = 0, 0, 0, 0.0
        if self.resume_tensors is not None:
            t, s = self.resume_tensors, self.resume_state
            for name, net in model.networks().items():
                ckpt.load_state(net, ckpt.subdict(t, name), name, "resume checkpoint")
            if ema is not None and any(k.startswith("ema.") for k in t):
                ema_nets = _networks_of(ema, model)
                for name, net in ema_nets.items():
                    ckpt.load_state(net, ckpt.subdict(t, f"ema.{name}"), f"ema.{name}", "resume checkpoint")
            for name, opt in optimizers.items():
                ckpt.restore_optimizer(name, opt, t, s["param_groups"][name])
            model.load_extra_tensors({k: v.to(device) for k, v in t.items() if k.startswith("extra.")})
            step, epoch, batch_in_epoch = s["step"], s["epoch"], s["batch_in_epoch"]
            elapsed_before = s.get("elapsed_s", 0.0)
            _set_rng_state(t, s["rng"])
        elif world > 1:
            torch.manual_seed(cfg.seed + rank)

        dtype = resolve_amp(cfg.amp, device)
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        if scaler is not None and self.resume_state and self.resume_state.get("scaler"):
            scaler.load_state_dict(self.resume_state["scaler"])

        def autocast():
            if dtype is None:
                return contextlib.nullcontext()
            return torch.autocast(device.type, dtype=dtype)

        wrapped = dict(groups)
        if distributed:
            ids = [device.index] if device.type == "cuda" else None
            wrapped = {k: DDP(m, device_ids=ids, broadcast_buffers=False) for k, m in groups.items()}
        ctx = StepContext(optimizers=optimizers, wrapped=wrapped, autocast=autocast, scaler=scaler)

        dataset = self.dataset or make_dataset(cfg, self.model_config)
        sampler = SeededSampler(dataset, seed=cfg.seed, rank=rank, world_size=world)
        per_epoch = len(sampler) // cfg.batch_size
        if per_epoch == 0:
            raise TrainingError(f"the dataset has {len(dataset)} items, fewer than one batch of {cfg.batch_size}")
        loader_kwargs = dict(batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate, drop_last=True,
                             num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                             persistent_workers=cfg.num_workers > 0,
                             # Its own generator, so creating a loader never draws from the global RNG.
                             generator=torch.Generator().manual_seed(cfg.seed))
        if cfg.num_workers > 0:
            loader_kwargs["prefetch_factor"] = 4

        bounds = [b for b in (cfg.steps, cfg.epochs * per_epoch if cfg.epochs else 0) if b]
        total_steps = int(min(bounds)) if bounds else 0
        if not (cfg.steps or cfg.epochs or cfg.minutes):
            raise TrainingError("give the run a bound: steps, epochs or minutes")

        t_start = time.perf_counter()
        def progress() -> float:
            fr = [step / total_steps] if total_steps else []
            if cfg.minutes:
                fr.append((elapsed_before + time.perf_counter() - t_start) / (cfg.minutes * 60))
            return min(1.0, max(fr))

        fixed_z = None
        preview_batch = None
        self.last_checkpoint = None
        if is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            yield Event("start", step=step, epoch=epoch, message=f"training {cfg.model} on {device}"
                        f"{f' x{world} processes' if world > 1 else ''}, {len(dataset)} images, "
                        f"{per_epoch} steps per epoch")

        def save(name: str) -> str:
            path = self.out_dir / name
            if is_main:
                self._save(path, model, ema, optimizers, scaler, step, epoch, batch_in_epoch,
                           elapsed_before + time.perf_counter() - t_start)
            self.last_checkpoint = str(path)
            return str(path)

        if cfg.data_on_device and hasattr(dataset, "device_batch"):
            dataset.to_device(device)
            loader = DeviceBatches(dataset, sampler, cfg.batch_size)
        else:
            loader = DataLoader(dataset, **loader_kwargs)
        window_t, window_images = time.perf_counter(), 0
        failed = False
        previous = None
        try:
            done = progress() >= 1.0
            while not done:
                sampler.set_epoch(epoch, skip=batch_in_epoch * cfg.batch_size)
                for batch in loader:
                    batch = _to_device(batch, device, cfg.channels_last)
                    if preview_batch is None:
                        preview_batch = batch
                    # Learning rate: constant, then linear decay to zero (CycleGAN's schedule).
                    frac = progress()
                    if cfg.lr_decay_start < 1.0:
                        scale = 1.0 - max(0.0, frac - cfg.lr_decay_start) / (1.0 - cfg.lr_decay_start)
                        for name, opt in optimizers.items():
                            for g in opt.param_groups:
                                g["lr"] = base_lrs[name] * max(scale, 0.0)

                    model.train()
                    losses = model.train_step(batch, ctx)
                    step += 1
                    batch_in_epoch += 1
                    window_images += cfg.batch_size * world

                    stacked = torch.stack([v.detach().float() for v in losses.values()])
                    save_due = bool(cfg.checkpoint_every_steps) and step % cfg.checkpoint_every_steps == 0
                    weights_bad = save_due and not _all_finite(model)
                    # On CUDA this reads the previous step's losses so the GPU never waits for the host; a bad
                    # step is then caught one step later, and weights are checked before every save anyway.
                    check, previous = (previous, stacked) if device.type == "cuda" else (stacked, None)
                    if (check is not None and not torch.isfinite(check).all()) or weights_bad:
                        values = check.tolist() if check is not None else []
                        bad = [k for k, v in zip(losses, values) if not math.isfinite(v)] or ["weights"]
                        failed = True
                        msg = (f"training stopped at step {step}: loss {', '.join(bad)} became NaN or infinite. "
                               "The last good checkpoint is kept"
                               + (f" ({self.last_checkpoint})" if self.last_checkpoint else "")
                               + ". Try a lower learning rate or amp=off.")
                        if is_main:
                            yield Event("error", step=step, epoch=epoch, message=msg,
                                        path=self.last_checkpoint or "")
                        return

                    if ema is not None:
                        _ema_update(ema, groups["G"], cfg.ema_decay, step)

                    frac = progress()
                    done = frac >= 1.0
                    if is_main and (step % cfg.log_every_steps == 0 or done):
                        now = time.perf_counter()
                        ips = window_images / max(now - window_t, 1e-9)
                        window_t, window_images = now, 0
                        el = elapsed_before + now - t_start
                        eta = el * (1 - frac) / frac if frac > 0 else None
                        yield Event("step", step=step, epoch=epoch, progress=frac, images_per_s=ips, eta_s=eta,
                                    elapsed_s=el, losses=dict(zip(losses, stacked.tolist())))
                    if is_main and cfg.sample_every_steps and (step % cfg.sample_every_steps == 0 or done):
                        yield Event("sample", step=step, epoch=epoch, progress=frac,
                                    grid=self._preview(model, ema or groups["G"], preview_batch, fixed_z))
                    if cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0 and not done:
                        path = save("last.safetensors")
                        if is_main:
                            yield Event("checkpoint", step=step, epoch=epoch, progress=frac, path=path)
                    if done:
                        break
                else:
                    epoch += 1
                    batch_in_epoch = 0
        finally:
            # Normal end, Ctrl-C or the consumer closing the generator: save, unless the run went NaN.
            if not failed and not _all_finite(model):
                failed = True
            if not failed:
                path = save("last.safetensors")
                if is_main:
                    self.final_event = Event("end", step=step, epoch=epoch, progress=progress(), path=path,
                                             elapsed_s=elapsed_before + time.perf_counter() - t_start,
                                             message=f"saved {path}")
            if distributed and dist.is_initialized():
                dist.barrier()
        if is_main and not failed:
            yield self.final_event

    # ------------------------------------------------------------------------------------------------
    def _preview(self, model, gen_group, batch, fixed_z):
        was_training = gen_group.training
        gen_group.eval()
        images = model.preview(8, gen_group, batch)
        gen_group.train(was_training)
        nrow = 8 if model.task == "noise" else min(8, batch[0].shape[0] if isinstance(batch, tuple) else 8)
        return make_grid(images, nrow=nrow)

    def _save(self, path, model, ema, optimizers, scaler, step, epoch, batch_in_epoch, elapsed):
        tensors = {}
        for name, net in model.networks().items():
            tensors.update({f"{name}.{k}": v for k, v in net.state_dict().items()})
        if ema is not None:
            for name, net in _networks_of(ema, model).items():
                tensors.update({f"ema.{name}.{k}": v for k, v in net.state_dict().items()})
        groups = {}
        for name, opt in optimizers.items():
            t, g = ckpt.optimizer_tensors(name, opt)
            tensors.update(t)
            groups[name] = g
        tensors.update(model.extra_tensors())
        rng_t, rng_meta = _rng_state()
        tensors.update(rng_t)
        state = {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "elapsed_s": elapsed,
                 "train_config": asdict(self.config), "param_groups": groups, "rng": rng_meta,
                 "scaler": scaler.state_dict() if scaler is not None else None}
        ckpt.save(path, tensors, {"model_type": model.model_type, "model_config": to_json(model.config),
                                  "train_state": json.dumps(state)})


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


def _to_device(batch, device, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if isinstance(batch, (tuple, list)):
        return tuple(b.to(device, non_blocking=True, memory_format=fmt) if b.ndim == 4 else b.to(device) for b in batch)
    return batch.to(device, non_blocking=True, memory_format=fmt) if batch.ndim == 4 else batch.to(device)


def train(config: TrainConfig, model_config=None, resume=None, quiet=False) -> str:
    """Run to the end; return the checkpoint path. Raises TrainingError on a NaN stop."""
    trainer = Trainer(config, model_config, resume=resume)
    last = None
    for ev in trainer.run():
        if ev.kind == "error":
            raise TrainingError(ev.message)
        if not quiet and ev.kind in ("step", "start", "end"):
            print(_format(ev), flush=True)
        last = ev
    return last.path if last else ""


def _format(ev: Event) -> str:
    if ev.kind != "step":
        return f"[{ev.kind}] {ev.message}"
    losses = " ".join(f"{k}={v:.3f}" for k, v in ev.losses.items())
    eta = f" eta {ev.eta_s:.0f}s" if ev.eta_s is not None else ""
    return f"step {ev.step} ep {ev.epoch} {ev.progress * 100:.1f}% {ev.images_per_s:.0f} img/s{eta} {losses}"
