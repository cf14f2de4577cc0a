"""One helper for each image operation, used by the engine, the CLI, the service, the studio and export.

Conventions: model tensors are float NCHW / CHW in [-1, 1]; pictures for people are uint8 NHWC / HWC numpy.
torch is imported inside the functions that need it, so the studio can tile and encode pictures before
the engine has loaded.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFile

from gancore.errors import BadInput, DataError, DataTooLarge

if TYPE_CHECKING:
    import torch

MAX_SIDE = 1024           # translation works at most at this longer side; larger photos are scaled down
MAX_ASPECT = 20           # the sides of a photo may differ at most this many times
MIN_SIDE = 8


MAX_IMAGE_PIXELS = 40_000_000      # decompression-bomb guard for user files
ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
# open_image checks the pixel count itself and refuses in one line; PIL's warning would only add noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _bad(message: str) -> Exception:
    return DataError(message)


def open_image(path_or_file, max_pixels: int = MAX_IMAGE_PIXELS, name: str | None = None) -> Image.Image:
    """Open and fully decode an image (the first frame of an animation), or raise DataError with the reason.

    `name` is what messages call the file (an upload's own name; by default the path's file name). The pixel
    count is checked from the header before anything is decoded.
    """
    name = Path(name or getattr(path_or_file, "name", None) or str(path_or_file)).name
    if isinstance(path_or_file, (str, os.PathLike)):
        p = Path(path_or_file)
        if not p.is_file():
            raise DataError(f"{name}: no such file")
        if p.stat().st_size == 0:
            raise DataError(f"{name}: the file is empty")
    try:
        with Image.open(path_or_file) as im:
            if im.width * im.height > max_pixels:
                raise DataTooLarge(f"{name}: image is too large ({im.width}x{im.height} pixels; "
                                   f"at most {max_pixels / 1e6:.0f} megapixels)")
            im.load()
            return im.copy()
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise DataTooLarge(f"{name}: image is too large (over {max_pixels / 1e6:.0f} megapixels; "
                           "decompression-bomb guard)") from None
    except MemoryError:
        raise DataTooLarge(f"{name}: image is too large to decode in memory") from None
    except Image.UnidentifiedImageError:
        raise DataError(f"{name}: not a readable image (not an image file, or a format this program cannot "
                        "read)") from None
    except Exception as e:    # a damaged file can make a decoder raise almost anything
        kind = "truncated or damaged" if isinstance(e, (OSError, EOFError, SyntaxError)) else "damaged"
        raise DataError(f"{name}: not a readable image ({kind}: {e.__class__.__name__})") from None


# ----------------------------------------------------------------------------------------------------
# Conversions

def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HWC or HW -> float CHW in [-1, 1]."""
    import torch
    t = torch.from_numpy(np.array(img, dtype=np.uint8, copy=True))
    if t.ndim == 2:
        t = t.unsqueeze(-1)
    return t.permute(2, 0, 1).float().div(127.5).sub(1.0)


def to_uint8(x) -> np.ndarray:
    """float [-1, 1] (N, C, H, W) or (C, H, W), torch or numpy -> uint8 NHWC / HWC numpy."""
    import torch
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


MAX_SEED = 2**63 - 1


def check_seed(seed) -> int:
    """A seed from a user: a whole number in 0..2^63-1 (torch overflows past 2^64 and wraps negatives). A
    number field may send 3.0 for 3."""
    if isinstance(seed, float) and seed.is_integer():
        seed = int(seed)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise BadInput(f"seed must be a whole number from 0 to 2^63-1 ({MAX_SEED}), got {seed!r:.40}")
    return int(seed)


def seeded(seed: int) -> torch.Generator:
    """The random stream a seed stands for: the same seed gives the same images everywhere."""
    import torch
    return torch.Generator().manual_seed(check_seed(seed))


def seeded_noise(n: int, latent_dim: int, seed: int) -> torch.Tensor:
    """What a noise model's `noise(n, seeded(seed))` draws, without the model (ONNX files)."""
    import torch
    return torch.randn(int(n), int(latent_dim), generator=seeded(seed))


