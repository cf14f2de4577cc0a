"""Cached model loading and inference that returns numpy uint8.

`load_model(path)` builds the model a checkpoint's header names and loads its generator weights (the EMA
copy when the file has one). `sample` draws images from noise models; `translate` runs a CycleGAN
direction on a photo of any size.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gancore import checkpoint as ckpt
from gancore import registry
from gancore.data import DataError, open_image, to_rgb_or_grey, to_tensor, to_uint8
from gancore.errors import BadInput, Unsupported

MAX_SIDE = 1024           # translation works at most at this longer side; larger inputs are scaled down
MAX_INPUT_PIXELS = 40_000_000
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


def load_model(path: str | os.PathLike, device: str = "cpu"):
    """Model in eval mode with the checkpoint's generator weights (cached by path and mtime)."""
    p = Path(path)
    if not p.is_file():
        raise ckpt.CheckpointError(f"{p}: no such checkpoint file")
    return _load_cached(str(p.resolve()), p.stat().st_mtime_ns, device)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, _mtime: int, device: str):
    from gancore.validate import checkpoint_model
    _, model_type, config = checkpoint_model(path)    # values, size and tensor shapes checked on `meta` first
    model = registry.build(model_type, config)
    load_weights_into(model, path)
    return model.to(device).eval().requires_grad_(False)


def header_summary(path: str | os.PathLike) -> dict:
    """Header fields a person cares about, for the models view and `gancore inspect`.

    The header is checked as loading checks it (config values, size, tensor shapes), so a file listed as
    usable loads; only what needs the tensors themselves (NaN weights) shows up later.
    """
    from gancore.validate import checkpoint_model
    meta = checkpoint_model(path)[0]
    out = {k: v for k, v in meta.items() if k not in ("model_config", "train_state", "metrics", "trained")}
    out["model_config"] = json.loads(meta.get("model_config", "{}"))
    if "metrics" in meta:
        out["metrics"] = json.loads(meta["metrics"])
    if "train_state" in meta:
        st = json.loads(meta["train_state"])
        out["train"] = {"step": st["step"], "epoch": st["epoch"], "elapsed_s": round(st.get("elapsed_s", 0), 1),
                        "config": st["train_config"]}
    elif "trained" in meta:      # weights-only files keep the same summary (see export_weights)
        st = json.loads(meta["trained"])
        out["train"] = {"step": st["step"], "epoch": st["epoch"], "elapsed_s": round(st.get("elapsed_s") or 0, 1),
                        "config": st["train_config"]}
    out["size_bytes"] = Path(path).stat().st_size
    return out


def export_weights(src: str, dst: str, dtype: torch.dtype = torch.float16, discriminators: bool = True,
                   metrics: dict | None = None, networks: list[str] | None = None) -> str:
    """A compact weights file (fp16, EMA generators as the main weights) from a training checkpoint.

    Keeping the discriminators lets a later run warm-start (`init_from`) from the shipped file.
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
    if metrics:
        new_meta["metrics"] = json.dumps(metrics)
    ckpt.save(dst, out, new_meta)
    return dst


# ----------------------------------------------------------------------------------------------------
# Noise models

@torch.no_grad()
def sample(model, n: int = 16, seed: int = 0, z: torch.Tensor | None = None, truncation: float = 1.0) -> np.ndarray:
    """n images (N, H, W, C) uint8 from a noise model."""
    if model.task != "noise":
        raise Unsupported(f"{model.model_type} does not generate from noise")
    if z is None:
        from gancore.validate import check_count
        check_count("n (images to draw)", n, 1, MAX_SAMPLE_BATCH)
        z = model.noise(n, generator=torch.Generator().manual_seed(int(seed))) * truncation
    return to_uint8(model.generate(z.to(next(model.parameters()).device)))


# ----------------------------------------------------------------------------------------------------
# Translation

def _as_pil(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or image.size == 0:
            raise DataError(f"expected an image array (H, W) or (H, W, C), got shape {image.shape}")
        return Image.fromarray(image.astype(np.uint8))
    return open_image(image)


def prepare_for_translation(image, model, max_side: int = MAX_SIDE, scale: str = "model"):
    """PIL or path -> (tensor (1, C, H', W'), original size, note). H', W' are padded by the caller.

    scale="model": the shorter side goes to the model's training size (what it learned to see), the
    result is resized back; scale="full": the photo is used at its own size (capped at max_side).
    """
    im = to_rgb_or_grey(_as_pil(image), model.config.image_channels)
    w, h = im.size
    label = f"{Path(image).name}: " if isinstance(image, (str, os.PathLike)) else ""   # name the file
    if min(w, h) < 8:
        raise DataError(f"{label}image is too small ({w}x{h}); it needs at least 8 pixels per side")
    if max(w, h) / min(w, h) > 20:
        raise DataError(f"{label}image is too elongated ({w}x{h}); the sides may differ at most 20 times")
    note = ""
    # The result keeps the photo's size, capped at max_side on its longer side.
    out_w, out_h = w, h
    if max(w, h) > max_side:
        f = max_side / max(w, h)
        out_w, out_h = max(1, round(w * f)), max(1, round(h * f))
        note = f"scaled down from {w}x{h} to {out_w}x{out_h} (longest side at most {max_side} pixels)"
    if scale == "model":
        s = model.config.image_size / min(w, h)
        s = min(s, max_side / max(w, h))
    else:
        s = min(1.0, max_side / max(w, h))
    nw, nh = max(8, round(w * s)), max(8, round(h * s))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BICUBIC)
    return to_tensor(np.asarray(im)).unsqueeze(0), (out_w, out_h), note


def run_padded(net, x: torch.Tensor, multiple: int = 4) -> torch.Tensor:
    """Reflect-pad to a multiple of `multiple`, run, crop back."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if h > ph and w > pw else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return net(x)[..., :h, :w]


@torch.no_grad()
def translate(model, image, direction: str = "AB", cycle: bool = False, scale: str = "model",
              max_side: int = MAX_SIDE) -> dict:
    """Translate one photo. Returns {"output": uint8 HWC, "reconstruction": uint8 HWC or None, "note": str}."""
    if model.task != "translate":
        raise Unsupported(f"{model.model_type} is not a translation model")
    if direction not in ("AB", "BA"):
        raise BadInput("direction must be 'AB' or 'BA'")
    fwd, back = (model.G.G_AB, model.G.G_BA) if direction == "AB" else (model.G.G_BA, model.G.G_AB)
    x, (w, h), note = prepare_for_translation(image, model, max_side, scale)
    x = x.to(next(model.parameters()).device)
    y = run_padded(fwd, x)
    rec = run_padded(back, y) if cycle else None

    def back_to_size(t):
        if t.shape[-2:] != (h, w):
            t = F.interpolate(t, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)
        return to_uint8(t[0])
    return {"output": back_to_size(y), "reconstruction": back_to_size(rec) if rec is not None else None,
            "note": note}
