"""Masks inside images, simple fills, and PSNR: the tools of masked reconstruction.

A mask is a float tensor (N, 1, H, W) with 1 where a pixel is hidden and 0 where it is visible. Masks are
drawn per image: the seed's `mask_image` indexed the batch dimension and so blanked whole images; here
every image keeps exactly `round(ratio * units)` of its own pixels (or patches) hidden.

Baselines for the reconstruction model: mean fill (the visible mean of each image and channel), blur fill
(normalised convolution: a Gaussian-weighted average of the visible neighbours) and diffusion inpainting
(harmonic fill: hidden pixels relax to the average of their neighbours, visible pixels stay fixed).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from gancore.errors import BadInput
from gancore.imaging import gaussian_blur

__all__ = ["pixel_mask", "patch_mask", "random_mask", "mask_from_array", "mask_image", "mean_fill",
           "blur_fill", "diffusion_fill", "psnr", "hidden_share"]


def _ratios(n: int, ratio, device=None) -> torch.Tensor:
    r = torch.as_tensor(ratio, dtype=torch.float32, device=device).flatten()
    if r.numel() == 1:
        r = r.expand(n)
    if r.numel() != n:
        raise ValueError(f"expected one mask ratio or {n}, got {r.numel()}")
    if (r < 0).any() or (r > 1).any():
        raise ValueError("mask ratio must lie in [0, 1]")
    return r


def _hide_lowest(scores: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """scores (N, U) -> (N, U) float with exactly round(ratio_i * U) ones per row (the lowest scores)."""
    n, u = scores.shape
    k = torch.round(ratio.to(scores.device) * u).long()                  # units to hide, per image
    rank = scores.argsort(dim=1).argsort(dim=1)                           # rank of each unit in its row
    return (rank < k[:, None]).float()


def pixel_mask(n: int, height: int, width: int, ratio=0.5, generator: torch.Generator | None = None,
               device=None) -> torch.Tensor:
    """Random pixels hidden inside each image: (N, 1, H, W), exactly round(ratio * H * W) ones per image.

    `ratio` is one number or one per image. Without a generator the global RNG is used (exact resume).
    """
    r = _ratios(n, ratio)
    scores = torch.rand(n, height * width, generator=generator)
    return _hide_lowest(scores, r).view(n, 1, height, width).to(device)   # (N, H*W) -> (N, 1, H, W)


def patch_mask(n: int, height: int, width: int, ratio=0.5, patch_size: int = 4,
               generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Random square patches hidden inside each image (MAE-style grid): (N, 1, H, W).

    The grid has ceil(H / patch) x ceil(W / patch) cells; exactly round(ratio * cells) are hidden. When the
    patch divides the image the hidden pixel share equals the patch share; otherwise border cells are
    cropped and the pixel share is close to it.
    """
    if patch_size < 1:
        raise ValueError("patch size must be at least 1 pixel")
    r = _ratios(n, ratio)
    gh, gw = math.ceil(height / patch_size), math.ceil(width / patch_size)
    scores = torch.rand(n, gh * gw, generator=generator)
    cells = _hide_lowest(scores, r).view(n, 1, gh, gw)                     # (N, cells) -> (N, 1, gh, gw)
    full = cells.repeat_interleave(patch_size, 2).repeat_interleave(patch_size, 3)
    return full[..., :height, :width].contiguous().to(device)