def tile(images: np.ndarray, cols: int | None = None, pad: int = 2, rgb: bool = False) -> np.ndarray:
    """(N, H, W, C) uint8 -> one grid image with white gaps (channels kept; grey made RGB with rgb=True)."""
    if rgb and images.shape[-1] == 1:
        images = images.repeat(3, axis=-1)
    n, h, w, c = images.shape
    cols = int(cols or np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, im in enumerate(images):
        r, k = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = im
    return out


def grid(images: torch.Tensor, cols: int | None = None) -> np.ndarray:
    """Model output (N, C, H, W) in [-1, 1] -> one RGB uint8 grid (grey images repeated to RGB)."""
    return tile(to_uint8(images), cols, rgb=True)


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 HWC (1 or 3 channels) or HW -> PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image).save(
        buf, format="PNG", compress_level=1)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------------
# Photos

def check_picture_size(w: int, h: int, name: str = "", what: str = "image",
                       max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """The size every picture must have before it is scaled: photos, clip frames and camera frames alike.

    At least MIN_SIDE pixels per side, sides differing at most MAX_ASPECT times (a 4096x8 strip would be
    scaled to 256x131072), at most `max_pixels` pixels. `name` (a file's name) starts the message.
    """
    label = f"{name}: {what}" if name else what
    if min(w, h) < MIN_SIDE:
        raise _bad(f"{label} is too small ({w}x{h}); it needs at least {MIN_SIDE} pixels per side")
    if max(w, h) / min(w, h) > MAX_ASPECT:
        raise _bad(f"{label} is too elongated ({w}x{h}); the sides may differ at most {MAX_ASPECT} times")
    if w * h > max_pixels:
        raise DataTooLarge(f"{label} is too large ({w}x{h} pixels; at most {max_pixels / 1e6:.0f} megapixels)")


def as_pil(image) -> Image.Image:
    """PIL image, uint8 array, path or file -> PIL image (files are opened with the engine's guards)."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or image.size == 0:
            raise _bad(f"expected an image array (H, W) or (H, W, C), got shape {image.shape}")
        return Image.fromarray(image.astype(np.uint8))
    return open_image(image)


def to_rgb_or_grey(im: Image.Image, channels: int) -> Image.Image:
    """Grey, palette, RGBA (composited on white), 16-bit and float grey, CMYK -> 'L' or 'RGB'."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        # PIL's own convert clips 16-bit values at 255 (an almost white picture): scale them instead.
        a = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16") or (im.mode == "I" and a.max(initial=0) > 255):
            a = a / 257.0
        elif im.mode == "F" and a.max(initial=0) <= 1.0:
            a = a * 255.0
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "P") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return im.convert("L" if channels == 1 else "RGB")


def square_photo(image, size: int, channels: int) -> np.ndarray:
    """Photo -> (C, size, size) float32 in [-1, 1]: shorter side to `size`, centre crop."""
    im = to_rgb_or_grey(as_pil(image), channels)
    s = size / min(im.size)
    im = im.resize((max(size, round(im.width * s)), max(size, round(im.height * s))), Image.BICUBIC)
    left, top = (im.width - size) // 2, (im.height - size) // 2
    a = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.float32) / 127.5 - 1
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)   # HWC -> CHW


def small_square(image, size: int, channels: int) -> tuple[np.ndarray, str]:
    """A user's picture for a small square model (digits, 32-64 px pictures): centre square, resized with
    box filtering (nearest when enlarging, so drawn pixels stay sharp); grey pictures with a light background
    are inverted, since MNIST digits are light strokes on black. Returns (uint8 HW or HWC, note)."""
    if image is None:
        raise _bad("choose an image first: upload one, draw one, or pick an example")
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise _bad("that does not look like an image")
    pil = to_rgb_or_grey(Image.fromarray(arr.astype(np.uint8)), channels)
    w, h = pil.size
    side = min(w, h)
    pil = pil.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    note = ""
    if (w, h) != (size, size):
        pil = pil.resize((size, size), Image.BOX if side > size else Image.NEAREST)
        note = f"resized from {w}x{h} to {size}x{size}"
    x = np.asarray(pil)
    if channels == 1 and x.mean() > 127:
        x = 255 - x
        note = (note + "; " if note else "") + "inverted (light background)"
    return x, note


