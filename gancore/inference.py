"""Cached model loading and inference that returns numpy uint8.

`load_model(path)` builds the model a checkpoint's header names and loads its generator weights (the EMA
copy when the file has one). Before any real model is built, the header's tensor shapes are compared with
the model its config builds on the `meta` device (`checkpoint_model`), so a header that lies about its
config is refused in one line instead of allocating gigabytes. `sample` draws images from noise models;
`translate` runs a CycleGAN direction on a photo of any size.
"""
from __future__ import annotations

import functools
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from gancore import checkpoint as ckpt
from gancore import registry
from gancore.config import check_count, check_ranged_values, to_json
from gancore.errors import BadInput, Unsupported
from gancore.imaging import MAX_SIDE, prepare_photo, resize_to, run_padded, seeded, to_uint8

MAX_SAMPLE_BATCH = 4096   # images per sample() call; more are drawn in batches (the CLI does)


def load_weights_into(model, path: str) -> list[str]:
    """Load every network the file holds into `model` (EMA generator weights preferred). Returns names."""
    tensors, meta = ckpt.load(path)
    if meta.get("model_type") != model.model_type:
        raise ckpt.CheckpointError(f"{Path(path).name}: holds a {meta.get('model_type')!r} model, "
                                   f"not {model.model_type!r}")
    loaded = []
    for name, net in model.networks().items():
        state = ckpt.subdict(tensors, f"ema.{name}") or ckpt.subdict(tensors, name)
        if state:
            ckpt.load_state(net, state, name, Path(path).name)
            loaded.append(name)
    if not any(n in loaded for n in model.generator_networks()):
        raise ckpt.CheckpointError(f"{Path(path).name}: holds no generator weights")
    return loaded


# ----------------------------------------------------------------------------------------------------
# Loading: the header checked before anything is allocated

def check_checkpoint_shapes(name: str, model_type: str, cfg, entries: dict[str, dict]) -> None:
    """The tensors a checkpoint header lists must be exactly what its model config builds.

    `entries` is the safetensors header without `__metadata__` (key -> dtype, shape, data_offsets). Each
    network may be stored plain (`G.*`) and/or averaged (`ema.G.*`); optimizer, RNG and extra state are free.
    """
    registry.check_model_size(model_type, cfg)
    shapes, generators, _ = registry.meta_shapes(model_type, to_json(cfg))
    free = ("optim.", "rng.", "extra.")
    prefixes = {p: net for net in shapes for p in (f"{net}.", f"ema.{net}.")}
    stray = [k for k in entries if not k.startswith(free) and not any(k.startswith(p) for p in prefixes)]
    if stray:
        raise ckpt.CheckpointError(f"{name}: tensors {stray[:3]} do not belong to a {model_type} model; "
                                   "the file may hold another model")
    for prefix, net in prefixes.items():
        got = {k[len(prefix):]: tuple(v["shape"]) for k, v in entries.items() if k.startswith(prefix)}
        if got:
            _check_network_shapes(name, model_type, prefix, got, shapes[net])
    if not any(f"{g}.{k}" in entries or f"ema.{g}.{k}" in entries for g in generators for k in shapes[g]):
        raise ckpt.CheckpointError(f"{name}: holds no generator weights")


def _check_network_shapes(name: str, model_type: str, prefix: str, got: dict, want: dict) -> None:
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    wrong = [f"{prefix}{k} is {list(got[k])}, the config builds {list(want[k])}"
             for k in want if k in got and got[k] != want[k]]
    if missing or extra or wrong:
        detail = wrong[0] if wrong else f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise ckpt.CheckpointError(f"{name}: the tensors do not fit the {model_type} config in the header "
                                   f"({detail})")


