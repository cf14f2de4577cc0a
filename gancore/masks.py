"""Masks inside images: a float tensor (N, 1, H, W) with 1 where a pixel is hidden and 0 where it is visible.

Masks are drawn per image: every image keeps exactly `round(ratio * units)` of its own pixels (or patches)
hidden. The masked-reconstruction model trains on them; `analysis.masking` fills and scores them.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


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


def as_batch_mask(mask: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
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
    m = as_batch_mask(mask, images)
    return images * (1 - m) + fill * m


def hidden_share(mask: torch.Tensor) -> torch.Tensor:
    """The hidden share of each image's pixels: (N,)."""
    return mask.flatten(1).float().mean(1)
