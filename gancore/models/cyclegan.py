"""CycleGAN: unpaired image-to-image translation (Zhu, Park, Isola, Efros, ICCV 2017).

ResNet generators with reflection padding and instance norm, 70x70 PatchGAN discriminators, LSGAN loss,
L1 cycle consistency (weight 10) and identity loss (0.5 of the cycle weight), a history pool of 50 fakes.
`G_AB` turns A (horse) into B (zebra), `G_BA` the reverse; `D_A` judges domain A, `D_B` domain B.

Upsampling is resize-convolution by default (nearest x2 then 3x3 conv; Odena et al. 2016, "Deconvolution
and checkerboard artifacts"); `upsample="transposed"` gives the paper's transposed convolutions.

`block="depthwise"` makes the mobile generator of GAN Compression (Li et al. 2020) and OMGD (Ren et al. 2021):
residual blocks of depthwise-separable convolutions (3x3 depthwise + 1x1 pointwise). At `base_channels=16`
it is the student that `gancore.distill` trains to reproduce a full-size teacher.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gancore.augment import Augment, parse_policy
from gancore.imaging import square_photo
from gancore.models.base import (
    ExportSpec,
    GANModel,
    StepContext,
    example_photos,
    image_io,
    init_dcgan_weights,
    set_requires_grad,
    synthetic_photo,
)


@dataclass(frozen=True)
class CycleGANConfig:
    image_channels: int = 3
    base_channels: int = 32          # paper: 64
    res_blocks: int = 9              # paper: 9 at 256 px
    upsample: str = "resize"         # "resize" (nearest + conv) or "transposed"
    block: str = "residual"          # residual blocks: "residual" (two 3x3 convs) or "depthwise" (separable)
    crop_size: int = 0               # training crop when smaller than image_size (0: image_size); GPU teacher runs
    d_base_channels: int = 64
    d_layers: int = 3                # 3 -> the 70x70 PatchGAN
    d_spectral_norm: bool = False
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5     # fraction of lambda_cycle, as in the paper's code
    pool_size: int = 50
    augment: str = ""                # DiffAugment on both discriminators' inputs, e.g. "color,translation,cutout"
    image_size: int = 256            # training crop; translation resizes photos to about this scale
    load_size: int = 286             # training images are resized to this, then randomly cropped
    domain_a: str = ""               # what the domains hold ("horse", "zebra"): labels, and example photos
    domain_b: str = ""               # named `<domain>_*.jpg` in gancore/assets/examples for export calibration

    def __post_init__(self):
        parse_policy(self.augment)
        if self.upsample not in ("resize", "transposed"):
            raise ValueError("upsample must be 'resize' or 'transposed'")
        if self.block not in ("residual", "depthwise"):
            raise ValueError("block must be 'residual' or 'depthwise'")
        if self.crop_size % 4 or self.crop_size < 0 or self.crop_size > self.load_size:
            raise ValueError("crop_size must be 0 or a multiple of 4 no larger than load_size")
        if self.image_size % 4:
            raise ValueError("image_size must be a multiple of 4")
        for name in (self.domain_a, self.domain_b):
            if not isinstance(name, str) or len(name) > 40 or not all(ch.isalnum() or ch in " -_" for ch in name):
                raise ValueError("domain names are short words (letters, digits, spaces, '-', '_')")


class ResidualBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch))

    def forward(self, x):
        return x + self.body(x)


class SeparableResidualBlock(nn.Module):
    """A residual block of depthwise-separable convolutions (MobileNet; the GAN Compression student)."""

    def __init__(self, ch: int):
        super().__init__()

        def separable():
            return [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, groups=ch), nn.Conv2d(ch, ch, 1)]
        self.body = nn.Sequential(*separable(), nn.InstanceNorm2d(ch), nn.ReLU(True),
                                  *separable(), nn.InstanceNorm2d(ch))

    def forward(self, x):
        return x + self.body(x)


def residual_blocks(cfg: CycleGANConfig, ch: int) -> list[nn.Module]:
    """The generator's transformation at 1/4 scale: `res_blocks` residual blocks of the configured kind."""
    block = SeparableResidualBlock if cfg.block == "depthwise" else ResidualBlock
    return [block(ch) for _ in range(cfg.res_blocks)]


