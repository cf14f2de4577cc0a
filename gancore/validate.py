"""Validation at the engine's boundary: config values, what a config may allocate, checkpoint shapes, devices.

A config comes from a file header, a CLI flag or a web form, so each value is checked for its type and range
before anything uses it (`check_values`, called by `config.from_dict` and `config.override`). A model config
is then checked for what it would allocate: the model is built on the `meta` device (shapes only, no memory)
and its parameter count is capped (`check_model_size`). A checkpoint's tensor shapes are compared with that
meta model before any real model is built (`check_checkpoint_shapes`), so a header that lies about its
config is refused in one line instead of allocating gigabytes.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Any

from gancore.config import ConfigError
from gancore.errors import BadInput, TooLarge

MAX_PARAMETERS = 100_000_000           # 400 MB of fp32 weights; the shipped models have 0.4 to 11 million
MAX_ACTIVATION = 2**27                 # elements of the widest full-resolution feature map (512 MB in fp32)
BIG_INT = 2**63 - 1

# Inclusive ranges by field name (model and training configs share the names). Anything not listed: an
# int >= 0, a finite float.
RANGES: dict[str, tuple[float, float]] = {
    # model configs
    "latent_dim": (1, 4096), "base_channels": (1, 1024), "d_base_channels": (1, 1024),
    "image_size": (4, 1024), "image_channels": (1, 4), "load_size": (4, 2048), "res_blocks": (0, 64),
    "d_layers": (1, 8), "g_extra_convs": (0, 8), "pool_size": (0, 10_000), "patch_size": (1, 1024),
    "feature_pool": (1, 64), "dropout": (0, 1), "lambda_cycle": (0, 1e6), "lambda_identity": (0, 1e6),
    "lambda_rec": (0, 1e6), "lambda_adv": (0, 1e6), "mask_ratio": (0, 1), "mask_ratio_spread": (0, 1),
    "pixel_mask_share": (0, 1), "g_hidden": (1, 65_536), "d_hidden": (1, 65_536), "ada_target": (0, 0.99),
    # training config
    "batch_size": (1, 65_536), "lr_g": (0, math.inf), "lr_d": (0, math.inf), "beta1": (0, 1), "beta2": (0, 1),
    "steps": (0, 10**12), "epochs": (0, 1e9), "minutes": (0, 1e7), "lr_decay_start": (0, 1),
    "ema_decay": (0, 1), "seed": (0, BIG_INT), "num_workers": (0, 256), "checkpoint_every_seconds": (0, 1e9),
    "crop_size": (0, 2048), "quality_every_steps": (0, 10**9), "quality_samples": (16, 10_000),
    "memory_limit_gb": (0, 1e6), "cpu_minutes": (0, 1e7),
}


class ConfigTooLarge(ConfigError, TooLarge):
    """A config that would allocate more than the caps."""


def _kind(field: dataclasses.Field) -> str:
    t = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    return t.split("[")[0].strip()


def check_value(owner: str, name: str, value: Any, kind: str) -> Any:
    """`value` converted to `kind` ("int", "float", "bool", "str", "tuple"), or ConfigError."""
    where = f"{owner}: {name}"
    lo, hi = RANGES.get(name, (0, BIG_INT) if kind in ("int", "tuple") else (-math.inf, math.inf))
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r:.40}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be text, got {value!r:.40}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, got {value!r:.40}")
        if not lo <= value <= hi:
            raise ConfigError(f"{where} must be between {lo:g} and {hi:g}, got {value}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r:.40}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value}")
        if not lo <= value <= hi:
            raise ConfigError(f"{where} must be between {lo:g} and {hi:g}, got {value:g}")
        return value
    if kind == "tuple":
        if not isinstance(value, (list, tuple)) or len(value) > 64:
            raise ConfigError(f"{where} must be a list of at most 64 whole numbers, got {value!r:.40}")
        return tuple(check_value(owner, name, v, "int") for v in value)
    return value


def check_values(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Every value of `data` checked against `cls`'s field types and the ranges above; returns converted values."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return {k: check_value(cls.__name__, k, v, _kind(fields[k])) if k in fields else v for k, v in data.items()}


# ----------------------------------------------------------------------------------------------------
# What a model config allocates

@functools.lru_cache(maxsize=64)
def _meta_shapes(model_type: str, config_json: str) -> tuple[dict[str, dict[str, tuple]], tuple[str, ...], int]:
    """(network -> {key: shape}, generator network names, parameter count), from a model built on `meta`."""
    import torch
    from gancore import registry
    entry = registry.get(model_type)
    cfg = registry.config_from_json(model_type, config_json, check_size=False)
    with torch.device("meta"):
        model = entry.model_cls(cfg)
    shapes = {name: {k: tuple(v.shape) for k, v in net.state_dict().items()} for name, net in model.networks().items()}
    count = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    return shapes, tuple(model.generator_networks()), count


def check_model_size(model_type: str, cfg) -> None:
    """Refuse a model config that would allocate more than the caps, before anything is allocated."""
    from gancore.config import to_json
    size = int(getattr(cfg, "image_size", 0) or 0)
    widest = max(int(getattr(cfg, k, 0) or 0) for k in ("base_channels", "d_base_channels", "latent_dim"))
    if size * size * widest > MAX_ACTIVATION:
        raise ConfigTooLarge(f"{model_type} config: image_size {size} with {widest} channels needs feature maps of "
                       f"{size * size * widest * 4 / 1e9:.1f} GB; at most {MAX_ACTIVATION * 4 / 1e9:.1f} GB")
    count = _meta_shapes(model_type, to_json(cfg))[2]
    if count > MAX_PARAMETERS:
        raise ConfigTooLarge(f"{model_type} config: {count / 1e6:.0f} million parameters "
                       f"({count * 4 / 1e9:.1f} GB); at most {MAX_PARAMETERS // 1_000_000} million")


def check_config(model_type: str, cfg) -> None:
    """A model config built in code or from a form: its values, then what it would allocate."""
    check_values(type(cfg), dataclasses.asdict(cfg))
    check_model_size(model_type, cfg)


def check_training(train_cfg, model_cfg) -> None:
    """A run's settings and its model config, however they were made (code, CLI, studio form)."""
    check_values(type(train_cfg), dataclasses.asdict(train_cfg))
    check_config(train_cfg.model, model_cfg)


