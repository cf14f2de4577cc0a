"""Masked reconstruction with an adversarial loss: a context encoder (Pathak, Krähenbühl, Donahue,
Darrell, Efros, CVPR 2016, "Context Encoders: Feature Learning by Inpainting").

The generator is an encoder-decoder: strided convolutions down to a small grid, the paper's channel-wise
fully connected layer (every grid cell sees every other cell of its channel, so a hidden region can be
filled from context far away), then transposed convolutions back up. Loss: L2 on the hidden pixels
(lambda_rec) plus a non-saturating adversarial loss (lambda_adv) from a discriminator that judges the
composite image (the fill pasted into the visible pixels). The paper weighs them 0.999 / 0.001.

Generator contract (the exporter relies on it): `G(x)` with x (N, C + 1, H, W) = the image with hidden
pixels set to 0, then the mask channel (1 = hidden); output (N, C, H, W) in [-1, 1]. The composite with the
visible pixels is done outside G by `inpaint(image, mask)`.

Masks are drawn per image from torch's global RNG (random share in [mask_ratio +- mask_ratio_spread]; patch
masks, with `pixel_mask_share` of the batches using single pixels), so a resumed run draws what a
straight run draws. The encoder (`encode`) is the representation a linear probe measures.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gancore.imaging import square_photo
from gancore.masks import mask_image, patch_mask, pixel_mask
from gancore.models.base import (
    ExportSpec,
    GANModel,
    StepContext,
    example_photos,
    image_io,
    init_dcgan_weights,
    is_meta,
    set_requires_grad,
    split_held_out,
    synthetic_photo,
)
from gancore.models.noise_gan import d_loss, g_loss


@dataclass(frozen=True)
class MaskRecConfig:
    image_size: int = 28             # a multiple of 4
    image_channels: int = 1          # 1 = grey, 3 = RGB
    base_channels: int = 32          # first encoder block; the next ones double it
    d_base_channels: int = 32        # width of D's first block; later blocks double it
    mask_ratio: float = 0.5          # centre of the training mask share
    mask_ratio_spread: float = 0.3   # each image draws its share from [ratio - spread, ratio + spread]
    patch_size: int = 4              # training patch side (pixels)
    pixel_mask_share: float = 0.25   # fraction of batches masked pixel by pixel instead of by patches
    skip_connection: bool = True     # a U-Net skip at half resolution: sharper fills near visible pixels
    lambda_rec: float = 0.999        # Pathak et al.: 0.999 L2 + 0.001 adversarial
    lambda_adv: float = 0.001        # weight of the adversarial loss
    feature_pool: int = 4            # encode(): features average-pooled to feature_pool x feature_pool

    def __post_init__(self):
        if self.image_size % 4:
            raise ValueError("maskrec image_size must be a multiple of 4")
        if not 0 <= self.mask_ratio <= 1 or not 0 <= self.mask_ratio_spread <= 1:
            raise ValueError("mask_ratio and mask_ratio_spread must lie in [0, 1]")
        if self.patch_size < 1:
            raise ValueError("patch_size must be at least 1")


class ChannelwiseFC(nn.Module):
    """Pathak et al.'s channel-wise fully connected layer: per channel, a dense map over grid cells."""

    def __init__(self, channels: int, cells: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, cells, cells) * cells ** -0.5)
        self.bias = nn.Parameter(torch.zeros(channels, cells))

    def forward(self, x):
        n, c, h, w = x.shape
        y = torch.einsum("ncp,cpq->ncq", x.flatten(2), self.weight) + self.bias   # (N, C, H*W) per channel
        return y.view(n, c, h, w)