def decoder_layers(cfg: CycleGANConfig) -> list[nn.Module]:
    """u2k, uk, c7s1-3: from 4k channels at 1/4 scale back to a [-1, 1] picture."""
    c, k = cfg.image_channels, cfg.base_channels
    layers = []
    for mult in (4, 2):
        if cfg.upsample == "resize":
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                       nn.Conv2d(k * mult, k * mult // 2, 3)]
        else:
            layers += [nn.ConvTranspose2d(k * mult, k * mult // 2, 3, stride=2, padding=1, output_padding=1)]
        layers += [nn.InstanceNorm2d(k * mult // 2), nn.ReLU(True)]
    return layers + [nn.ReflectionPad2d(3), nn.Conv2d(k, c, 7), nn.Tanh()]


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
        layers += residual_blocks(cfg, k * 4) + decoder_layers(cfg)
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


def collapse_signals(pred: torch.Tensor, n: int, real: torch.Tensor, fake: torch.Tensor, judge: str,
                     tag: str = "") -> dict:
    """Collapse made visible, from one D's logits on [n real; fakes]: how far the generator moves its input
    (mean |G(x) - x| as a share of the pixel range; a copying translator reads about 0) and how often its judge
    is right on real and on fake pictures (both near 1: D has won; both near 0.5: nothing to tell apart)."""
    with torch.no_grad():
        return {f"G/identity_distance{tag}": (fake.float() - real.float()).abs().mean() / 2,
                f"{judge}/acc_real": (pred[:n].float() > 0.5).float().mean(),
                f"{judge}/acc_fake": (pred[n:].float() < 0.5).float().mean()}


def cycle_consistency_loss(reconstructed: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(reconstructed.float(), real.float())


class CycleGAN(GANModel):
    model_type = "cyclegan"
    task = "translate"
    size_multiple = 4                # two stride-2 downsamplings

    def __init__(self, config: CycleGANConfig):
        super().__init__(config)
        self.G = Generators(config)
        self.D = Discriminators(config)
        for m in (self.G, self.D):
            init_dcgan_weights(m)
        self.pool_A = ImagePool(config.pool_size)
        self.pool_B = ImagePool(config.pool_size)
        self.augment = Augment(config.augment)      # the identity when `augment` is ""

    def networks(self):
        return {"G_AB": self.G.G_AB, "G_BA": self.G.G_BA, "D_A": self.D.D_A, "D_B": self.D.D_B}

    def groups(self):
        return {"G": self.G, "D": self.D}

    def directions(self):
        return {"AB": "G_AB", "BA": "G_BA"}

    def discriminator(self, direction=None, side="output"):
        """D_B judges what G_AB makes (and what G_BA takes); D_A the reverse."""
        d = self.direction(direction)
        return self.D.D_B if (d == "AB") == (side == "output") else self.D.D_A

    def inverse(self, direction=None):
        return {"AB": "BA", "BA": "AB"}[self.direction(direction)]

    def direction_labels(self):
        return {d: "{} → {}".format(*self.domains(d)) for d in self.directions()}

    def domains(self, direction=None) -> tuple[str, str]:
        """(input domain, output domain) names of a direction, e.g. ("horse", "zebra")."""
        a, b = self.config.domain_a or "A", self.config.domain_b or "B"
        return (a, b) if self.direction(direction) == "AB" else (b, a)

    def train_step(self, batch, ctx: StepContext):
        real_A, real_B = batch
        cfg = self.config
        G, D = ctx.wrapped["G"], ctx.wrapped["D"]
        lam_idt = cfg.lambda_cycle * cfg.lambda_identity

        # Update G (both directions); D is frozen and called unwrapped so DDP syncs nothing for it.
        set_requires_grad(self.D, False)
        with ctx.autocast():
            fake_B, fake_A, rec_A, rec_B, idt_A, idt_B = G(real_A, real_B, identity=lam_idt > 0)
            pred_fake_A, pred_fake_B = self.D(self.augment(fake_A), self.augment(fake_B))
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
            pred_A, pred_B = D(self.augment(torch.cat([real_A, old_A])), self.augment(torch.cat([real_B, old_B])))
        losses["D_A/real"] = lsgan(pred_A[:n], True) * 0.5
        losses["D_A/fake"] = lsgan(pred_A[n:], False) * 0.5
        losses["D_B/real"] = lsgan(pred_B[:n], True) * 0.5
        losses["D_B/fake"] = lsgan(pred_B[n:], False) * 0.5
        loss_D = losses["D_A/real"] + losses["D_A/fake"] + losses["D_B/real"] + losses["D_B/fake"]
        ctx.step("D", loss_D)
        losses.update(collapse_signals(pred_B, n, real_A, fake_B, "D_B", "_AB"))
        losses.update(collapse_signals(pred_A, n, real_B, fake_A, "D_A", "_BA"))
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
        """Rows: A photos, their translations, B photos, their translations."""
        real_A, real_B = batch
        real_A, real_B = real_A[:n], real_B[:n]
        return torch.cat([real_A, gen_group.G_AB(real_A), real_B, gen_group.G_BA(real_B)]), real_A.shape[0]

    def export_spec(self, direction=None):
        cfg = self.config
        d = self.direction(direction)
        m, c = self.size_multiple, cfg.image_channels
        source, _ = self.domains(d)
        axes = {0: "batch", 2: "height", 3: "width"}
        return ExportSpec(
            module=self.generator(d), network=self.directions()[d], direction=d, input_name="image",
            output_name="image_out", dynamic_axes={"image": axes, "image_out": axes}, size_multiple=m,
            contract={
                "input": {**image_io(c, ["height", "width"]), "size_multiple": m, "domain": d[0],
                          "preprocess": f"resize so the shorter side is about {cfg.image_size} px (the training "
                                        f"size), reflect-pad height and width to multiples of {m}, "
                                        "scale pixels with x / 127.5 - 1"},
                "output": {**image_io(c, ["height", "width"]),
                           "postprocess": "crop the padding away, (y + 1) * 127.5 rounded and clipped to 0..255, "
                                          "resize back to the photo's size"}},
            # Only convolution inputs are quantised: a per-tensor int8 step on a convolution's output is blown
            # up by the following InstanceNorm (gancore/deploy/export.py explains the measurements).
            quantize_ops=("Conv",), quantize_options={"OpTypesToExcludeOutputQuantization": ["Conv"]})

    def example_inputs(self, spec, calibration_images=None, held_out_images=None, seed=0):
        """Real photos of the input domain: given, or the example photos shipped for these domain names."""
        c, s = self.config.image_channels, self.config.image_size
        src_name, dst_name = self.domains(spec.direction)
        own, other = example_photos(src_name), example_photos(dst_name)
        held_paths, cal_paths = own[:1], own[1:] + other
        source = f"the bundled example photos ({', '.join(p.name for p in own + other)})"
        if held_out_images is not None:
            held_paths, source = list(held_out_images), "given held-out photos, calibrated on " + (
                "given photos" if calibration_images is not None else source)
            cal_paths = own + other
        if calibration_images is not None:
            cal_paths = list(calibration_images)
            if held_out_images is None:
                source = "given calibration photos, held-out: " + source
        held = [square_photo(p, s, c)[None] for p in held_paths]
        cal = [square_photo(p, s, c)[None] for p in cal_paths]
        if not held:
            held = [synthetic_photo(s, c, seed)[None]]
            cal = cal or [synthetic_photo(s, c, seed + 1 + i)[None] for i in range(4)]
            source = "synthetic smooth images (no photos given and no bundled examples found)"
        return {"parity": held[0], "calibration": cal, "held_out": held, "source": source}
