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
- `overlay`: heatmap over the image with a colour bar and an opacity.

Heatmaps are float32 numpy arrays (H, W) in [0, 1]. Images come in as tensors (N, C, H, W) in [-1, 1].
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gancore.errors import BadInput
from gancore.imaging import gaussian_blur

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
    g = torch.Generator().manual_seed(seed)
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
    from gancore.imaging import run_padded

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
    from safetensors import safe_open
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


# ----------------------------------------------------------------------------------------------------
# Display

# A perceptually ordered colour map ("inferno"-like), 6 stops interpolated linearly.
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
    from PIL import Image, ImageDraw

    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ExplainError("overlay expects a uint8 image")
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


# ----------------------------------------------------------------------------------------------------
# One picture, one method: what the studio's Explain tab shows (uint8 overlays, captions, figures)

DISCRIMINATOR_METHODS = {"Saliency": "saliency", "Integrated Gradients": "integrated_gradients",
                         "Occlusion": "occlusion", "Learned mask": "learned_mask"}
CYCLEGAN_METHODS = {"PatchGAN real/fake map": "realness", "Change |output - input|": "change",
                    "Cycle error": "cycle_error"}
LATENT_METHOD = "Latent directions (SeFa)"
ALL_METHODS = list(DISCRIMINATOR_METHODS) + list(CYCLEGAN_METHODS) + [LATENT_METHOD]
EXPLAIN_MAX_SIDE = 128      # photos are explained at this longer side: gradient methods stay near 1 s on CPU


def methods_for(model) -> list[str]:
    task = getattr(model, "task", "")
    methods = list(DISCRIMINATOR_METHODS)
    if task == "translate":
        methods = list(CYCLEGAN_METHODS) + methods
    if task == "noise":
        methods = methods + [LATENT_METHOD]
    return methods


def prepare(model, image):
    """User image -> (1, C, H, W) tensor in the model's format, and the uint8 image it shows."""
    from gancore.imaging import small_square, to_tensor
    if image is None:
        raise ExplainError("Choose an image first: upload one, pick an example, or generate one.")
    cfg = model.config
    if model.task != "translate":
        shown, _ = small_square(image, cfg.image_size, cfg.image_channels)
        return to_tensor(shown).unsqueeze(0), shown
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ExplainError("That does not look like an image.")
    pil = Image.fromarray(arr.astype(np.uint8)).convert("L" if cfg.image_channels == 1 else "RGB")
    s = min(1.0, EXPLAIN_MAX_SIDE / max(pil.size))
    m = max(1, model.size_multiple)
    w, h = max(8, round(pil.width * s)) // m * m, max(8, round(pil.height * s)) // m * m
    shown = np.asarray(pil.resize((w, h), Image.BICUBIC))
    return to_tensor(shown).unsqueeze(0), shown


def generate(model, seed: int = 0) -> np.ndarray:
    """A fresh sample from a noise model (uint8)."""
    from gancore.inference import sample
    if getattr(model, "task", "") != "noise":
        raise ExplainError("Only noise models generate images; upload an image instead.")
    return sample(model, n=1, seed=int(seed))[0].squeeze()


def explain_one(model, image, method: str, opacity: float = 0.5, direction: str = "AB", epochs: int = 50,
                lr: float = 0.01, seed: int = 0, has_discriminator: bool = True) -> dict:
    """One method on one image: {"overlay": uint8, "heatmap": float (H, W), "caption": str, "info": dict}."""
    if method == LATENT_METHOD:
        return latent_directions(model, seed, opacity)[0]
    x, shown = prepare(model, image)
    if method in CYCLEGAN_METHODS:
        if getattr(model, "task", "") != "translate":
            raise ExplainError(f"{method} needs a CycleGAN model.")
        key = CYCLEGAN_METHODS[method]
        if key == "realness" and not has_discriminator:
            raise ExplainError("This checkpoint holds no discriminators, so it has no real/fake map.")
        maps = cyclegan_maps(model, x, direction, realness=key == "realness")
        heat = maps[key]
        if key == "realness":
            info = {"realness_mean": round(maps["realness_mean"], 3)}
            caption = f"{method} (mean {maps['realness_mean']:.2f}; 1 = looks real)"
        else:
            # Absolute units (share of the value range) in the caption; the display is scaled to its maximum.
            info = {"mean": round(float(heat.mean()), 4), "max": round(float(heat.max()), 4)}
            caption = f"{method}: mean {heat.mean() * 100:.1f} %, max {heat.max() * 100:.0f} % of the value range"
            heat = heat / max(float(heat.max()), 1e-6)
        base = ((maps["output"][0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy() \
            if key == "realness" else shown
        return {"overlay": overlay(base, heat, opacity), "heatmap": heat, "caption": caption, "info": info}
    if method not in DISCRIMINATOR_METHODS:
        raise ExplainError(f"Unknown method {method!r}.")
    if not has_discriminator:
        raise ExplainError("This checkpoint holds no discriminator, so there is no decision to explain.")
    key = DISCRIMINATOR_METHODS[method]
    kwargs = {"epochs": int(epochs), "lr": float(lr)} if key == "learned_mask" else {}
    # The discriminator that judges the explained image (CycleGAN: the one of the input's domain).
    e = explain(model.discriminator(direction if model.directions().get(direction) else None, "input"),
                   x, key, **kwargs)
    info = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in e.info.items()}
    caption = f"{method}: D score {e.info['score']:+.2f} ({'real' if e.info['score'] >= 0 else 'fake'})"
    if "delta" in e.info:
        caption += f", completeness delta {e.info['delta']:.3g}"
    if "kept_share" in e.info:
        caption += f", keeps {e.info['kept_share'] * 100:.0f} % of the image, decision kept: {e.info['decision_kept']}"
    return {"overlay": overlay(shown, e.heatmap, opacity), "heatmap": e.heatmap, "caption": caption, "info": info}


def latent_directions(model, seed: int = 0, opacity: float = 0.5, k: int = 4) -> list[dict]:
    """Which pixels each of the top-k SeFa directions moves, for the sample drawn with `seed`."""
    from gancore.imaging import seeded
    from gancore.analysis.latent import sefa_directions
    if getattr(model, "task", "") != "noise":
        raise ExplainError("Latent directions need a noise model (MLP GAN or DCGAN).")
    z = model.noise(1, generator=seeded(seed))
    dirs, _ = sefa_directions(model.generator(), k)
    maps = direction_maps(model.generator(), z, dirs, step=2.0)
    shown = generate(model, seed)
    return [{"overlay": overlay(shown, m, opacity), "heatmap": m, "caption": f"SeFa direction {i}", "info": {}}
            for i, m in enumerate(maps)]


def compare(model, image, methods: list[str], opacity: float = 0.5, direction: str = "AB",
            has_discriminator: bool = True) -> list[dict]:
    """Several methods side by side (same image, same opacity)."""
    if not methods:
        raise ExplainError("Pick at least one method to compare.")
    out = []
    for m in methods:
        if m == LATENT_METHOD:
            continue
        out.append(explain_one(model, image, m, opacity, direction, has_discriminator=has_discriminator))
    return out
