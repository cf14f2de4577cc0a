"""Simple fills and PSNR for masked reconstruction, and one picture reconstructed for the Masks tab.

Masks themselves (1 = hidden, drawn per image) come from `gancore.masks`.

Baselines for the reconstruction model: mean fill (the visible mean of each image and channel), blur fill
(normalised convolution: a Gaussian-weighted average of the visible neighbours) and diffusion inpainting
(harmonic fill: hidden pixels relax to the average of their neighbours, visible pixels stay fixed).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gancore.errors import BadInput
from gancore.imaging import gaussian_blur, overlay, seeded, small_square, to_tensor, to_uint8
from gancore.masks import as_batch_mask, mask_from_array, mask_image, random_mask


def mean_fill(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hidden pixels take the mean of the visible pixels of the same image and channel."""
    m = as_batch_mask(mask, images)
    vis = 1 - m
    mean = (images * vis).sum((2, 3), keepdim=True) / vis.sum((2, 3), keepdim=True).clamp_min(1)
    return images * vis + mean * m


def blur_fill(images: torch.Tensor, mask: torch.Tensor, sigma: float = 2.0, rounds: int = 3) -> torch.Tensor:
    """Normalised convolution: a hidden pixel is the Gaussian-weighted mean of visible pixels near it.

    Pixels too far from any visible one are reached by repeating with a doubled sigma; the rest take
    the mean fill.
    """
    m = as_batch_mask(mask, images)
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
    m = as_batch_mask(mask, images)
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
        m = as_batch_mask(mask, target).float().expand_as(err)
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
    g = seeded(seed)
    return random_mask("pixel" if kind == "random pixels" else "patch", 1, size, size, float(ratio),
                       int(patch_size), generator=g)


def reconstruct_picture(model, image, kind: str = "random patches", ratio: float = 0.5, patch_size: int = 4,
                        seed: int = 0, painted=None, opacity: float = 0.6) -> dict:
    """Mask, masked input, reconstruction, original, error overlay (uint8) and PSNR figures for one picture,
    with diffusion inpainting as the baseline on the same mask."""
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
