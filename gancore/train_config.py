"""The settings of a training run: a torch-free frozen dataclass, so the studio and the CLI can show and check
them before the engine is imported. Value ranges live in `gancore.config.RANGES`."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    REMOVED_SETTINGS = ("d_steps_per_g",)   # read by nothing; dropped from older files on load
    model: str = "dcgan"             # a registered model (gancore train --model lists them)
    data: str = "mnist"              # "mnist", "synthetic", or a folder / .zip of images (domain A)
    data_b: str = ""                 # domain B folder / .zip for translation models
    batch_size: int = 64             # pictures per step (translation recipes: 1 photo)
    lr_g: float = 2e-4               # generator learning rate (Adam)
    lr_d: float = 2e-4               # discriminator learning rate (Adam)
    beta1: float = 0.5               # Adam's first-moment decay
    beta2: float = 0.999             # Adam's second-moment decay
    steps: int = 0                   # bounds: the run stops at whichever comes first; 0 = unbounded
    epochs: float = 0                # passes over the data (a bound; 0 = none)
    minutes: float = 0               # wall-clock minutes (a bound; 0 = none)
    cpu_minutes: float = 0           # bound by this process's CPU time: equal compute for side-by-side runs
    lr_decay_start: float = 1.0      # fraction of the run after which lr falls linearly to 0 (1.0 = constant)
    full_size_from: float = 1.0      # translators: fraction of the run after which crops are whole photos (1.0 = never)
    ema_decay: float = 0.999         # EMA of the generator weights (0 = off)
    amp: str = "off"                 # "off", "bf16", "fp16" (CUDA, with GradScaler), "auto"
    channels_last: bool = False      # NHWC memory layout (faster convolutions on some GPUs)
    device: str = "auto"             # "auto" (a GPU when there is one), "cpu", "cuda", "cuda:N"
    seed: int = 0                    # initial weights, data order and augmentation draws
    deterministic: bool = False      # deterministic kernels (slower; bit-exact on the same machine)
    num_workers: int = 0             # data-loading processes (0 = in the training process)
    data_on_device: bool = False     # keep decoded images on the device, crop there (unpaired data; GPU runs)
    log_every_steps: int = 10        # steps between loss reports
    sample_every_steps: int = 200    # steps between preview grids (0 = none)
    checkpoint_every_steps: int = 1000   # steps between saves of last.safetensors (0 = by time only)
    checkpoint_every_seconds: float = 60   # a kill or crash loses at most this much work (0 = off)
    memory_limit_gb: float = 0       # past this resident memory the run saves and stops (0 = 80 % of the machine)
    out_dir: str = ""                # "" = runs/<model>-<date>-<time>; a resumed run writes beside its file
    init_from: str = ""              # warm start: weights only (e.g. a shipped checkpoint)
    data_limit: int = 0              # use only the first N training items (0 = all)
    # Quality curve (noise models): KID of samples against pictures held out of training, and sample diversity.
    quality: bool = True             # measure against the pictures an image folder holds out (a tenth, 20-500)
    quality_every_steps: int = 0     # 0 = as often as costs about 5 % of the run's time (analysis/quality.py)
    quality_samples: int = 200       # generated samples per measurement (fixed latents)