def checkpoint_model(path) -> tuple[dict[str, str], str, object]:
    """(metadata, model type, validated model config) of a checkpoint, shapes checked; nothing is allocated."""
    name = Path(path).name
    meta, entries = ckpt.read_index(path)
    model_type = meta.get("model_type", "")
    if model_type not in registry.list_models():
        raise ckpt.CheckpointError(f"{name}: unknown model type {model_type!r}; this version knows "
                                   f"{', '.join(registry.list_models())}")
    try:
        cfg = registry.config_from_json(model_type, meta.get("model_config", ""))
    except (BadInput, ValueError, TypeError) as e:
        raise ckpt.CheckpointError(f"{name}: unusable model config ({e})") from None
    check_checkpoint_shapes(name, model_type, cfg, entries)
    for key in ("train_state", "trained"):     # the run's settings: the ranged ones must hold sane values
        if key in meta:
            try:
                check_ranged_values("TrainConfig", json.loads(meta[key])["train_config"])
            except BadInput as e:
                raise ckpt.CheckpointError(f"{name}: the training settings in the header are damaged ({e})") from None
    return meta, model_type, cfg


def load_model(path: str | os.PathLike, device: str = "cpu"):
    """Model in eval mode with the checkpoint's generator weights (cached by path and mtime)."""
    p = Path(path)
    if not p.is_file():
        raise ckpt.CheckpointError(f"{p}: no such checkpoint file")
    return _load_cached(str(p.resolve()), p.stat().st_mtime_ns, device)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, _mtime: int, device: str):
    _, model_type, config = checkpoint_model(path)    # values, size and tensor shapes checked on `meta` first
    model = registry.build(model_type, config)
    load_weights_into(model, path)
    return model.to(device).eval().requires_grad_(False)


def header_summary(path: str | os.PathLike) -> dict:
    """Header fields a person cares about, for the models view and `gancore inspect`.

    The header is checked as loading checks it (config values, size, tensor shapes), so a file listed as
    usable loads; only what needs the tensors themselves (NaN weights) shows up later.
    """
    meta = checkpoint_model(path)[0]
    out = {k: v for k, v in meta.items()
           if k not in ("model_config", "train_state", "metrics", "trained", "distill_state", "distilled")}
    out["model_config"] = json.loads(meta.get("model_config", "{}"))
    if "metrics" in meta:
        out["metrics"] = json.loads(meta["metrics"])
    if "train_state" in meta:
        st = json.loads(meta["train_state"])
        out["train"] = {"step": st["step"], "epoch": st["epoch"], "elapsed_s": round(st.get("elapsed_s", 0), 1),
                        "config": st["train_config"]}
    for key in ("distill_state", "distilled"):   # a student: its distillation so far
        if key in meta:
            st = json.loads(meta[key])
            out["distilled"] = {"step": st.get("step"), "elapsed_s": round(st.get("elapsed_s") or 0, 1),
                                "teacher": st.get("teacher")}
    if "trained" in meta and "train" not in out:      # weights-only files keep the same summary (export_weights)
        st = json.loads(meta["trained"])
        out["train"] = {"step": st["step"], "epoch": st["epoch"], "elapsed_s": round(st.get("elapsed_s") or 0, 1),
                        "config": st["train_config"]}
    out["size_bytes"] = Path(path).stat().st_size
    return out


