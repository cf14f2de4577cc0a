"""CycleGAN: unpaired image-to-image translation (Zhu, Park, Isola, Efros, ICCV 2017).

ResNet generators with reflection padding and instance norm, 70x70 PatchGAN discriminators, LSGAN loss,
L1 cycle consistency (weight 10) and identity loss (0.5 of the cycle weight), a history pool of 50 fakes.
`G_AB` turns A (horse) into B (zebra), `G_BA` the reverse; `D_A` judges domain A, `D_B` domain B.

Upsampling is resize-convolution by default (nearest x2 then 3x3 conv; Odena et al. 2016, "Deconvolution
and checkerboard artifacts"); `upsample="transposed"` gives the paper's transposed convolutions.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gancore.models.base import GANModel, StepContext, init_dcgan_weights, set_requires_grad


@dataclass(frozen=True)
class CycleGANConfig:
    image_channels: int = 3
    base_channels: int = 32          # paper: 64
    res_blocks: int = 9              # paper: 9 at 256 px
    upsample: str = "resize"         # "resize" (nearest + conv) or "transposed"
    d_base_channels: int = 64
    d_layers: int = 3                # 3 -> the 70x70 PatchGAN
    d_spectral_norm: bool = False
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5     # fraction of lambda_cycle, as in the paper's code
    pool_size: int = 50
    image_size: int = 256            # training crop; translation resizes photos to about this scale
    load_size: int = 286             # training images are resized to this, then randomly cropped

    def __post_init__(self):
        if self.upsample not in ("resize", "transposed"):
            raise ValueError("upsample must be 'resize' or 'transposed'")
        if self.image_size % 4:
            raise ValueError("image_size must be a multiple of 4")


class ResidualBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch))

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-k, d2k, d4k, R4k x n, u2k, uk, c7s1-3 (the paper's appendix). Input sides must divide by 4."""
    size_multiple = 4

    def __init__(self, cfg: CycleGANConfig):
        super().__init__()
        c, k = cfg.image_channels, cfg.base_channels
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(c, k, 7), nn.InstanceNorm2d(k), nn.ReLU(True)]
        for mult in (1, 2):  # two stride-2 downsamplings
            layers += [nn.Conv2d(k * mult, k * mult * 2, 3, stride=2, padding=1),
                       nn.InstanceNorm2d(k * mult * 2), nn.ReLU(True)]
        layers += [ResidualBlock(k * 4) for _ in range(cfg.res_blocks)]
        for mult in (4, 2):
            if cfg.upsample == "resize":
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                           nn.Conv2d(k * mult, k * mult // 2, 3)]
            else:
                layers += [nn.ConvTranspose2d(k * mult, k * mult // 2, 3, stride=2, padding=1, output_padding=1)]
            layers += [nn.InstanceNorm2d(k * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(k, c, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: each output value judges one receptive field (70x70 with 3 layers)."""

    def __init__(self, cfg: CycleGANConfig):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if cfg.d_spectral_norm else (lambda m: m)
        k = cfg.d_base_channels
        layers = [sn(nn.Conv2d(cfg.image_channels, k, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        ch = k
        for i in range(1, cfg.d_layers + 1):
            out = k * min(2 ** i, 8)
            stride = 2 if i < cfg.d_layers else 1
            layers += [sn(nn.Conv2d(ch, out, 4, stride, 1)), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
            ch = out
        layers += [sn(nn.Conv2d(ch, 1, 4, 1, 1))]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class Generators(nn.Module):
    """Both directions in one module, so one forward covers the whole generator phase (DDP-friendly)."""

    def __init__(self, cfg: CycleGANConfig):
        super().__init__()
        self.G_AB = ResnetGenerator(cfg)
        self.G_BA = ResnetGenerator(cfg)

    def forward(self, real_A, real_B, identity: bool = True):
        fake_B = self.G_AB(real_A)
        fake_A = self.G_BA(real_B)
        rec_A = self.G_BA(fake_B)
        rec_B = self.G_AB(fake_A)
        idt_B = self.G_AB(real_B) if identity else None   # G_AB should leave a zebra a zebra
        idt_A = self.G_BA(real_A) if identity else None
        return fake_B, fake_A, rec_A, rec_B, idt_A, idt_B


class Discriminators(nn.Module):
    def __init__(self, cfg: CycleGANConfig):
        super().__init__()
        self.D_A = PatchDiscriminator(cfg)
        self.D_B = PatchDiscriminator(cfg)

    def forward(self, x_A, x_B):
        return self.D_A(x_A), self.D_B(x_B)


class ImagePool:
    """History of generated images (Shrivastava et al. 2017): half the time D sees an older fake.

    Randomness comes from torch's global RNG so that a resumed run draws what a straight run draws.
    """

    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for img in batch.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif torch.rand(()) < 0.5:
                i = int(torch.randint(0, self.size, ()))
                out.append(self.images[i].clone())
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.cat(out)


def lsgan(pred: torch.Tensor, target_real: bool) -> torch.Tensor:
    target = torch.ones_like(pred) if target_real else torch.zeros_like(pred)
    return F.mse_loss(pred.float(), target.float())


def cycle_consistency_loss(reconstructed: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(reconstructed.float(), real.float())


class CycleGAN(GANModel):
    model_type = "cyclegan"
    task = "translate"

    def __init__(self, config: CycleGANConfig):
        super().__init__(config)
        self.G = Generators(config)
        self.D = Discriminators(config)
        for m in (self.G, self.D):
            init_dcgan_weights(m)
        self.pool_A = ImagePool(config.pool_size)
        self.pool_B = ImagePool(config.pool_size)

    def networks(self):
        return {"G_AB": self.G.G_AB, "G_BA": self.G.G_BA, "D_A": self.D.D_A, "D_B": self.D.D_B}

    def groups(self):
        return {"G": self.G, "D": self.D}

    def generator_networks(self):
        return ["G_AB", "G_BA"]

    def train_step(self, batch, ctx: StepContext):
        real_A, real_B = batch
        cfg = self.config
        G, D = ctx.wrapped["G"], ctx.wrapped["D"]
        lam_idt = cfg.lambda_cycle * cfg.lambda_identity

        # Update G (both directions); D is frozen and called unwrapped so DDP syncs nothing for it.
        set_requires_grad(self.D, False)
        with ctx.autocast():
            fake_B, fake_A, rec_A, rec_B, idt_A, idt_B = G(real_A, real_B, identity=lam_idt > 0)
            pred_fake_A, pred_fake_B = self.D(fake_A, fake_B)
        losses = {
            "G/adv_AB": lsgan(pred_fake_B, True),
            "G/adv_BA": lsgan(pred_fake_A, True),
            "G/cycle_A": cycle_consistency_loss(rec_A, real_A) * cfg.lambda_cycle,
            "G/cycle_B": cycle_consistency_loss(rec_B, real_B) * cfg.lambda_cycle,
        }
        if lam_idt > 0:
            losses["G/idt_A"] = F.l1_loss(idt_A.float(), real_A) * lam_idt
            losses["G/idt_B"] = F.l1_loss(idt_B.float(), real_B) * lam_idt
        loss_G = sum(losses.values())
        ctx.step("G", loss_G)
        set_requires_grad(self.D, True)

        # Update D: real and (pooled) fake in one batch per discriminator; instance norm is per sample.
        old_A = self.pool_A.query(fake_A.detach().float())
        old_B = self.pool_B.query(fake_B.detach().float())
        n = real_A.shape[0]
        with ctx.autocast():
            pred_A, pred_B = D(torch.cat([real_A, old_A]), torch.cat([real_B, old_B]))
        losses["D_A/real"] = lsgan(pred_A[:n], True) * 0.5
        losses["D_A/fake"] = lsgan(pred_A[n:], False) * 0.5
        losses["D_B/real"] = lsgan(pred_B[:n], True) * 0.5
        losses["D_B/fake"] = lsgan(pred_B[n:], False) * 0.5
        loss_D = losses["D_A/real"] + losses["D_A/fake"] + losses["D_B/real"] + losses["D_B/fake"]
        ctx.step("D", loss_D)
        return {k: v.detach() for k, v in losses.items()}

    def extra_tensors(self):
        out = {}
        for name, pool in (("pool_A", self.pool_A), ("pool_B", self.pool_B)):
            if pool.images:
                out[f"extra.{name}"] = torch.cat(pool.images)
        return out

    def load_extra_tensors(self, tensors):
        for name, pool in (("pool_A", self.pool_A), ("pool_B", self.pool_B)):
            t = tensors.get(f"extra.{name}")
            pool.images = [] if t is None else [x.unsqueeze(0).clone() for x in t]

    @torch.no_grad()
    def preview(self, n, gen_group, batch=None):
        """Rows: horses, their zebras, zebras, their horses."""
        real_A, real_B = batch
        real_A, real_B = real_A[:n], real_B[:n]
        return torch.cat([real_A, gen_group.G_AB(real_A), real_B, gen_group.G_BA(real_B)])