class Encoder(nn.Module):
    def __init__(self, cfg: MaskRecConfig):
        super().__init__()
        b, c = cfg.base_channels, cfg.image_channels
        self.down1 = nn.Sequential(nn.Conv2d(c + 1, b, 4, 2, 1), nn.LeakyReLU(0.2, True))              # H/2
        self.down2 = nn.Sequential(nn.Conv2d(b, 2 * b, 4, 2, 1), nn.BatchNorm2d(2 * b), nn.LeakyReLU(0.2, True))  # H/4
        self.conv3 = nn.Sequential(nn.Conv2d(2 * b, 4 * b, 3, 1, 1), nn.BatchNorm2d(4 * b), nn.LeakyReLU(0.2, True))
        cells = (cfg.image_size // 4) ** 2
        self.fc = ChannelwiseFC(4 * b, cells)
        self.mix = nn.Sequential(nn.Conv2d(4 * b, 4 * b, 1), nn.BatchNorm2d(4 * b), nn.ReLU(True))

    def forward(self, x):
        h1 = self.down1(x)
        h3 = self.conv3(self.down2(h1))
        return self.mix(self.fc(h3)), h3, h1


class Generator(nn.Module):
    """(N, C + 1, H, W) masked image + mask channel -> (N, C, H, W) fill in [-1, 1]."""

    def __init__(self, cfg: MaskRecConfig):
        super().__init__()
        b, c = cfg.base_channels, cfg.image_channels
        self.skip = cfg.skip_connection
        self.encoder = Encoder(cfg)
        self.up1 = nn.Sequential(nn.ConvTranspose2d(4 * b, 2 * b, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * b), nn.ReLU(True))
        up2_in = 2 * b + (b if self.skip else 0)
        self.up2 = nn.Sequential(nn.ConvTranspose2d(up2_in, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True))
        self.out = nn.Sequential(nn.Conv2d(b, c, 3, 1, 1), nn.Tanh())

    def forward(self, x):
        z, _, h1 = self.encoder(x)
        u = self.up1(z)
        if self.skip:
            u = torch.cat([u, h1], 1)
        return self.out(self.up2(u))


class Discriminator(nn.Module):
    """Judges whole (composite) images; no normalisation, so real and fake share one forward cleanly."""

    def __init__(self, cfg: MaskRecConfig):
        super().__init__()
        b, c = cfg.d_base_channels, cfg.image_channels
        self.net = nn.Sequential(
            nn.Conv2d(c, b, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(b, 2 * b, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * b, 1, cfg.image_size // 4, 1, 0))                   # logits (N, 1, 1, 1)

    def forward(self, x):
        return self.net(x).flatten(1)


def generator_input(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) image, (N, 1, H, W) mask -> (N, C + 1, H, W): hidden pixels zeroed, mask appended."""
    mask = mask.to(image.dtype)
    return torch.cat([mask_image(image, mask, 0.0), mask], 1)


class MaskRec(GANModel):
    model_type = "maskrec"
    task = "inpaint"

    def __init__(self, config: MaskRecConfig):
        super().__init__(config)
        self.G = Generator(config)
        self.D = Discriminator(config)
        init_dcgan_weights(self)
        # The channel-wise FC keeps its 1/sqrt(cells) scale: N(0, 0.02) would nearly cut the encoder off.
        if not is_meta(self):
            nn.init.normal_(self.G.encoder.fc.weight, 0.0, ((config.image_size // 4) ** 2) ** -0.5)

    def sample_masks(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Training masks (N, 1, H, W); global RNG unless a generator is given."""
        cfg = self.config
        lo = max(0.0, cfg.mask_ratio - cfg.mask_ratio_spread)
        hi = min(1.0, cfg.mask_ratio + cfg.mask_ratio_spread)
        ratios = lo + (hi - lo) * torch.rand(n, generator=generator)
        size = cfg.image_size
        if float(torch.rand((), generator=generator)) < cfg.pixel_mask_share:
            return pixel_mask(n, size, size, ratios, generator, device)
        return patch_mask(n, size, size, ratios, cfg.patch_size, generator, device)

    @staticmethod
    def composite(image: torch.Tensor, fill: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.to(image.dtype)
        return image * (1 - mask) + fill.to(image.dtype) * mask

    def inpaint(self, image: torch.Tensor, mask: torch.Tensor, generator: nn.Module | None = None) -> torch.Tensor:
        """Visible pixels kept, hidden pixels (mask 1) filled by G: (N, C, H, W) in [-1, 1]."""
        G = generator or self.G
        return self.composite(image, G(generator_input(image, mask)), mask)

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder features for a linear probe: (N, 4 * base_channels * feature_pool ** 2).

        The unmasked image (mask channel 0) unless a mask is given; the conv stack before the channel-wise FC,
        average-pooled so that the probe sees a few hundred to a few thousand numbers, like raw pixels.
        """
        if mask is None:
            mask = torch.zeros_like(x[:, :1])
        _, h3, _ = self.G.encoder(generator_input(x, mask))
        p = self.config.feature_pool
        return F.adaptive_avg_pool2d(h3, p).flatten(1)                           # (N, 4b, p, p) -> (N, 4b*p*p)

    def train_step(self, batch, ctx: StepContext):
        real = batch
        cfg = self.config
        n = real.shape[0]
        G, D = ctx.wrapped["G"], ctx.wrapped["D"]
        mask = self.sample_masks(n, device=real.device).to(real.dtype)

        # Update G: L2 on the hidden pixels + adversarial loss through a frozen, unwrapped D.
        set_requires_grad(self.D, False)
        with ctx.autocast():
            fill = G(generator_input(real, mask))
            fake = self.composite(real, fill, mask)
            loss_adv = g_loss("bce", self.D(fake))
        hidden = mask.expand_as(real)
        loss_rec = ((fill.float() - real.float()) ** 2 * hidden).sum() / hidden.sum().clamp_min(1)
        ctx.step("G", cfg.lambda_rec * loss_rec + cfg.lambda_adv * loss_adv)
        set_requires_grad(self.D, True)

        # Update D: real and composite images in one forward.
        with ctx.autocast():
            logits = D(torch.cat([real, fake.detach().to(real.dtype)]))
        loss_real, loss_fake = d_loss("bce", logits[:n], logits[n:])
        ctx.step("D", loss_real + loss_fake)
        return {"D/real": loss_real.detach(), "D/fake": loss_fake.detach(),
                "G/rec": loss_rec.detach(), "G/adv": loss_adv.detach()}

    @torch.no_grad()
    def preview(self, n, gen_group, batch=None):
        """Rows: input, masked input (hidden pixels grey), reconstruction (composite)."""
        real = batch[0] if isinstance(batch, (tuple, list)) else batch
        real = real[:n]
        # Its own generator: previews never draw from the global RNG (exact resume).
        g = torch.Generator().manual_seed(1234)
        size = self.config.image_size
        mask = patch_mask(real.shape[0], size, size, self.config.mask_ratio, self.config.patch_size, g)
        mask = mask.to(real.device, real.dtype)
        fill = gen_group(generator_input(real, mask))
        rows = torch.cat([real, mask_image(real, mask, 0.0), self.composite(real, fill, mask)]).clamp(-1, 1)
        return rows, real.shape[0]

    def export_spec(self, direction=None):
        cfg = self.config
        d = self.direction(direction)
        c, s = cfg.image_channels, cfg.image_size
        inp = image_io(c + 1, [s, s])
        inp["channels"] = ("grey" if c == 1 else "RGB") + " image with hidden pixels set to 0, then the mask (1 = hidden)"
        return ExportSpec(
            module=self.G, network="G", direction=d, input_name="masked_image", output_name="fill",
            dynamic_axes={"masked_image": {0: "batch"}, "fill": {0: "batch"}},   # fixed size: a dense layer inside
            contract={"input": inp,
                      "output": {**image_io(c, [s, s]),
                                 "postprocess": "composite: image * (1 - mask) + fill * mask, then to uint8"}})

    def example_inputs(self, spec, calibration_images=None, held_out_images=None, seed=0):
        """Real images of the model's own kind with random masks (the exporter passes MNIST test digits for
        grey models); the bundled photos when none are given."""
        c, s = self.config.image_channels, self.config.image_size
        paths = list(calibration_images or []) + list(held_out_images or []) or example_photos()
        imgs = [square_photo(p, s, c) for p in paths] or [synthetic_photo(s, c, seed + i) for i in range(8)]
        source = "given images with random masks" if calibration_images else "bundled photos with random masks"
        x = torch.from_numpy(np.stack(imgs))
        masks = self.sample_masks(len(x), generator=torch.Generator().manual_seed(seed))
        return split_held_out(generator_input(x, masks.to(x.dtype)).numpy(), source)
