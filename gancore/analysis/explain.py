"""Why a model decides what it decides: heatmaps a designer can look at.

- `learned_mask`: GNNExplainer's idea (Ying et al., NeurIPS 2019: a soft mask learned with 50 epochs at
  lr 0.01) applied to pixels, as in Fong & Vedaldi's meaningful perturbations (ICCV 2017): a smooth mask
  that keeps the discriminator's decision while keeping as little of the image as possible (sparsity +
  total-variation terms); removed pixels are replaced by a blurred copy, not by black.
- `gradient_attribution`: captum's Saliency (Simonyan et al. 2014), Integrated Gradients (Sundararajan
  et al. 2017, with its completeness delta) and Occlusion (Zeiler & Fergus 2014) of the discriminator's
  score (the mean logit; a PatchGAN map is averaged).
- `cyclegan_maps`: the PatchGAN discriminator's real/fake map, the change map |output - input| and the
  cycle-error map |G_BA(G_AB(x)) - x|.
- `direction_maps` / `region_direction_attribution`: which pixels a latent direction (e.g. SeFa) moves,
  and how much each direction moves a chosen output region.

Heatmaps are float32 numpy arrays (H, W) in [0, 1]. Images come in as tensors (N, C, H, W) in [-1, 1].
Drawing a heatmap over a picture is `imaging.overlay`; the Explain tab (`studio/tabs/explain.py`) names
the methods for people and writes the captions.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from gancore.errors import BadInput
from gancore.imaging import gaussian_blur, run_padded, seeded

GRADIENT_METHODS = ("saliency", "integrated_gradients", "occlusion")


class ExplainError(BadInput):
    """An explanation that cannot be made, with a message a person can act on."""


@dataclass
class Explanation:
    heatmap: np.ndarray                # (H, W) float32 in [0, 1]
    method: str
    info: dict = field(default_factory=dict)   # e.g. {"delta": ..., "score": ..., "seconds": ...}


# ----------------------------------------------------------------------------------------------------
# Helpers

class Score(nn.Module):
    """A discriminator as one number per image: the mean of its logits (a PatchGAN map is averaged)."""

    def __init__(self, discriminator: nn.Module):
        super().__init__()
        self.discriminator = discriminator

    def forward(self, x):
        return self.discriminator(x).flatten(1).float().mean(1)


def normalise(a, robust: float = 0.0) -> np.ndarray:
    """Array -> float32 in [0, 1] (min-max; `robust` clips the top quantile first)."""
    a = a.detach().float().cpu().numpy() if torch.is_tensor(a) else np.asarray(a, dtype=np.float32)
    a = a.astype(np.float32)
    hi = np.quantile(a, 1 - robust) if robust else a.max()
    lo = a.min()
    if not np.isfinite(hi - lo) or hi - lo < 1e-12:
        return np.zeros_like(a, dtype=np.float32)
    return np.clip((a - lo) / (hi - lo), 0, 1).astype(np.float32)


def _check_image(x: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(x) or x.ndim not in (3, 4):
        raise ExplainError("expected an image tensor (C, H, W) or (1, C, H, W)")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.shape[0] != 1:
        raise ExplainError("explain one image at a time")
    return x.float()


def _frozen(module: nn.Module):
    """Eval mode and no parameter gradients, restored afterwards (explaining never trains)."""
    class _Ctx:
        def __enter__(self):
            self.training = module.training
            self.flags = [p.requires_grad for p in module.parameters()]
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)
            return module

        def __exit__(self, *exc):
            module.train(self.training)
            for p, f in zip(module.parameters(), self.flags):
                p.requires_grad_(f)
    return _Ctx()


def _to_heatmap(attr: torch.Tensor, robust: float = 0.0) -> np.ndarray:
    """(1, C, H, W) attribution -> (H, W) in [0, 1]: absolute value summed over channels."""
    return normalise(attr.detach().abs().sum(1)[0], robust)


# ----------------------------------------------------------------------------------------------------
# Gradient attributions (captum)

def gradient_attribution(discriminator: nn.Module, image: torch.Tensor, method: str = "saliency",
                         n_steps: int = 16, baseline: torch.Tensor | None = None,
                         window: int | None = None, stride: int | None = None) -> Explanation:
    """Attribution of the discriminator's score to the pixels of one image.

    Integrated Gradients integrates from `baseline` (default: a uniform mid-grey, 0 in [-1, 1]) in
    `n_steps` steps and reports the completeness delta |sum(attr) - (F(x) - F(baseline))| in `info`,
    absolute and relative to |F(x) - F(baseline)|. Occlusion slides a window of the image's mean colour
    (default: a quarter of the side, half-overlapping).
    """
    from captum.attr import IntegratedGradients, Occlusion, Saliency

    x = _check_image(image)
    t0 = time.perf_counter()
    with _frozen(discriminator):
        f = Score(discriminator)
        with torch.no_grad():
            score = float(f(x))
        info = {"score": score}
        if method == "saliency":
            attr = Saliency(f).attribute(x.clone().requires_grad_(True), abs=True)
            heat = _to_heatmap(attr, robust=0.005)
        elif method == "integrated_gradients":
            base = torch.zeros_like(x) if baseline is None else baseline.to(x)
            attr, delta = IntegratedGradients(f).attribute(x, baselines=base, n_steps=n_steps,
                                                           method="gausslegendre",
                                                           return_convergence_delta=True)
            with torch.no_grad():
                gap = abs(float(f(x) - f(base)))
            info.update(delta=abs(float(delta)), relative_delta=abs(float(delta)) / max(gap, 1e-8),
                        score_gap=gap)
            heat = _to_heatmap(attr, robust=0.005)
        elif method == "occlusion":
            side = min(x.shape[-2:])
            # Default: windows a quarter of the side, half-overlapping (7 x 7 = 49 forwards on a square
            # image; inside the 1 s budget at 64 px on CPU, and every pixel is covered).
            w = window or max(2, side // 4)
            s = stride or max(1, w // 2)
            c = x.shape[1]
            # The occluder is the image's mean colour: on MNIST (black background) covering background then
            # changes little and covering strokes a lot; a grey occluder would light up the background.
            fill = x.mean((2, 3), keepdim=True).expand_as(x).contiguous()
            attr = Occlusion(f).attribute(x, sliding_window_shapes=(c, w, w), strides=(c, s, s), baselines=fill,
                                          perturbations_per_eval=64)
            heat = _to_heatmap(attr)
        else:
            raise ExplainError(f"unknown method {method!r}; choose one of {', '.join(GRADIENT_METHODS)}")
    info["seconds"] = time.perf_counter() - t0
    return Explanation(heat, method, info)


# ----------------------------------------------------------------------------------------------------
# Learned mask (GNNExplainer on pixels)

def learned_mask(discriminator: nn.Module, image: torch.Tensor, epochs: int = 50, lr: float = 0.01,
                 sparsity: float = 1.0, smoothness: float = 0.5, mask_scale: int = 4,
                 temperature: float = 0.05, seed: int = 0) -> Explanation:
    """A smooth mask that keeps the discriminator's decision with as little of the image as possible.

    The mask lives on a grid `mask_scale` times coarser than the image and is upsampled bilinearly
    (smooth by construction) and then scored with a total-variation term. Its logits are divided by
    `temperature` so that GNNExplainer's 50 epochs at lr 0.01 can move a cell from kept to removed.
    Loss: BCE toward the original decision + sparsity * mean(mask) + smoothness * TV(mask). Removed
    pixels show a blurred copy of the image. `info` holds the original and masked scores, whether the
    decision is kept, and the kept share.
    """
    x = _check_image(image)
    t0 = time.perf_counter()
    h, w = x.shape[-2:]
    gh, gw = max(2, h // mask_scale), max(2, w // mask_scale)
    g = seeded(seed)
    with _frozen(discriminator):
        f = Score(discriminator)
        with torch.no_grad():
            score = float(f(x))
        target = torch.tensor([1.0 if score >= 0 else 0.0])
        background = gaussian_blur(x, sigma=max(1.0, min(h, w) / 10), border="reflect")
        # Start slightly on the "keep" side with a little noise (GNNExplainer initialises randomly).
        logits = (0.02 + 0.01 * torch.randn(1, 1, gh, gw, generator=g)).requires_grad_(True)
        opt = torch.optim.Adam([logits], lr=lr)
        for _ in range(epochs):
            m = torch.sigmoid(F.interpolate(logits / temperature, size=(h, w), mode="bilinear", align_corners=False))
            out = f(x * m + background * (1 - m))
            keep = F.binary_cross_entropy_with_logits(out, target)
            tv = (m[..., 1:, :] - m[..., :-1, :]).abs().mean() + (m[..., :, 1:] - m[..., :, :-1]).abs().mean()
            loss = keep + sparsity * m.mean() + smoothness * tv
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            m = torch.sigmoid(F.interpolate(logits / temperature, size=(h, w), mode="bilinear", align_corners=False))
            masked = x * m + background * (1 - m)
            masked_score = float(f(masked))
    info = {"score": score, "masked_score": masked_score, "decision_kept": (masked_score >= 0) == (score >= 0),
            "kept_share": float(m.mean()), "seconds": time.perf_counter() - t0}
    return Explanation(m[0, 0].numpy().astype(np.float32).clip(0, 1), "learned_mask", info)


def explain(discriminator: nn.Module, image: torch.Tensor, method: str, **kwargs) -> Explanation:
    """One entry point: "saliency", "integrated_gradients", "occlusion" or "learned_mask"."""
    if method == "learned_mask":
        return learned_mask(discriminator, image, **kwargs)
    return gradient_attribution(discriminator, image, method, **kwargs)


# ----------------------------------------------------------------------------------------------------
# CycleGAN maps

@torch.no_grad()
def cyclegan_maps(model, image: torch.Tensor, direction: str = "AB", realness: bool = True) -> dict:
    """PatchGAN real/fake map of the output (the target domain's D), change map, cycle-error map.

    `image` (1, C, H, W) in [-1, 1] with sides divisible by 4. Returns heatmaps (H, W) in [0, 1] and the
    output / reconstruction tensors. The real/fake map is the LSGAN output (target 1 = real) clipped to
    [0, 1] and upsampled; pass realness=False when the checkpoint holds no discriminators
    (`has_discriminators`), since an unloaded D is only its random initialisation.
    """
    x = _check_image(image)
    direction = model.direction(direction)
    fwd, back = model.generator(direction), model.generator(model.inverse(direction))
    y = run_padded(fwd, x, model.size_multiple)
    rec = run_padded(back, y, model.size_multiple)
    out = {"output": y, "reconstruction": rec,
           "change": (y - x).abs().mean(1)[0].clamp(0, 2).div(2).numpy(),
           "cycle_error": (rec - x).abs().mean(1)[0].clamp(0, 2).div(2).numpy()}
    d_target = model.discriminator(direction, "output")
    if realness:
        pred = d_target(y).float()                                  # (1, 1, h', w') patch scores
        out["realness"] = F.interpolate(pred.clamp(0, 1), size=x.shape[-2:], mode="nearest")[0, 0].numpy()
        out["realness_mean"] = float(pred.mean())
    return {k: (v.astype(np.float32) if isinstance(v, np.ndarray) else v) for k, v in out.items()}


def has_discriminators(model, path) -> bool:
    """Whether a checkpoint file holds weights for the model's discriminators (reads tensor names only)."""
    names = tuple(f"{n}." for n in model.networks() if n not in model.generator_networks())
    with safe_open(str(path), framework="pt") as f:
        return any(k.startswith(names) for k in f.keys())


# ----------------------------------------------------------------------------------------------------
# Latent directions

@torch.no_grad()
def direction_maps(generator: nn.Module, z: torch.Tensor, directions: torch.Tensor, step: float = 1.0) -> np.ndarray:
    """How much each direction moves each pixel: (K, H, W) in [0, 1] (one shared scale).

    Central difference |G(z + step d) - G(z - step d)| / 2, averaged over channels; all 2K images in
    one forward. Shared scale so that directions that move little look dim.
    """
    z = z.reshape(1, -1).float()
    d = directions.float().to(z)
    k = d.shape[0]
    batch = torch.cat([z + step * d, z - step * d])                     # (2K, latent)
    was = generator.training
    generator.eval()
    out = generator(batch).float()
    generator.train(was)
    moved = (out[:k] - out[k:]).abs().mean(1) / 2                       # (K, H, W)
    return normalise(moved)


def region_direction_attribution(generator: nn.Module, z: torch.Tensor, directions: torch.Tensor,
                                 region: tuple[int, int, int, int], step: float = 1.0) -> np.ndarray:
    """Share of a region's change due to each direction: (K,) summing to 1.

    `region` = (top, left, height, width) in output pixels. Each direction's score is the mean absolute
    change of the region's pixels when z moves by +-step along it.
    """
    top, left, hh, ww = region
    z = z.reshape(1, -1).float()
    d = directions.float().to(z)
    k = d.shape[0]
    with torch.no_grad():
        was = generator.training
        generator.eval()
        out = generator(torch.cat([z + step * d, z - step * d])).float()
        generator.train(was)
    moved = (out[:k] - out[k:]).abs()[..., top:top + hh, left:left + ww]
    if moved.numel() == 0:
        raise ExplainError("the region lies outside the image")
    s = moved.flatten(1).mean(1)
    return (s / s.sum().clamp_min(1e-12)).numpy()