def prepare_photo(image, channels: int, image_size: int, max_side: int = MAX_SIDE, scale: str = "model"):
    """Photo -> (tensor (1, C, H', W'), output size (w, h), note).

    scale="model": the shorter side goes to the model's training size (what it learned to see) and the
    result is resized back; scale="full": the photo is used at its own size (capped at max_side).
    The output keeps the photo's size, capped at max_side on its longer side.
    """
    im = to_rgb_or_grey(as_pil(image), channels)
    w, h = im.size
    check_picture_size(w, h, Path(image).name if isinstance(image, (str, os.PathLike)) else "")
    note, out_w, out_h = "", w, h
    if max(w, h) > max_side:
        f = max_side / max(w, h)
        out_w, out_h = max(1, round(w * f)), max(1, round(h * f))
        note = f"scaled down from {w}x{h} to {out_w}x{out_h} (longest side at most {max_side} pixels)"
    s = min(image_size / min(w, h), max_side / max(w, h)) if scale == "model" else min(1.0, max_side / max(w, h))
    nw, nh = max(MIN_SIDE, round(w * s)), max(MIN_SIDE, round(h * s))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BICUBIC)
    return to_tensor(np.asarray(im)).unsqueeze(0), (out_w, out_h), note


def run_padded(net, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad height and width to a multiple of `multiple`, run `net` (any tensor -> tensor callable),
    crop the padding away."""
    import torch.nn.functional as F
    h, w = x.shape[-2:]
    multiple = max(1, int(multiple))
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if h > ph and w > pw else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return net(x)[..., :h, :w]


def resize_to(x: torch.Tensor, size_wh: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] -> the given (width, height), bicubic, clamped back to [-1, 1]."""
    import torch.nn.functional as F
    w, h = size_wh
    if x.shape[-2:] == (h, w):
        return x
    return F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)


def gaussian_blur(x: torch.Tensor, sigma: float, border: str = "zeros") -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W). border="zeros" (what normalised convolution needs) or
    "reflect" (a blurred copy of a picture, as a neutral background)."""
    import math

    import torch
    import torch.nn.functional as F
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    c = x.shape[1]
    pad = min(radius, x.shape[-1] - 1, x.shape[-2] - 1) if border == "reflect" else 0
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius - pad), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius - pad, 0), groups=c)


# ----------------------------------------------------------------------------------------------------
# Heatmaps over pictures (the Explain and Masks tabs)

# A perceptually ordered colour map ("inferno"-like), 8 stops interpolated linearly.
_STOPS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                   [250, 193, 39], [252, 255, 164]], dtype=np.float32)


def colormap(heat: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8."""
    h = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0, 1) * (len(_STOPS) - 1)
    i = np.minimum(h.astype(int), len(_STOPS) - 2)
    t = (h - i)[..., None]
    return (_STOPS[i] * (1 - t) + _STOPS[i + 1] * t).round().astype(np.uint8)


def overlay(image: np.ndarray, heat: np.ndarray, opacity: float = 0.5, colorbar: bool = True,
            min_side: int = 256, label: str = "") -> np.ndarray:
    """Heatmap over an image (uint8 HW / HWC) with a colour bar: uint8 RGB.

    Small images (MNIST's 28 px) are enlarged with nearest-neighbour to at least `min_side`, so pixels stay
    visible; the heatmap is resized to the image. `opacity` 0 shows the image only, 1 the heatmap only.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise BadInput("overlay expects a uint8 image")
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    pil = Image.fromarray(img).convert("RGB")
    scale = max(1, int(np.ceil(min_side / min(pil.size))))
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    heat_img = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize(pil.size, Image.BILINEAR)
    colored = colormap(np.asarray(heat_img, dtype=np.float32) / 255)
    a = float(np.clip(opacity, 0, 1))
    blend = (np.asarray(pil, dtype=np.float32) * (1 - a) + colored.astype(np.float32) * a).round().astype(np.uint8)
    if not colorbar:
        return blend
    h, w = blend.shape[:2]
    bar_w, margin, text_w = max(12, w // 20), 6, 34
    canvas = Image.new("RGB", (w + margin + bar_w + text_w, h), (255, 255, 255))
    canvas.paste(Image.fromarray(blend), (0, 0))
    ramp = colormap(np.linspace(1, 0, h, dtype=np.float32)[:, None].repeat(bar_w, 1))
    canvas.paste(Image.fromarray(ramp), (w + margin, 0))
    draw = ImageDraw.Draw(canvas)
    x_text = w + margin + bar_w + 3
    draw.text((x_text, 0), "high", fill=(0, 0, 0))
    draw.text((x_text, h - 12), "low", fill=(0, 0, 0))
    if label:
        draw.text((x_text, h // 2 - 6), label[:5], fill=(0, 0, 0))
    return np.asarray(canvas)
