"""The Train tab's form as engine settings: a checked budget and batch size, a run name, and the TrainConfig and
model config a run trains with (the settings measured best for the model and data, under the form's values).

Functions of the form's values only: no threads, no files, no gradio. The engine is imported when a run is
set up, not when the studio starts.
"""
from __future__ import annotations

import datetime as _dt
import math
import re

from gancore import catalog
from gancore.config import ConfigError
from gancore.errors import DataError

CHECKPOINT_EVERY_STEPS = 200         # with CHECKPOINT_EVERY_SECONDS: a kill loses at most the larger of the two
CHECKPOINT_EVERY_SECONDS = 60
MAX_STEPS = 10_000_000               # longer runs belong on the command line
MAX_MINUTES = 24 * 60


def checked_budget(steps, minutes, batch_size) -> tuple[int, float, int]:
    """(steps, minutes, batch size) from the form, or a ConfigError that says what to change."""
    steps, minutes = budget(steps, minutes)
    if steps <= 0 and minutes <= 0:
        raise ConfigError("give the run a time budget: a number of minutes or of steps above 0")
    if minutes > MAX_MINUTES or steps > MAX_STEPS:
        raise ConfigError("that budget is too large for the studio; use the command line for long runs")
    batch_size = int(batch_size)
    if not 1 <= batch_size <= 1024:
        raise ConfigError("batch size must be between 1 and 1024")
    return steps, minutes, batch_size


def budget(steps, minutes) -> tuple[int, float]:
    """A run's budget from a form or the API: finite, not negative (Infinity and NaN are refused)."""
    try:
        minutes = float(minutes or 0)
        steps = float(steps or 0)
    except (TypeError, ValueError):
        raise ConfigError("the budget must be a number of minutes or of steps") from None
    if not (math.isfinite(minutes) and math.isfinite(steps)) or minutes < 0 or steps < 0:
        raise ConfigError("the budget must be a finite number of minutes or of steps, 0 or more")
    if steps != int(steps) or steps > MAX_STEPS:
        raise ConfigError(f"steps must be a whole number up to {MAX_STEPS}")
    return int(steps), minutes


def run_name(requested: str, model: str) -> str:
    """The name the user typed (checked), or <model>-<date>-<time>."""
    return safe_run_name(requested) or f"{model}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def safe_run_name(name: str) -> str:
    """A name that is safe as a folder name, "" when none was given; a ConfigError otherwise."""
    name = (name or "").strip()
    if not name:
        return ""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,60}", name) or ".." in name:
        raise ConfigError("a run name may use letters, digits, '-', '_' and '.', up to 60 characters")
    return name


def check_data_source(entry, data: str) -> None:
    """A translation model learns between two sets of pictures: digits cannot be one of them."""
    if entry.task == "translate" and data == "mnist":
        raise DataError(f"{entry.title.split(' (')[0]} learns between two sets of pictures: upload a zip for each")


def run_settings(model: str, data_a: str, data_b: str, out_dir, steps: int, minutes: float, batch_size: int,
                 lr: float | None, image_size: int, sample_every_steps: int):
    """(TrainConfig, model config) for a studio run: the recipes for this model and data, the studio's preset
    sizes, the form's values, and checkpoints often enough that a killed studio loses little."""
    from gancore.recipes import recommended, recommended_model_config
    model_cfg = recommended_model_config(model, data_a, **catalog.studio_settings(model, data_a == "mnist", image_size))
    every = int(sample_every_steps or 0) or (max(5, min(100, steps // 10)) if steps else 50)
    cfg = recommended(model, data=data_a, data_b=data_b, batch_size=batch_size,
                      lr_g=float(lr) if lr else None, lr_d=float(lr) if lr else None, steps=steps,
                      minutes=minutes, out_dir=str(out_dir),
                      log_every_steps=max(1, min(10, steps // 20)) if steps else 10,
                      sample_every_steps=every, checkpoint_every_steps=CHECKPOINT_EVERY_STEPS,
                      checkpoint_every_seconds=CHECKPOINT_EVERY_SECONDS, amp="off", device="auto")
    return cfg, model_cfg


def describe_data(data: str) -> str:
    return "MNIST digits" if data == "mnist" else "your images"
