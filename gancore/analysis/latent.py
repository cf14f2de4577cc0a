"""Interpretable latent directions, closed form (SeFa: Shen & Zhou, CVPR 2021).

The first layer maps z linearly (before any non-linearity), so the directions that change its output most
are the top eigenvectors of A^T A, where A is that layer's weight seen as (outputs, latent_dim).
They are computed once and stored beside the checkpoint as `<name>.directions.safetensors`.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def first_layer_weight(generator: nn.Module) -> torch.Tensor:
    """The weight of the first layer that sees z, as (outputs, latent_dim)."""
    for m in generator.modules():
        if isinstance(m, nn.Linear):
            return m.weight.detach().float()                          # (out, latent)
        if isinstance(m, nn.ConvTranspose2d):
            w = m.weight.detach().float()                             # (latent, out, k, k)
            return w.flatten(1).T                                     # (out*k*k, latent)
    raise ValueError("no linear or transposed-convolution layer found in the generator")


def sefa_directions(generator: nn.Module, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k unit directions (k, latent_dim) and their eigenvalues (k,), largest first."""
    a = first_layer_weight(generator)
    a = a / a.norm(dim=0, keepdim=True).clamp_min(1e-12)   # SeFa normalises each latent column
    evals, evecs = torch.linalg.eigh(a.T @ a)               # ascending
    order = evals.argsort(descending=True)[:k]
    return evecs[:, order].T.contiguous(), evals[order].contiguous()


def directions_path(checkpoint: str | Path) -> Path:
    p = Path(checkpoint)
    return p.with_name(p.name.replace(".safetensors", "") + ".directions.safetensors")


def load_or_compute_directions(checkpoint: str | Path, generator: nn.Module, k: int = 10) -> torch.Tensor:
    """Cached next to the checkpoint when the folder is writable; recomputed if stale or unreadable."""
    path = directions_path(checkpoint)
    src = Path(checkpoint)
    if path.is_file() and path.stat().st_mtime >= src.stat().st_mtime:
        try:
            d = load_file(str(path))["directions"]
            if d.shape[0] >= k and d.shape[1] == first_layer_weight(generator).shape[1]:
                return d[:k]
        except Exception:  # a damaged cache is simply recomputed
            pass
    d, evals = sefa_directions(generator, k)
    try:
        save_file({"directions": d, "eigenvalues": evals}, str(path), metadata={"method": "sefa"})
    except OSError:
        pass  # read-only folder: use the directions without caching
    return d


def edit(z: torch.Tensor, directions: torch.Tensor, alphas) -> torch.Tensor:
    """z (N, latent_dim) moved by sum_i alphas[i] * directions[i]; extra alphas beyond k are ignored."""
    a = torch.as_tensor([float(x) for x in alphas][: directions.shape[0]], dtype=directions.dtype)
    if a.numel() == 0:
        return z
    return z + (a @ directions[: a.numel()]).to(z.dtype)       # (k,) @ (k, latent) -> (latent,)


def interpolate(z0: torch.Tensor, z1: torch.Tensor, n: int) -> torch.Tensor:
    """n latents from z0 to z1 (each (1, latent_dim) or (latent_dim,)) by spherical interpolation.

    Gaussian latents concentrate near a sphere, so slerp keeps every frame as 'typical' as its ends
    (White 2016, "Sampling Generative Networks"); a straight line would pass through low-norm points.
    """
    a, b = z0.reshape(-1).float(), z1.reshape(-1).float()
    t = torch.linspace(0, 1, max(2, int(n)))[:, None]                  # (n, 1)
    cos = (a @ b / (a.norm() * b.norm()).clamp_min(1e-12)).clamp(-1, 1)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)   # (n, latent)
