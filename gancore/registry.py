"""name -> (config class, model class, task). Explicit imports, no discovery (after torchvision's _api.py)."""
from __future__ import annotations

from dataclasses import dataclass

from gancore.config import ConfigError, from_json


@dataclass(frozen=True)
class Entry:
    name: str
    config_cls: type
    model_cls: type
    task: str
    title: str


_REGISTRY: dict[str, Entry] = {}


def register(name: str, config_cls: type, model_cls: type, task: str, title: str) -> None:
    _REGISTRY[name] = Entry(name, config_cls, model_cls, task, title)


def list_models() -> list[str]:
    _ensure()
    return sorted(_REGISTRY)


def get(name: str) -> Entry:
    _ensure()
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
        from gancore.validate import check_model_size
        check_model_size(name, cfg)
    return cfg


def _ensure() -> None:
    if _REGISTRY:
        return
    from gancore.models import cyclegan, dcgan, maskrec, mlp
    register("mlp", mlp.MLPGANConfig, mlp.MLPGAN, "noise", "MLP GAN (Goodfellow et al. 2014)")
    register("dcgan", dcgan.DCGANConfig, dcgan.DCGAN, "noise", "DCGAN (Radford et al. 2016)")
    register("cyclegan", cyclegan.CycleGANConfig, cyclegan.CycleGAN, "translate", "CycleGAN (Zhu et al. 2017)")
    register("maskrec", maskrec.MaskRecConfig, maskrec.MaskRec, "inpaint", "Masked reconstruction (context encoder, Pathak et al. 2016)")
