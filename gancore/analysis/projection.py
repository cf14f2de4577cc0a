"""Find the latent code a generator needs to reproduce a given picture (GAN inversion by optimisation).

Projection as in Zhu et al. 2016 ("Generative Visual Manipulation on the Natural Image Manifold") and
StyleGAN2's projector (Karras et al. 2020): start from the best of many random codes, then descend the pixel
error with Adam over z, from several starts at once (a batch), and keep the best. A soft prior keeps |z|
near the shell where Gaussian codes live, so the direction sliders still act on a "typical" code.

Drawings are made to look like the training data first: `prepare_drawing` turns a sketch (dark strokes on
a light or transparent canvas) into an MNIST-style digit (white on black, 20 px box centred by its centre
of mass in 28 px, LeCun et al. 1998); a colour picture is centre-cropped and resized.

Latents travel as `.npy` files of shape (latent_dim,) float32 (`save_latent` / `load_latent`); a JSON
file `{"z": [...]}` loads too.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.lib.format as npy_format
import torch
from PIL import Image

from gancore.errors import BadInput, Unsupported
from gancore.imaging import seeded

INK_MIN_FRACTION = 0.002      # less ink than this (of the canvas) is an empty drawing


class ProjectionError(BadInput):
    """A drawing or latent file that cannot be used."""


# ----------------------------------------------------------------------------------------------------
# Pictures in

def _as_array(image) -> np.ndarray:
    if image is None:
        raise ProjectionError("the drawing is empty: draw something (or upload a picture) first")
    if isinstance(image, Image.Image):
        image = np.asarray(image)
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or min(a.shape[:2]) < 4:
        raise ProjectionError(f"expected a picture (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return a


def _on_white(a: np.ndarray) -> np.ndarray:
    """RGBA -> RGB over white (a sketch canvas is transparent where nothing was drawn)."""
    if a.ndim == 3 and a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float32) / 255
        a = (a[..., :3].astype(np.float32) * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    return a


def prepare_drawing(image, size: int = 28, channels: int = 1) -> np.ndarray:
    """A drawing or picture -> uint8 (size, size, channels) in the style of the model's training data.

    channels 1: strokes become white on black, cropped to their box, scaled to fit 20/28 of the side and
    centred by their centre of mass (how MNIST was made). channels 3: centre crop, resize.
    """
    a = _on_white(_as_array(image))
    if channels == 1:
        grey = a if a.ndim == 2 else np.asarray(Image.fromarray(a).convert("L"))
        ink = grey.astype(np.float32) / 255
        if ink.mean() > 0.5:                       # dark strokes on light paper -> MNIST's light on dark
            ink = 1 - ink
        mask = ink > 0.25
        if mask.mean() < INK_MIN_FRACTION:
            raise ProjectionError("the drawing is empty: draw a digit on the canvas first")
        ys, xs = np.nonzero(mask)
        crop = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        box = max(1, round(size * 20 / 28))
        f = box / max(crop.shape)
        h, w = max(1, round(crop.shape[0] * f)), max(1, round(crop.shape[1] * f))
        small = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize((w, h), Image.LANCZOS),
                           dtype=np.float32) / 255
        total = small.sum()
        cy = (small.sum(1) * np.arange(h)).sum() / total if total else h / 2
        cx = (small.sum(0) * np.arange(w)).sum() / total if total else w / 2
        top, left = int(round(size / 2 - cy)), int(round(size / 2 - cx))
        top, left = min(max(top, 0), size - h), min(max(left, 0), size - w)
        out = np.zeros((size, size), np.float32)
        out[top:top + h, left:left + w] = small
        return (out * 255).round().astype(np.uint8)[..., None]
    im = Image.fromarray(a).convert("RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((size, size), Image.LANCZOS)
    arr = np.asarray(im)
    if arr.std() < 1.0:
        raise ProjectionError("the picture is a single flat colour: there is nothing to reproduce")
    return arr


# ----------------------------------------------------------------------------------------------------
# Projection

@dataclass
class Projection:
    z: torch.Tensor                 # (1, latent_dim) float32
    image: np.ndarray               # uint8 (H, W, C): what the generator draws from z
    target: np.ndarray              # uint8 (H, W, C): the prepared drawing it was compared with
    mse: float                      # pixel mean squared error in [-1, 1] units (0 is identical)
    psnr_db: float
    best_random_mse: float          # the best of the random starting candidates, for comparison
    candidates: int
    elapsed_s: float
    steps: int
    history: list = field(default_factory=list)


def _to_unit(a: np.ndarray) -> torch.Tensor:
    """uint8 HWC -> (1, C, H, W) float in [-1, 1]."""
    return torch.from_numpy(a.astype(np.float32) / 127.5 - 1).permute(2, 0, 1).unsqueeze(0)


def _generate(model, z: torch.Tensor) -> torch.Tensor:
    return model.generator()(z).float()


def project(model, target, steps: int = 600, restarts: int = 8, candidates: int = 1000, lr: float = 0.1,
            prior_weight: float = 1e-3, seed: int = 0, time_budget_s: float = 1.6,
            prepared: bool = False, min_steps: int = 20) -> Projection:
    """The latent z with generate(z) closest (pixel MSE) to `target`, a drawing or picture.

    1. Draw `candidates` random codes, keep the `restarts` best as starts.
    2. Adam on all starts at once until `time_budget_s` is spent (or `steps` are done); the learning rate
       follows a cosine over that time from `lr` down to a tenth of it (the StyleGAN2 projector's ramp-down,
       on the clock instead of a step count), so the last steps refine instead of jumping about.
    3. Return the best. `prepared=True` when `target` is already uint8 at the model's size.
    """
    if getattr(model, "task", None) != "noise":
        raise Unsupported(f"{getattr(model, 'model_type', 'this model')} does not draw from a latent code; "
                          "choose a generator (MLP GAN or DCGAN)")
    t0 = time.perf_counter()
    cfg = model.config
    size, channels = cfg.image_size, cfg.image_channels
    tgt = np.asarray(target, dtype=np.uint8) if prepared else prepare_drawing(target, size, channels)
    if tgt.ndim == 2:
        tgt = tgt[..., None]
    if tgt.shape != (size, size, channels):
        raise ProjectionError(f"the prepared target is {tgt.shape}, the model draws {(size, size, channels)}")
    device = next(model.parameters()).device
    t = _to_unit(tgt).to(device)
    gen = seeded(seed)

    # 1. Random candidates, scored in batches.
    with torch.no_grad():
        zs = model.noise(int(candidates), generator=gen).to(device)
        errs = torch.cat([((_generate(model, zs[i:i + 250]) - t) ** 2).flatten(1).mean(1)
                          for i in range(0, len(zs), 250)])
    best_random = float(errs.min())
    k = max(1, min(int(restarts), len(zs)))
    z = zs[errs.argsort()[:k]].clone().requires_grad_(True)          # (k, latent)
    dim = z.shape[1]

    # 2. Descend from every start at once.
    opt = torch.optim.Adam([z], lr=lr)
    history, done = [], 0
    t_start = time.perf_counter()
    span = max(1e-3, t0 + time_budget_s - t_start)                # what the budget leaves for descent
    with torch.enable_grad():
        for step in range(int(steps)):
            frac = (time.perf_counter() - t_start) / span          # the schedule runs on time, not steps:
            if frac >= 1 and step >= min_steps:                    # a busy machine gets fewer, not longer, steps
                break
            for g in opt.param_groups:
                g["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(1.0, frac))))
            opt.zero_grad(set_to_none=True)
            mse = ((_generate(model, z) - t) ** 2).flatten(1).mean(1)           # (k,)
            prior = (z.pow(2).sum(1) / dim - 1).pow(2)                         # |z|^2 near latent_dim
            (mse + prior_weight * prior).sum().backward()
            opt.step()
            done = step + 1
            if step % 20 == 0:
                history.append(float(mse.detach().min()))

    # 3. Keep the best start.
    with torch.no_grad():
        out = _generate(model, z)
        mse = ((out - t) ** 2).flatten(1).mean(1)
        i = int(mse.argmin())
        best = float(mse[i])
        image = ((out[i].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    psnr = float(10 * np.log10(4.0 / max(best, 1e-12)))                       # peak-to-peak range is 2
    return Projection(z[i:i + 1].detach().cpu().float(), image, tgt, best, psnr, best_random, int(candidates),
                      time.perf_counter() - t0, done, history)


# ----------------------------------------------------------------------------------------------------
# Latent files

def save_latent(path, z: torch.Tensor) -> Path:
    """z (1, latent_dim) or (latent_dim,) -> a .npy file of float32 (latent_dim,)."""
    path = Path(path)
    np.save(path, np.asarray(z, dtype=np.float32).reshape(-1))
    return path if path.suffix == ".npy" else path.with_suffix(path.suffix + ".npy")


MAX_LATENT_FILE_BYTES = 10_000_000


def _not_latent(name: str, why: str) -> ProjectionError:
    return ProjectionError(f"not a latent file: {name}: {why}")


def _read_npy(p: Path, latent_dim: int) -> np.ndarray:
    """The array of a .npy file, its header checked before anything is allocated (a header may claim 10^12
    numbers; a pickle or a text or record dtype is no latent)."""
    with open(p, "rb") as f:
        try:
            version = npy_format.read_magic(f)
            read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, fortran, dtype = read(f)
        except (ValueError, OSError, SyntaxError, EOFError) as e:
            raise _not_latent(p.name, f"not a .npy array ({e.__class__.__name__})") from None
        if dtype.kind not in "fiu" or dtype.hasobject:
            raise _not_latent(p.name, f"holds {dtype.str} values, not numbers")
        count = int(np.prod(shape, dtype=object))
        if count != latent_dim:
            raise _not_latent(p.name, f"holds {count} numbers; this model needs {latent_dim} numbers")
        try:
            a = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype, count=count)
        except ValueError as e:
            raise _not_latent(p.name, f"the file is shorter than its header says ({e.__class__.__name__})") from None
        return a.reshape(shape, order="F" if fortran else "C")


def _read_json(p: Path) -> np.ndarray:
    try:
        data = json.loads(p.read_text())
        return np.asarray(data["z"] if isinstance(data, dict) else data, dtype=np.float32)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise _not_latent(p.name, f'expected JSON {{"z": [...]}} or a list of numbers ({e.__class__.__name__})'
                          ) from None


def load_latent(path, latent_dim: int) -> torch.Tensor:
    """A .npy (or JSON {"z": [...]} / [...]) latent file -> (1, latent_dim) float32; ProjectionError otherwise,
    always "not a latent file: <name>: <why>"."""
    p = Path(str(path))
    name = p.name
    if not p.is_file():
        raise _not_latent(name, "no such file")
    if p.stat().st_size > MAX_LATENT_FILE_BYTES:
        raise _not_latent(name, f"{p.stat().st_size / 1e6:.0f} MB is too large for one latent")
    try:
        a = _read_json(p) if p.suffix.lower() == ".json" else _read_npy(p, latent_dim)
    except OSError as e:
        raise _not_latent(name, e.strerror or e.__class__.__name__) from None
    if a.size != latent_dim:
        raise _not_latent(name, f"holds {a.size} numbers; this model needs {latent_dim} numbers")
    a = a.astype(np.float32).reshape(-1)
    if not np.isfinite(a).all():
        raise _not_latent(name, "the latent holds NaN or infinite numbers")
    return torch.from_numpy(a.copy()).unsqueeze(0)
