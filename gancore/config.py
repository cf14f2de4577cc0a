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
    from gancore.validate import check_values
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
    from gancore.validate import check_values
    try:
        return dataclasses.replace(cfg, **check_values(type(cfg), changes))
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{type(cfg).__name__}: {e}") from None
