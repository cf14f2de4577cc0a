"""Shared training step for noise -> image GANs (MLP GAN, DCGAN)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gancore.models.base import GANModel, StepContext, set_requires_grad


def d_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean(), F.relu(1 + fake_logits).mean()
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)),
            F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def g_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    fake_logits = fake_logits.float()
    if kind == "hinge":
        return -fake_logits.mean()
    # Non-saturating loss: maximise log D(G(z)) (Goodfellow et al. 2014, section 3).
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


class NoiseGAN(GANModel):
    task = "noise"

    def networks(self):
        return {"G": self.G, "D": self.D}

    def groups(self):
        return {"G": self.G, "D": self.D}

    def noise(self, n: int, generator=None) -> torch.Tensor:
        raise NotImplementedError

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.G(z)

    def train_step(self, batch, ctx: StepContext):
        real = batch
        n = real.shape[0]
        G, D = ctx.wrapped["G"], ctx.wrapped["D"]
        device = real.device
        loss_kind = self.config.loss

        # Update D. Real and fake go through D separately: with BatchNorm in D, a mixed batch would let
        # D tell them apart by batch statistics, which the G phase (fakes only) never shows it.
        # One generator forward serves both phases (as in the PyTorch DCGAN tutorial): D learns from the
        # detached fakes, then G learns from the same fakes through the updated D.
        z = self.noise(n).to(device)
        with ctx.autocast():
            fake = G(z)
            real_logits = D(real)
            fake_logits = D(fake.detach().to(real.dtype))
        loss_real, loss_fake = d_loss(loss_kind, real_logits, fake_logits)
        ctx.step("D", loss_real + loss_fake)

        # Update G through a frozen, unwrapped D.
        set_requires_grad(self.D, False)
        with ctx.autocast():
            loss_g = g_loss(loss_kind, self.D(fake))
        ctx.step("G", loss_g)
        set_requires_grad(self.D, True)
        return {"D/real": loss_real.detach(), "D/fake": loss_fake.detach(), "G/adv": loss_g.detach()}

    @torch.no_grad()
    def preview(self, n, gen_group, batch=None):
        z = self.noise(64, generator=torch.Generator().manual_seed(1234))
        return gen_group(z.to(next(gen_group.parameters()).device))
