"""Frozen dataclass configs serialised with `asdict` to JSON; loading rejects unknown keys."""
from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar
from gancore.errors import BadInput

T = TypeVar("T")


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
    # Settings a later version removed (`REMOVED_SETTINGS`) are dropped from files saved before.
    data = {k: v for k, v in data.items() if k not in getattr(cls, "REMOVED_SETTINGS", ())}
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown setting(s) {unknown}; known: {sorted(names)}")
    kwargs = {}
    for k, v in data.items():
        if isinstance(v, list):
            v = tuple(v)
        kwargs[k] = v
    return cls(**kwargs)


def from_json(cls: type[T], text: str) -> T:
    return from_dict(cls, json.loads(text))


def override(cfg: T, **changes: Any) -> T:
    """`dataclasses.replace` that ignores None (unset CLI flags) and checks names."""
    changes = {k: v for k, v in changes.items() if v is not None}
    names = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ConfigError(f"{type(cfg).__name__}: unknown setting(s) {unknown}")
    return dataclasses.replace(cfg, **changes)
