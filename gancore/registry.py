"""name -> (config class, model class). Explicit imports, no discovery (after torchvision's _api.py).

The torch-free facts about each model (task, title, recipe, studio presets) live in `gancore.catalog`.

A model config is also checked here for what it would allocate: the model is built on the `meta` device
(shapes only, no memory) and its parameter count is capped (`check_model_size`), so a config from a file
header or a web form that asks for gigabytes is refused in one line.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch

from gancore import catalog
from gancore.config import ConfigError, check_values, from_json, to_json
from gancore.errors import TooLarge
from gancore.models import cut, cyclegan, dcgan, maskrec, mlp

MAX_PARAMETERS = 100_000_000           # 400 MB of fp32 weights; the shipped models have 0.4 to 11 million
MAX_ACTIVATION = 2**27                 # elements of the widest full-resolution feature map (512 MB in fp32)


@dataclass(frozen=True)
class Entry:
    name: str
    config_cls: type
    model_cls: type
    info: catalog.ModelInfo

    task = property(lambda self: self.info.task)
    title = property(lambda self: self.info.title)


_REGISTRY: dict[str, Entry] = {}


def register(name: str, config_cls: type, model_cls: type, task: str | None = None, title: str = "",
             **info) -> None:
    """Add a model. `task`/`title`/`recipe`/`studio` go to the catalog unless it already describes `name`."""
    if task is not None or catalog.get(name) is None:
        catalog.add(catalog.ModelInfo(name, task or model_cls.task, title or name, **info))
    _REGISTRY[name] = Entry(name, config_cls, model_cls, catalog.get(name))


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> Entry:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def build(name: str, config=None):
    entry = get(name)
    return entry.model_cls(config or entry.config_cls())


def config_from_json(name: str, text: str, check_size: bool = True):
    """A model config from JSON (a checkpoint header): values checked, and what it would allocate."""
    cfg = from_json(get(name).config_cls, text)
    if check_size:
        check_model_size(name, cfg)
    return cfg


register("mlp", mlp.MLPGANConfig, mlp.MLPGAN)
register("dcgan", dcgan.DCGANConfig, dcgan.DCGAN)
register("cyclegan", cyclegan.CycleGANConfig, cyclegan.CycleGAN)
register("cut", cut.CUTConfig, cut.CUT)
register("maskrec", maskrec.MaskRecConfig, maskrec.MaskRec)


# ----------------------------------------------------------------------------------------------------
# What a model config allocates

class ConfigTooLarge(ConfigError, TooLarge):
    """A config that would allocate more than the caps."""


@functools.lru_cache(maxsize=64)
def meta_shapes(model_type: str, config_json: str) -> tuple[dict[str, dict[str, tuple]], tuple[str, ...], int]:
    """(network -> {key: shape}, generator network names, parameter count), from a model built on `meta`."""
    cfg = config_from_json(model_type, config_json, check_size=False)
    with torch.device("meta"):
        model = get(model_type).model_cls(cfg)
    shapes = {name: {k: tuple(v.shape) for k, v in net.state_dict().items()} for name, net in model.networks().items()}
    count = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    return shapes, tuple(model.generator_networks()), count


def check_model_size(model_type: str, cfg) -> None:
    """Refuse a model config that would allocate more than the caps, before anything is allocated."""
    size = int(getattr(cfg, "image_size", 0) or 0)
    widest = max(int(getattr(cfg, k, 0) or 0) for k in ("base_channels", "d_base_channels", "latent_dim"))
    if size * size * widest > MAX_ACTIVATION:
        raise ConfigTooLarge(f"{model_type} config: image_size {size} with {widest} channels needs feature maps "
                             f"of {size * size * widest * 4 / 1e9:.1f} GB; at most {MAX_ACTIVATION * 4 / 1e9:.1f} GB")
    count = meta_shapes(model_type, to_json(cfg))[2]
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
