"""name -> (config class, model class). Explicit imports, no discovery (after torchvision's _api.py).

The torch-free facts about each model (task, title, recipe, studio presets) live in `gancore.catalog`.
"""
from __future__ import annotations

from dataclasses import dataclass

from gancore import catalog
from gancore.config import ConfigError, from_json


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
    if all(n in _REGISTRY for n in ("mlp", "dcgan", "cyclegan", "cut", "maskrec")):
        return
    from gancore.models import cut, cyclegan, dcgan, maskrec, mlp
    register("mlp", mlp.MLPGANConfig, mlp.MLPGAN)
    register("dcgan", dcgan.DCGANConfig, dcgan.DCGAN)
    register("cyclegan", cyclegan.CycleGANConfig, cyclegan.CycleGAN)
    register("cut", cut.CUTConfig, cut.CUT)
    register("maskrec", maskrec.MaskRecConfig, maskrec.MaskRec)