def random_mask(kind: str, n: int, height: int, width: int, ratio=0.5, patch_size: int = 4,
                generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    if kind == "pixel" or patch_size == 1:
        return pixel_mask(n, height, width, ratio, generator, device)
    if kind == "patch":
        return patch_mask(n, height, width, ratio, patch_size, generator, device)
    raise ValueError("mask kind must be 'pixel' or 'patch'")


def mask_from_array(array, height: int | None = None, width: int | None = None, threshold: float = 0.5) -> torch.Tensor:
    """A user-given mask (numpy/tensor, HW or HWC, bool/uint8/float; nonzero = hidden) -> (1, 1, H, W).

    An RGBA array uses its alpha channel (what a paint layer holds). Resized with nearest when H, W given.
    """
    a = torch.as_tensor(np.asarray(array))
    if a.ndim == 3:
        a = a[..., 3] if a.shape[-1] == 4 else a.float().amax(-1)
    if a.ndim != 2:
        raise ValueError(f"a mask must be a 2-D array (or an image), got shape {tuple(a.shape)}")
    a = a.float()
    if a.max() > 1:
        a = a / 255.0
    m = (a > threshold).float()[None, None]
    if height is not None and width is not None and m.shape[-2:] != (height, width):
        m = F.interpolate(m, size=(height, width), mode="nearest")
    return m


def _as_batch_mask(mask: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    if mask.ndim == 2:
        mask = mask[None, None]
    elif mask.ndim == 3:
        mask = mask[:, None]
    if mask.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"mask size {tuple(mask.shape[-2:])} does not match image size {tuple(images.shape[-2:])}")
    return mask.to(images.device, images.dtype)


def mask_image(images: torch.Tensor, mask: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Hide pixels inside each image: (N, C, H, W) with hidden pixels set to `fill`.

    `mask` is (N, 1, H, W), (N, H, W) or (H, W), 1 = hidden; it broadcasts over channels, never over images.
    """
    m = _as_batch_mask(mask, images)
    return images * (1 - m) + fill * m


def hidden_share(mask: torch.Tensor) -> torch.Tensor:
    """The hidden share of each image's pixels: (N,)."""
    return mask.flatten(1).float().mean(1)


def mean_fill(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hidden pixels take the mean of the visible pixels of the same image and channel."""
    m = _as_batch_mask(mask, images)
    vis = 1 - m
    mean = (images * vis).sum((2, 3), keepdim=True) / vis.sum((2, 3), keepdim=True).clamp_min(1)
    return images * vis + mean * m


def blur_fill(images: torch.Tensor, mask: torch.Tensor, sigma: float = 2.0, rounds: int = 3) -> torch.Tensor:
    """Normalised convolution: a hidden pixel is the Gaussian-weighted mean of visible pixels near it.

    Pixels too far from any visible one are reached by repeating with a doubled sigma; the rest take
    the mean fill.
    """
    m = _as_batch_mask(mask, images)
    out = mean_fill(images, m)
    known = 1 - m
    filled = known.clone()
    value = images * known
    for i in range(rounds):
        s = sigma * 2 ** i
        num = gaussian_blur(value, s)
        den = gaussian_blur(known, s)
        ok = (den > 1e-3) & (filled < 0.5)
        est = num / den.clamp_min(1e-8)
        out = torch.where(ok.expand_as(out), est, out)
        filled = torch.maximum(filled, ok.to(filled.dtype))
    return images * known + out * m


def diffusion_fill(images: torch.Tensor, mask: torch.Tensor, iterations: int = 200) -> torch.Tensor:
    """Harmonic inpainting: Jacobi iterations of the Laplace equation inside the hidden region.

    Starts from the blur fill, so a few hundred iterations converge on 28x28 images.
    """
    m = _as_batch_mask(mask, images)
    x = blur_fill(images, m)
    c = images.shape[1]
    k = torch.tensor([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], device=images.device, dtype=images.dtype)
    k = k.expand(c, 1, 3, 3).contiguous()
    for _ in range(iterations):
        avg = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=c)
        x = images * (1 - m) + avg * m
    return x


def psnr(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
         data_range: float = 2.0) -> torch.Tensor:
    """PSNR in dB per image, (N,). Images in [-1, 1] (data range 2). With `mask`, only over hidden pixels."""
    err = (prediction.float() - target.float()) ** 2
    if mask is None:
        mse = err.flatten(1).mean(1)
    else:
        m = _as_batch_mask(mask, target).float().expand_as(err)
        mse = (err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)
    return 10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-10))


# ----------------------------------------------------------------------------------------------------
# One picture: what the studio's Masks tab shows

MASK_KINDS = ("random patches", "random pixels", "painted")


class MaskError(BadInput):
    """A picture or mask that cannot be used; the message is written for people."""


def make_mask(kind: str, ratio: float, patch_size: int, seed: int, size: int, painted=None) -> torch.Tensor:
    """(1, 1, size, size) with 1 = hidden: random patches or pixels (seeded), or what the user painted."""
    if kind not in MASK_KINDS:
        raise MaskError(f"mask kind must be one of {', '.join(MASK_KINDS)}")
    if kind == "painted":
        if painted is None or np.asarray(painted).max() == 0:
            raise MaskError("Paint over the part of the image to hide, or choose a random mask.")
        return mask_from_array(painted, size, size, threshold=0.1)
    g = torch.Generator().manual_seed(int(seed))
    return random_mask("pixel" if kind == "random pixels" else "patch", 1, size, size, float(ratio),
                       int(patch_size), generator=g)


def reconstruct_picture(model, image, kind: str = "random patches", ratio: float = 0.5, patch_size: int = 4,
                        seed: int = 0, painted=None, opacity: float = 0.6) -> dict:
    """Mask, masked input, reconstruction, original, error overlay (uint8) and PSNR figures for one picture,
    with diffusion inpainting as the baseline on the same mask."""
    from gancore.analysis.explain import overlay
    from gancore.imaging import small_square, to_tensor, to_uint8

    if model.task != "inpaint":
        raise MaskError("This model does not reconstruct masked images; choose a masked-reconstruction model.")
    if image is None:
        raise MaskError("Choose an image first: upload one, draw one, or pick an example digit.")
    cfg = model.config
    shown, note = small_square(image, cfg.image_size, cfg.image_channels)
    x = to_tensor(shown).unsqueeze(0)
    mask = make_mask(kind, ratio, patch_size, seed, cfg.image_size, painted)
    device = next(model.parameters()).device
    with torch.no_grad():
        rec = model.inpaint(x.to(device), mask.to(device)).cpu().clamp(-1, 1)
    err = (rec - x).abs().mean(1)[0].div(2).numpy()                    # (H, W) in [0, 1]
    grey = lambda t: to_uint8(t[0]).squeeze(-1) if t.shape[1] == 1 else to_uint8(t[0])   # noqa: E731
    return {
        "mask": (mask[0, 0].numpy() * 255).astype(np.uint8),
        "masked": grey(mask_image(x, mask, 0.0)),                      # hidden pixels mid-grey
        "reconstruction": grey(rec),
        "original": grey(x),
        "error": overlay(grey(x), err / max(err.max(), 1e-6), opacity=opacity, label="err"),
        "psnr_hidden": float(psnr(rec, x, mask)[0]), "psnr_whole": float(psnr(rec, x)[0]),
        "psnr_diffusion": float(psnr(diffusion_fill(x, mask), x, mask)[0]),
        "hidden_share": float(mask.mean()), "note": note,
    }