def check_checkpoint_shapes(name: str, model_type: str, cfg, entries: dict[str, dict]) -> None:
    """The tensors a checkpoint header lists must be exactly what its model config builds.

    `entries` is the safetensors header without `__metadata__` (key -> dtype, shape, data_offsets). Each
    network may be stored plain (`G.*`) and/or averaged (`ema.G.*`); optimizer, RNG and extra state are free.
    """
    from gancore.checkpoint import CheckpointError
    from gancore.config import to_json
    check_model_size(model_type, cfg)
    shapes, generators, _ = _meta_shapes(model_type, to_json(cfg))
    free = ("optim.", "rng.", "extra.")
    prefixes = {p: net for net in shapes for p in (f"{net}.", f"ema.{net}.")}
    stray = [k for k in entries if not k.startswith(free) and not any(k.startswith(p) for p in prefixes)]
    if stray:
        raise CheckpointError(f"{name}: tensors {stray[:3]} do not belong to a {model_type} model; "
                              "the file may hold another model")
    for prefix, net in prefixes.items():
        got = {k[len(prefix):]: tuple(v["shape"]) for k, v in entries.items() if k.startswith(prefix)}
        if not got:
            continue
        want = shapes[net]
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        wrong = [f"{prefix}{k} is {list(got[k])}, the config builds {list(want[k])}"
                 for k in want if k in got and got[k] != want[k]]
        if missing or extra or wrong:
            detail = (wrong[0] if wrong else f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}")
            raise CheckpointError(f"{name}: the tensors do not fit the {model_type} config in the header "
                                  f"({detail})")
    if not any(f"{g}.{k}" in entries or f"ema.{g}.{k}" in entries for g in generators for k in shapes[g]):
        raise CheckpointError(f"{name}: holds no generator weights")


def checkpoint_model(path) -> tuple[dict[str, str], str, Any]:
    """(metadata, model type, validated model config) of a checkpoint, shapes checked; nothing is allocated."""
    from pathlib import Path
    from gancore import checkpoint as ckpt
    from gancore import registry
    name = Path(path).name
    meta, entries = ckpt.read_index(path)
    model_type = meta.get("model_type", "")
    try:
        registry.get(model_type)
    except BadInput:
        raise ckpt.CheckpointError(f"{name}: unknown model type {model_type!r}; this version knows "
                                   f"{', '.join(registry.list_models())}") from None
    try:
        cfg = registry.config_from_json(model_type, meta.get("model_config", ""))
    except (BadInput, ValueError, TypeError) as e:
        raise ckpt.CheckpointError(f"{name}: unusable model config ({e})") from None
    check_checkpoint_shapes(name, model_type, cfg, entries)
    for key in ("train_state", "trained"):     # the run's settings: known ones must hold sane values
        if key in meta:
            from gancore.training import TrainConfig
            try:
                check_values(TrainConfig, json.loads(meta[key])["train_config"])
            except BadInput as e:
                raise ckpt.CheckpointError(f"{name}: the training settings in the header are damaged ({e})") from None
    return meta, model_type, cfg


# ----------------------------------------------------------------------------------------------------
# Devices and counts

def check_device(name: str):
    """'auto', 'cpu', 'cuda', 'cuda:N', 'mps' -> torch.device, or BadInput / Unsupported in one line."""
    import torch
    from gancore.errors import Unsupported
    name = (name or "auto").strip()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise BadInput(f"unknown device {name!r}; use auto, cpu or cuda (cuda:0, cuda:1, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise Unsupported(f"device {name!r}: CUDA was requested but no GPU is available; use cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise Unsupported(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise Unsupported(f"device {name!r} is not supported; use auto, cpu or cuda")
    return dev


def check_count(what: str, n, lo: int = 1, hi: int = BIG_INT) -> int:
    """A count from a user (images to draw, batch size): a whole number in [lo, hi]."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise BadInput(f"{what} must be a whole number, got {n!r:.40}")
    if n < lo:
        raise BadInput(f"{what} must be at least {lo}, got {n}")
    if n > hi:
        raise TooLarge(f"{what} is {n}; at most {hi}")
    return n


def config_json_object(name: str, key: str, text: str) -> dict:
    """A JSON object stored as a header string, or ValueError naming the key."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise ValueError(f"{key} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"{key} is not a JSON object")
    return value
