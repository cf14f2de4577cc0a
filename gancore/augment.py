"""Differentiable augmentation for GANs trained on few pictures.

DiffAugment (Zhao et al. 2020): the same random colour, translation and cutout changes are applied to real
and to generated images every time the discriminator sees them, in both the D and the G phase, so D cannot
memorise a small set and G still gets gradients through the augmentation. Adaptive augmentation (ADA, Karras
et al. 2020): each sample is augmented with probability p, and p follows how sure D is of the real pictures,
r = E[sign(D(real))]: above the target D overfits and p rises, below it p falls.

    aug = Augment("color,translation,cutout", ada_target=0.6)
    logits = D(aug(images))                  # real or fake, in [-1, 1]
    aug.observe(real_logits)                 # ADA only: after each D step
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")
ADA_INTERVAL = 4            # steps between updates of p
ADA_IMAGES_TO_ONE = 20_000  # images for p to move from 0 to 1 (StyleGAN2-ADA uses 500k; CPU runs see ~100k)


def parse_policy(policy: str) -> tuple[str, ...]:
    ops = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in ops if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; use a comma list of {', '.join(POLICIES)}")
    return ops


def _rand(x: torch.Tensor, *shape) -> torch.Tensor:
    return torch.rand(x.shape[0], *shape, device=x.device, dtype=x.dtype)


def color(x: torch.Tensor) -> torch.Tensor:
    """Random brightness, saturation and contrast per sample (DiffAugment's 'color')."""
    x = x + (_rand(x, 1, 1, 1) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(x, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, 1, 1, 1) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each sample by up to `ratio` of its size, filling with zeros (mid-grey)."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    ys = (torch.arange(h, device=x.device).view(1, h, 1) + dy + 1).clamp(0, h + 1)
    xs = (torch.arange(w, device=x.device).view(1, 1, w) + dx + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)          # (N, H+2, W+2, C)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, ys, xs].permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one random square of `ratio` times the image size per sample."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys - cy + ch // 2) >= 0) & ((ys - cy + ch // 2) < ch) & ((xs - cx + cw // 2) >= 0) & \
             ((xs - cx + cw // 2) < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


OPS = {"color": color, "translation": translation, "cutout": cutout}


class Augment:
    """Apply a DiffAugment policy to each sample with probability `p` (fixed 1, or adapted by ADA)."""

    def __init__(self, policy: str = "", ada_target: float = 0.0):
        self.ops = parse_policy(policy)
        self.ada_target = float(ada_target)
        self.p = 0.0 if self.ada_target > 0 else 1.0
        self._signs, self._seen, self._steps = 0.0, 0, 0

    def __bool__(self) -> bool:
        return bool(self.ops)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.ops or self.p <= 0:
            return x
        for name in self.ops:
            y = OPS[name](x)
            if self.p >= 1:
                x = y
            else:
                keep = (_rand(x, 1, 1, 1) >= self.p).to(x.dtype)
                x = keep * x + (1 - keep) * y
        return x

    @torch.no_grad()
    def observe(self, real_logits: torch.Tensor) -> None:
        """ADA: nudge p towards keeping E[sign(D(real))] at the target."""
        if self.ada_target <= 0 or not self.ops:
            return
        self._signs += float(torch.sign(real_logits.float()).sum())
        self._seen += real_logits.numel()
        self._steps += 1
        if self._steps % ADA_INTERVAL:
            return
        r = self._signs / max(self._seen, 1)
        step = self._seen / ADA_IMAGES_TO_ONE
        self.p = min(1.0, max(0.0, self.p + (step if r > self.ada_target else -step)))
        self._signs, self._seen = 0.0, 0

    # Saved with the run (the model's extra tensors), so a resumed run continues with the same p.
    def state(self) -> torch.Tensor:
        return torch.tensor([self.p, self._signs, float(self._seen), float(self._steps)], dtype=torch.float64)

    def load_state(self, t: torch.Tensor | None) -> None:
        if t is not None:
            self.p, self._signs, seen, steps = (float(v) for v in t.tolist())
            self._seen, self._steps = int(seen), int(steps)
