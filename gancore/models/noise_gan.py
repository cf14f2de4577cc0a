"""Shared training step for noise -> image GANs (MLP GAN, DCGAN)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gancore.augment import Augment
from gancore.models.base import ExportSpec, GANModel, StepContext, image_io, set_requires_grad


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


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mode seeking (MSGAN, Mao et al. 2019): pair the batch's two halves and reward G when its pictures differ
    as much as their latents do; the loss is the inverse of that ratio, so a collapsing G pays most."""
    k = fake.shape[0] // 2
    a, b = fake[:k].float(), fake[k:2 * k].float()
    ratio = (a - b).abs().mean() / (z[:k] - z[k:2 * k]).abs().mean()
    return 1 / (ratio + 1e-5)


class NoiseGAN(GANModel):
    """A noise -> image GAN. Its config may name a DiffAugment policy (`augment`) and an ADA target
    (`ada_target`); D then sees every real and fake image through the same random augmentation."""
    task = "noise"

    def __init__(self, config):
        super().__init__(config)
        # A config without these fields (a noise model that does not offer augmentation) trains without it.
        self.augment = Augment(getattr(config, "augment", ""), getattr(config, "ada_target", 0.0))

    def extra_tensors(self):
        return {"extra.augment": self.augment.state()} if self.augment else {}

    def load_extra_tensors(self, tensors):
        self.augment.load_state(tensors.get("extra.augment"))

    def noise(self, n: int, generator=None) -> torch.Tensor:
        return torch.randn(n, self.config.latent_dim, generator=generator)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.G(z)

    def train_step(self, batch, ctx: StepContext):
        real = batch
        n = real.shape[0]
        G, D = ctx.wrapped["G"], ctx.wrapped["D"]
        device = real.device
        loss_kind = self.config.loss
        aug = self.augment

        # Update D. Real and fake go through D separately: with BatchNorm in D, a mixed batch would let
        # D tell them apart by batch statistics, which the G phase (fakes only) never shows it.
        # One generator forward serves both phases (as in the PyTorch DCGAN tutorial): D learns from the
        # detached fakes, then G learns from the same fakes through the updated D.
        z = self.noise(n).to(device)
        with ctx.autocast():
            fake = G(z)
            real_logits = D(aug(real))
            fake_logits = D(aug(fake.detach().to(real.dtype)))
        loss_real, loss_fake = d_loss(loss_kind, real_logits, fake_logits)
        ctx.step("D", loss_real + loss_fake)
        aug.observe(real_logits)

        # Update G through a frozen, unwrapped D.
        set_requires_grad(self.D, False)
        with ctx.autocast():
            loss_g = g_loss(loss_kind, self.D(aug(fake)))
        ms_weight = getattr(self.config, "mode_seeking", 0.0)
        loss_ms = mode_seeking_loss(fake, z) if ms_weight > 0 and n > 1 else None
        ctx.step("G", loss_g if loss_ms is None else loss_g + ms_weight * loss_ms)
        set_requires_grad(self.D, True)
        losses = {"D/real": loss_real.detach(), "D/fake": loss_fake.detach(), "G/adv": loss_g.detach()}
        if loss_ms is not None:
            losses["G/mode_seeking"] = loss_ms.detach()
        if aug.ada_target > 0:
            losses["augment_p"] = torch.tensor(aug.p)
        return losses

    @torch.no_grad()
    def preview(self, n, gen_group, batch=None):
        """n x n samples from fixed latents, so successive previews show the same digits improving."""
        z = self.noise(n * n, generator=torch.Generator().manual_seed(1234))
        return gen_group(z.to(next(gen_group.parameters()).device)), n

    def export_spec(self, direction=None):
        cfg = self.config
        d = self.direction(direction)
        c, s = cfg.image_channels, cfg.image_size
        return ExportSpec(
            module=self.generator(d), network=self.directions()[d], direction=d, input_name="z", output_name="image",
            dynamic_axes={"z": {0: "batch"}, "image": {0: "batch"}},
            contract={"input": {"name": "z", "shape": ["batch", cfg.latent_dim], "dtype": "float32",
                                "distribution": "standard normal N(0, 1); scale by a truncation factor <= 1 "
                                                "for safer samples"},
                      "output": image_io(c, [s, s])},
            quantize_ops=self.quantize_ops)

    quantize_ops = ("Conv", "ConvTranspose", "Gemm", "MatMul")

    def example_inputs(self, spec, calibration_images=None, held_out_images=None, seed=0):
        # Calibrate on the generator's own input distribution; hold out other seeds.
        z = lambda n, s: self.noise(n, generator=torch.Generator().manual_seed(s)).numpy()   # noqa: E731
        return {"parity": z(16, seed), "calibration": [z(16, seed + 1 + i) for i in range(8)],
                "held_out": [z(16, seed + 100 + i) for i in range(4)], "source": "random z ~ N(0, 1)"}
