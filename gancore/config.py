"""Frozen dataclass configs serialised with `asdict` to JSON; loading rejects unknown keys.

A config comes from a file header, a CLI flag or a web form, so each value is checked for its type and range
before anything uses it (`check_values`, called by `from_dict` and `override`). Torch-free.
"""
from __future__ import annotations

import dataclasses
import inspect
import io
import json
import math
import tokenize
from typing import Any, TypeVar

from gancore.errors import BadInput, TooLarge

T = TypeVar("T")
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
    "batch_size": (1, 65_536), "lr_g": (0, 1), "lr_d": (0, 1), "lr": (0, 1), "beta1": (0, 1), "beta2": (0, 1),
    "steps": (0, 10**12), "epochs": (0, 1e9), "minutes": (0, 1e7), "lr_decay_start": (0, 1),
    "full_size_from": (0, 1),
    "ema_decay": (0, 1), "seed": (0, BIG_INT), "num_workers": (0, 256), "checkpoint_every_seconds": (0, 1e9),
    "crop_size": (0, 2048), "quality_every_steps": (0, 10**9), "quality_samples": (16, 10_000),
    "memory_limit_gb": (0, 1e6), "cpu_minutes": (0, 1e7),
}


class ConfigError(BadInput):
    pass


def to_json(cfg: Any) -> str:
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build `cls` from a dict: unknown keys are an error, missing keys take their defaults.

    A config whose defaults changed lists the old values in `LEGACY_DEFAULTS`: a saved config without such a
    key was written before the key existed, so it gets the behaviour it was trained with. Keys in
    `REMOVED_SETTINGS` (settings a later version dropped) are ignored.
    """
    data = {**getattr(cls, "LEGACY_DEFAULTS", {}), **data}
    data = {k: v for k, v in data.items() if k not in getattr(cls, "REMOVED_SETTINGS", ())}
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown setting(s) {unknown}; known: {sorted(names)}")
    kwargs = check_values(cls, data)          # types and ranges; ConfigError names the field
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:      # a config's own __post_init__ checks
        raise ConfigError(f"{cls.__name__}: {e}") from None


def from_json(cls: type[T], text: str) -> T:
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{cls.__name__}: not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    return from_dict(cls, data)


def override(cfg: T, **changes: Any) -> T:
    """`dataclasses.replace` that ignores None (unset CLI flags) and checks names."""
    changes = {k: v for k, v in changes.items() if v is not None}
    names = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ConfigError(f"{type(cfg).__name__}: unknown setting(s) {unknown}")
    try:
        return dataclasses.replace(cfg, **check_values(type(cfg), changes))
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{type(cfg).__name__}: {e}") from None


# ----------------------------------------------------------------------------------------------------
# Values

def kind_of(field: dataclasses.Field) -> str:
    """"int", "float", "bool", "str", "tuple", ... from a field's annotation."""
    t = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    return t.split("[")[0].strip()


def check_value(owner: str, name: str, value: Any, kind: str) -> Any:
    """`value` converted to `kind` ("int", "float", "bool", "str", "tuple"), or ConfigError."""
    where = f"{owner}: {name}"
    lo, hi = RANGES.get(name, (0, BIG_INT) if kind in ("int", "tuple") else (-math.inf, math.inf))
    if kind in ("bool", "str"):
        if not isinstance(value, bool if kind == "bool" else str):
            raise ConfigError(f"{where} must be {'true or false' if kind == 'bool' else 'text'}, got {value!r:.40}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, got {value!r:.40}")
        if not lo <= value <= hi:
            top = "2^63-1" if hi == BIG_INT else f"{hi:g}"
            raise ConfigError(f"{where} must be a whole number from {lo:g} to {top}, got {value}")
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
    return {k: check_value(cls.__name__, k, v, kind_of(fields[k])) if k in fields else v for k, v in data.items()}


def check_ranged_values(owner: str, data: dict[str, Any]) -> None:
    """Settings saved without their class (a checkpoint header): each one with a known range must be a number
    in that range. The class itself checks the rest when the settings are used."""
    for name, value in data.items():
        if name in RANGES:
            for one in value if isinstance(value, (list, tuple)) else [value]:     # widths come as lists
                check_value(owner, name, one, "int" if isinstance(one, int) and not isinstance(one, bool)
                            else "float")


def check_count(what: str, n, lo: int = 1, hi: int = BIG_INT) -> int:
    """A count from a user (images to draw, batch size): a whole number in [lo, hi]."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise BadInput(f"{what} must be a whole number, got {n!r:.40}")
    if n < lo:
        raise BadInput(f"{what} must be at least {lo}, got {n}")
    if n > hi:
        raise TooLarge(f"{what} is {n}; at most {hi}")
    return n


# ----------------------------------------------------------------------------------------------------
# What each setting means

# Names every config uses in the same sense, for fields whose own line carries no comment. A field's own
# comment (`field_comments`) always wins.
MEANINGS: dict[str, str] = {
    "model": "the model to train",
    "batch_size": "images per step",
    "lr_g": "generator learning rate (Adam)", "lr_d": "discriminator learning rate (Adam)",
    "beta1": "Adam's first-moment decay", "beta2": "Adam's second-moment decay",
    "epochs": "bound in passes over the data (0 = unbounded)", "minutes": "wall-clock bound in minutes (0 = unbounded)",
    "channels_last": "NHWC memory layout (faster convolutions on some GPUs)",
    "device": "auto (a GPU when there is one), cpu, cuda, cuda:N or mps",
    "seed": "seeds weights, data order and noise: the same seed repeats a run",
    "deterministic": "deterministic kernels: bit-identical reruns, somewhat slower",
    "num_workers": "data-loading processes (0 = in the training process)",
    "log_every_steps": "a progress event every this many steps",
    "sample_every_steps": "a preview grid every this many steps",
    "checkpoint_every_steps": "a resumable checkpoint every this many steps",
    "latent_dim": "length of the noise vector z", "image_channels": "1 = grey, 3 = RGB",
    "d_base_channels": "width of D's first block; later blocks double it",
    "res_blocks": "residual blocks in the generator's middle",
    "upsample": '"resize" (nearest + conv) or "transposed"',
    "d_spectral_norm": "spectral norm on D's convolutions (Miyato et al. 2018)",
    "lambda_gan": "weight of the adversarial loss", "lambda_cycle": "weight of the cycle-consistency L1",
    "pool_size": "past fakes D sees again (a history of generated images; 0 = none)",
    "num_patches": "patches per layer that PatchNCE compares", "nce_temperature": "PatchNCE's softmax temperature",
    "load_size": "training photos are resized to this side (pixels), then randomly cropped",
    "domain_a": 'what domain A holds ("horse"): labels and example photos',
    "domain_b": 'what domain B holds ("zebra")',
}


def field_comments(cls: type) -> dict[str, str]:
    """{field name: its trailing comment} from the class's source: the config explains itself on the CLI."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    field_name = None                 # the field the current line declares, if any
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NEWLINE:
            field_name = None
        elif tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in names:
            field_name = tok.string
        elif tok.type == tokenize.COMMENT and field_name and field_name not in out:
            out[field_name] = tok.string.lstrip("# ").strip()
    return out


def describe_fields(cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, kind, default, meaning) of every field of `cls`, in declaration order."""
    own = field_comments(cls)
    return [(f.name, kind_of(f), f.default, own.get(f.name) or MEANINGS.get(f.name, ""))
            for f in dataclasses.fields(cls)]