def export_weights(src: str, dst: str, dtype: torch.dtype = torch.float16, discriminators: bool = True,
                   metrics: dict | None = None, networks: list[str] | None = None,
                   header: dict[str, str] | None = None) -> str:
    """A compact weights file (fp16, EMA generators as the main weights) from a training or distillation
    checkpoint. Keeping the discriminators lets a later run warm-start (`init_from`) from the shipped file.
    `header`: extra string fields for the file's header (e.g. studio_default="translate").
    """
    tensors, meta = ckpt.load(src)
    model = registry.build(meta["model_type"], registry.config_from_json(meta["model_type"], meta["model_config"]))
    gens = set(model.generator_networks())
    out = {}
    for name in model.networks():
        if (name not in gens and not discriminators) or (networks and name not in networks):
            continue
        state = (ckpt.subdict(tensors, f"ema.{name}") if name in gens else {}) or ckpt.subdict(tensors, name)
        out.update({f"{name}.{k}": (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()})
    new_meta = {"model_type": meta["model_type"], "model_config": meta["model_config"]}
    if "train_state" in meta:
        st = json.loads(meta["train_state"])
        new_meta["trained"] = json.dumps({"step": st["step"], "epoch": st["epoch"],
                                          "elapsed_s": st.get("elapsed_s"), "train_config": st["train_config"]})
    if "distill_state" in meta:
        st = json.loads(meta["distill_state"])
        new_meta["distilled"] = json.dumps({k: st.get(k) for k in ("step", "elapsed_s", "teacher", "distill_config")})
    if metrics:
        new_meta["metrics"] = json.dumps(metrics)
    ckpt.save(dst, out, {**new_meta, **(header or {})})
    return dst


# ----------------------------------------------------------------------------------------------------
# Noise models

@torch.no_grad()
def sample(model, n: int = 16, seed: int = 0, z: torch.Tensor | None = None, truncation: float = 1.0) -> np.ndarray:
    """n images (N, H, W, C) uint8 from a noise model."""
    if model.task != "noise":
        raise Unsupported(f"{model.model_type} does not generate from noise")
    if z is None:
        check_count("n (images to draw)", n, 1, MAX_SAMPLE_BATCH)
        z = model.noise(n, generator=seeded(seed)) * truncation
    return to_uint8(model.generator()(z.to(next(model.parameters()).device)))


# ----------------------------------------------------------------------------------------------------
# Translation

def translate_with(run, image, channels: int, image_size: int, size_multiple: int, run_back=None,
                   scale: str = "model", max_side: int = MAX_SIDE, strength: float = 1.0) -> dict:
    """Translate one photo with `run` (tensor (1, C, H, W) -> tensor): the one path the studio, the CLI and the
    service share, so the same photo gives the same pixels everywhere.

    strength in [0, 1] mixes the photo (0) and the full translation (1) pixel by pixel: every step in between
    is a real photograph cross-faded with its translation, never a half-trained network's guess.
    Returns {"output": uint8 HWC, "reconstruction": uint8 HWC or None, "note": str, "ms": float (the
    translation, photo in to picture out), "round_trip_ms": float (translating it back; 0 without run_back)}.
    """
    if not isinstance(strength, (int, float)) or not math.isfinite(strength) or not 0 <= strength <= 1:
        raise BadInput(f"strength must be a number from 0 to 1 (0 %: the photo, 100 %: the translation), got {strength!r:.20}")
    t0 = time.perf_counter()
    x, size_wh, note = prepare_photo(image, channels, image_size, max_side, scale)
    y = run_padded(run, x, size_multiple)
    out = resize_to(y, size_wh)
    if strength < 1:
        out = torch.lerp(resize_to(x, size_wh), out, float(strength))
    out = to_uint8(out[0])
    t1 = time.perf_counter()
    if run_back is None:
        return {"output": out, "note": note, "ms": (t1 - t0) * 1000, "round_trip_ms": 0.0, "reconstruction": None}
    rec = to_uint8(resize_to(run_padded(run_back, y, size_multiple), size_wh)[0])
    return {"output": out, "note": note, "ms": (t1 - t0) * 1000, "round_trip_ms": (time.perf_counter() - t1) * 1000,
            "reconstruction": rec}


def translation_ways(model, direction: str = "AB", cycle: bool = False) -> tuple[str, str | None]:
    """(the way to translate, the way back for a round trip or None), checked against what the model does."""
    if model.task != "translate":
        raise Unsupported(f"{model.model_type} is not a translation model")
    if direction and direction not in model.directions() and direction not in model.directions().values():
        ways = " and ".join(model.direction_labels().values())
        raise Unsupported(f"this model translates {ways} only; choose a model that goes the other way")
    way = model.direction(direction)
    return way, (model.inverse(way) if cycle else None)     # a one-way model has no round trip


@torch.no_grad()
def translate(model, image, direction: str = "AB", cycle: bool = False, scale: str = "model",
              max_side: int = MAX_SIDE, strength: float = 1.0) -> dict:
    """Translate one photo with a translation model in PyTorch (see `translate_with`)."""
    way, back = translation_ways(model, direction, cycle)
    device = next(model.parameters()).device
    on_device = lambda net: (lambda t: net(t.to(device)).cpu())   # noqa: E731
    return translate_with(on_device(model.generator(way)), image, model.config.image_channels,
                          model.config.image_size, model.size_multiple,
                          on_device(model.generator(back)) if back else None, scale, max_side, strength)
